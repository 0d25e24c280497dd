"""The operator's commands against a real daemon process, through the installed syncctl."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.daemon_process import BOUND, daemon_process

SYNCCTL = Path(sys.executable).with_name("syncctl")


def syncctl(address: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SYNCCTL), "--address", address, *argv],
        capture_output=True,
        text=True,
        timeout=BOUND,
        check=False,
    )


def test_notes_sync_status_and_repository_history(short_tmp: Path) -> None:
    """A note added with `syncctl note` is listed with its author and repository; `sync
    status` answers for a repository that never synchronised; `history --repository all`
    lists runs with their repository."""
    (short_tmp / "p").mkdir()
    config = '[daemon]\nentry_points = false\n[replication]\nname = "hq"\ncluster_id = "c"\n'
    with daemon_process(short_tmp / "p" / "state", config) as daemon:
        added = syncctl(daemon.address, "note", "Nightly", "disk", "was", "full", "--json")
        assert added.returncode == 0, added.stderr
        listed = json.loads(syncctl(daemon.address, "note", "job:Nightly", "--json").stdout)
        (note,) = listed["notes"]
        assert note["text"] == "disk was full" and note["repository"] == "hq"
        assert note["subject"] == "job:Nightly" and note["author"]
        bad = syncctl(daemon.address, "note", "widget:x", "hello")
        assert bad.returncode == 5 and "subject" in bad.stderr
        status = json.loads(syncctl(daemon.address, "sync", "status", "--json").stdout)
        assert (status["repository"], status["cluster_id"]) == ("hq", "c")
        assert status["last_status"] is None and status["cursors"] == []
        assert status["stable_watermark"] >= 2  # the note and the repository's name card
        history = json.loads(
            syncctl(daemon.address, "history", "--repository", "all", "--json").stdout
        )
        assert history == {"runs": []}
        unknown = syncctl(daemon.address, "history", "--repository", "nowhere")
        assert unknown.returncode == 5 and "known: hq" in unknown.stderr
