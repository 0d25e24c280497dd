"""syncctl against the real daemon, for what an operator hits in the first hour: a disabled job's
own exit code, --timeout on every call, `run --with-dependants --wait` following the chain, and
`status` and `next` in timetable order.

The daemon runs the test pack with a small dependency graph: FifoJob → QuickJob and
OtherFifoJob → FailingJob. The FIFO jobs end when the test writes to their FIFO.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.daemon_process import daemon_process, e2e_config
from tests.test_client_e2e import (
    RUN_ID,
    join_release,
    release_in_background,
    syncctl,
)

pytestmark = pytest.mark.e2e

# An hour half a day away: the jobs' slots fall in it, in a fixed order, and never fire (or
# are caught up) while the tests run.
HOUR = (datetime.now(UTC).hour + 12) % 24
TIMETABLE = ["QuickJob", "FailingJob", "OtherFifoJob", "FifoJob"]  # FifoJob has no slot: last


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="sc-fid-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def state(root: Path) -> Iterator[Path]:
    """The daemon's state dir; the daemon is stopped with SIGTERM at the end, which exits 0."""
    config = e2e_config(root) + (
        "[scheduler]\ncatch_up = false\n"
        f'[jobs.QuickJob]\nat = "{HOUR:02d}:10"\nafter = ["FifoJob"]\n'
        f'[jobs.FailingJob]\nat = "{HOUR:02d}:20"\nafter = ["OtherFifoJob"]\n'
        f'[jobs.OtherFifoJob]\nat = "{HOUR:02d}:30"\n'
    )
    with daemon_process(root / "state", config) as process:
        yield process.state_dir
        assert process.stop() == 0


def test_status_and_next_list_jobs_in_timetable_order(state: Path) -> None:
    """Not in the order the pack registered them (FifoJob, OtherFifoJob, FailingJob, QuickJob)."""
    status = syncctl(state, "status")
    assert status.returncode in (0, 8), status.stderr
    assert [line.split("\t")[0] for line in status.stdout.splitlines()] == TIMETABLE
    document = json.loads(syncctl(state, "status", "--json").stdout)
    assert [bean["name"] for bean in document["beans"]] == TIMETABLE

    upcoming = syncctl(state, "next", "--days", "1")
    assert upcoming.returncode == 0, upcoming.stderr
    assert [line.split("\t")[1] for line in upcoming.stdout.splitlines()] == TIMETABLE[:3]


def test_a_tiny_timeout_bounds_every_command(state: Path) -> None:
    """--timeout 0.001: no daemon answers that fast, so each call gives up with exit 6."""
    for argv in (
        ["status"],
        ["beans"],
        ["logs", "-n", "1"],
        ["logs", "-f"],
        ["watch"],
    ):
        done = syncctl(state, "--timeout", "0.001", *argv)
        assert done.returncode == 6, (argv, done.stdout, done.stderr)
        assert "did not answer within 0.001s" in done.stderr


def test_with_dependants_wait_follows_the_chain_to_success(state: Path, root: Path) -> None:
    """FifoJob, then QuickJob after it: both succeed, exit 0, a line for each."""
    releaser = release_in_background(root, ["FifoJob"])
    ran = syncctl(state, "run", "FifoJob", "fifoJob", "--with-dependants", "--wait")
    join_release(releaser, root, ["FifoJob"])
    assert ran.returncode == 0, ran.stderr
    lines = [line.split("\t") for line in ran.stdout.splitlines()]
    assert lines[0][0] and RUN_ID.match(lines[0][0])  # piped: the run id first
    assert [(bean, outcome) for bean, _, outcome in lines[1:]] == [
        ("FifoJob", "success"),
        ("QuickJob", "success"),
    ]


def test_with_dependants_wait_fails_when_a_dependant_fails(state: Path, root: Path) -> None:
    """OtherFifoJob succeeds but FailingJob after it fails: exit 1, naming it."""
    releaser = release_in_background(root, ["OtherFifoJob"])
    ran = syncctl(
        state, "run", "OtherFifoJob", "otherFifoJob", "--with-dependants", "--wait", "--json"
    )
    join_release(releaser, root, ["OtherFifoJob"])
    assert ran.returncode == 1, (ran.stdout, ran.stderr)
    document = json.loads(ran.stdout)
    assert document["chain"] == ["FailingJob"]
    assert document["run"]["outcome"] == "success"
    assert [(r["bean"], r["outcome"]) for r in document["chain_runs"]] == [("FailingJob", "failed")]
    assert "1 of 2 runs of the chain did not succeed: FailingJob failed" in ran.stderr


def test_running_a_disabled_job_exits_9_with_the_reason(root: Path) -> None:
    """Its own exit code (the README's table), and the daemon's reason on stderr."""
    config = e2e_config(root / "d") + "[jobs.QuickJob]\nenabled = false\n"
    (root / "d").mkdir()
    with daemon_process(root / "d" / "state", config) as process:
        ran = syncctl(process.state_dir, "run", "QuickJob", "run")
        waited = syncctl(process.state_dir, "run", "QuickJob", "run", "--wait")
        assert process.stop() == 0
    for done in (ran, waited):
        assert done.returncode == 9, (done.stdout, done.stderr)
        assert "QuickJob is disabled" in done.stderr


def test_reload_config_prints_the_changed_jobs_as_lines(state: Path, root: Path) -> None:
    """`run Daemon reloadConfig`: one line per changed job, not a JSON blob (last: it changes
    the daemon's configuration)."""
    config = root / "syncd.toml"
    config.write_text(config.read_text() + '[jobs.FifoJob]\ntimeout = "1h"\n')
    reloaded = syncctl(state, "run", "Daemon", "reloadConfig")
    assert reloaded.returncode == 0, reloaded.stderr
    assert reloaded.stdout == "changed\tFifoJob\n"
