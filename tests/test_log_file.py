"""The old service's log file keeps working: a daemon configured with
`[logging] file = "…/var/log/apps/sync.log"` writes its structured lines there, and
`syncctl logs` shows the same lines (what `tail /var/log/apps/sync.log -f` gave operators)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.daemon_process import BOUND, daemon_process, e2e_config

pytestmark = pytest.mark.e2e

SYNCCTL = Path(sys.executable).with_name("syncctl")


def syncctl(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("SYNCD_ADDRESS", None)
    env["SYNCD_STATE_DIR"] = str(state_dir)
    return subprocess.run(
        [str(SYNCCTL), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=BOUND,
        check=False,
    )


def test_the_configured_log_file_holds_what_syncctl_logs_shows(short_tmp: Path) -> None:
    log_file = short_tmp / "var" / "log" / "apps" / "sync.log"  # the folder does not exist yet
    config = e2e_config(short_tmp) + f'[logging]\nfile = "{log_file}"\n'
    state = short_tmp / "state"
    with daemon_process(state, config) as daemon:
        done = syncctl(state, "run", "QuickJob", "run", "--wait")
        assert done.returncode == 0, done.stderr
        daemon.wait_for_event("run.finished", job="QuickJob")

        # Piped, `syncctl logs` prints the daemon's JSON lines unchanged: the file's lines.
        shown = syncctl(state, "logs", "-n", "10000")
        assert shown.returncode == 0, shown.stderr
        printed = shown.stdout.splitlines()
        written = log_file.read_text().splitlines()
        assert printed and printed == written[: len(printed)]
        events = [json.loads(line)["event"] for line in written]
        assert events[0] == "daemon.started"
        finished = next(
            json.loads(line)
            for line in written
            if '"run.finished"' in line and json.loads(line)["event"] == "run.finished"
        )
        assert (finished["job"], finished["outcome"]) == ("QuickJob", "success")

        # Filtered by job, both sides agree too.
        job_lines = syncctl(state, "logs", "--job", "QuickJob", "-n", "10000").stdout.splitlines()
        assert job_lines == [line for line in written if json.loads(line).get("job") == "QuickJob"]
        assert daemon.stop() == 0
    assert not (state / "logs" / "syncd.log").exists()  # the default file is not written


def test_the_readme_migration_table_maps_the_old_tail() -> None:
    """The jmxterm-to-syncctl table says where `tail /var/log/apps/sync.log -f` went."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `tail /var/log/apps/")]
    assert len(rows) == 1
    assert "`syncctl logs -f`" in rows[0]
    assert '`[logging] file = "/var/log/apps/sync.log"`' in rows[0]
