"""syncctl end to end: the installed console script against the real daemon (`python -m syncd`).

No --address anywhere: syncctl finds the daemon's socket through SYNCD_STATE_DIR, as an operator
on the host would. One daemon serves most tests (a start costs a second); the monitoring check
gets a fresh one, since any failed run in the shared daemon would make `status` exit 8.
Every wait is bounded: subprocesses by timeouts, followers by a select on their stdout.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from syncd_api.v1 import management_pb2 as pb
from syncd_api.v1 import management_pb2_grpc as pb_grpc
from tests.daemon_process import BOUND, DaemonProcess, daemon_process, e2e_config

pytestmark = pytest.mark.e2e

SYNCCTL = Path(sys.executable).with_name("syncctl")
RUN_ID = re.compile(r"^\d{8}T\d{6}\.\d{3}-[0-9a-f]{16}$")
E2E_JOBS = {"FifoJob", "OtherFifoJob", "FailingJob", "QuickJob"}


# ---- helpers -------------------------------------------------------------------------------


def _env(state_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SYNCD_ADDRESS", None)  # the state dir alone must lead syncctl to the socket
    env["SYNCD_STATE_DIR"] = str(state_dir)
    return env


def syncctl(
    state_dir: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SYNCCTL), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=_env(state_dir),
        timeout=BOUND,
        check=False,
    )


def fields(show_output: str) -> dict[str, str]:
    """`syncctl show` piped: field<TAB>value lines."""
    return dict(line.split("\t", 1) for line in show_output.splitlines())


class Follower:
    """A long-running syncctl (logs -f, watch, run-all --wait) whose lines are read with
    deadlines."""

    def __init__(self, state_dir: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [str(SYNCCTL), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(state_dir),
        )
        self._buffer = b""
        self._lines: list[str] = []

    def line(self, timeout: float = BOUND) -> str | None:
        """The next stdout line, or None if none came within `timeout` (or stdout closed)."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while not self._lines:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    return None
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    return None
                self._buffer += chunk
                *complete, self._buffer = self._buffer.split(b"\n")
                self._lines += [raw.decode() for raw in complete]
        return self._lines.pop(0)

    def expect_line(self, timeout: float = BOUND) -> str:
        text = self.line(timeout)
        assert text is not None, f"no line within {timeout}s; stderr: {self.stderr_now()}"
        return text

    def stderr_now(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return "(still running)"
        return self.proc.stderr.read().decode()

    def interrupt(self) -> int:
        """Ctrl-C, as at a terminal; the exit status."""
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(BOUND)

    def wait(self) -> tuple[int, str]:
        code = self.proc.wait(BOUND)
        assert self.proc.stderr is not None
        return code, self.proc.stderr.read().decode()

    def __enter__(self) -> Follower:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(BOUND)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def release_in_background(gate_dir: Path, beans: list[str]) -> threading.Thread:
    """Let each FIFO job finish, in order: opening its FIFO for writing blocks until the job's
    body opens it for reading, i.e. until that run has started."""

    def release() -> None:
        for bean in beans:
            with (gate_dir / f"{bean}.fifo").open("wb") as fifo:
                fifo.write(b"go")

    thread = threading.Thread(target=release, daemon=True)
    thread.start()
    return thread


def join_release(thread: threading.Thread, gate_dir: Path, beans: list[str]) -> None:
    thread.join(BOUND)
    if thread.is_alive():
        # Unblock the writer (a reader appears) so the thread ends, then fail.
        for bean in beans:
            os.close(os.open(gate_dir / f"{bean}.fifo", os.O_RDONLY | os.O_NONBLOCK))
        raise AssertionError(f"a FIFO job of {beans} never started")


@dataclass
class Daemon:
    process: DaemonProcess
    root: Path  # the gate dir for the FIFO jobs

    @property
    def state(self) -> Path:
        return self.process.state_dir

    def stub(self) -> tuple[grpc.Channel, pb_grpc.ManagementStub]:
        channel = grpc.insecure_channel(self.process.address)
        return channel, pb_grpc.ManagementStub(channel)


# QuickJob's daily slot, half a day away: `next` has something to show, and it never fires (or
# is caught up) while the tests run.
QUICK_AT = (datetime.now(UTC) + timedelta(hours=12)).strftime("%H:%M")


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    """One daemon for the module; stopped with SIGTERM at the end, which must exit 0."""
    root = Path(tempfile.mkdtemp(prefix="sc-e2e-"))
    config = e2e_config(root, cancel_grace='"300ms"') + (
        f'[scheduler]\ncatch_up = false\n[jobs.QuickJob]\nat = "{QUICK_AT}"\n'
    )
    try:
        with daemon_process(root / "state", config) as process:
            yield Daemon(process, root)
            assert process.stop() == 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---- runs: run, history, show, cancel ------------------------------------------------------


def test_run_wait_success_then_history_and_show(daemon: Daemon) -> None:
    """`run --wait` exits 0; the run is in `history` and `show` has every field."""
    ran = syncctl(daemon.state, "run", "QuickJob", "run", "--wait")
    assert ran.returncode == 0, ran.stderr
    run_id, outcome = ran.stdout.split()
    assert RUN_ID.match(run_id)
    assert outcome == "success"

    history = syncctl(daemon.state, "history", "QuickJob", "--limit", "5")
    assert history.returncode == 0
    row = next(line.split("\t") for line in history.stdout.splitlines() if line.startswith(run_id))
    assert row[1:3] == ["QuickJob", "manual"]
    assert row[5:9] == ["success", "3", "0", "-"]

    shown = fields(syncctl(daemon.state, "show", run_id).stdout)
    assert (shown["run_id"], shown["outcome"], shown["state"]) == (run_id, "success", "finished")
    assert shown["rows_read"] == "3"
    assert shown["actor"].startswith(f"uid {os.getuid()} (")  # the kernel's word, not syncctl's
    document = json.loads(syncctl(daemon.state, "show", run_id, "--json").stdout)
    assert document["trigger"] == "manual"
    assert document["ended_at"].endswith("Z")


def test_run_wait_failure_exits_1_and_shows_the_error(daemon: Daemon) -> None:
    """A failing run: exit 1, outcome on stdout, error on stderr; `show` keeps the error."""
    ran = syncctl(daemon.state, "run", "FailingJob", "run", "--wait")
    assert ran.returncode == 1
    run_id, outcome = ran.stdout.split()
    assert outcome == "failed"
    assert "ValueError: bad input row 7" in ran.stderr
    document = json.loads(syncctl(daemon.state, "show", run_id, "--json").stdout)
    assert (document["error_type"], document["error_message"]) == ("ValueError", "bad input row 7")


def test_unknown_run_exits_3(daemon: Daemon) -> None:
    """`show` of a run id the ledger does not have: exit 3 naming it."""
    shown = syncctl(daemon.state, "show", "20000101T000000-000000")
    assert shown.returncode == 3
    assert "20000101T000000-000000" in shown.stderr


def test_already_running_then_cancel(daemon: Daemon) -> None:
    """A second trigger exits 4 with the run id; `cancel --wait` ends the run as cancelled
    (its body ignores the request, blocked on a FIFO, and is killed after cancel_grace)."""
    started = syncctl(daemon.state, "run", "FifoJob", "run")
    assert started.returncode == 0, started.stderr
    run_id = started.stdout.strip()

    again = syncctl(daemon.state, "run", "FifoJob", "run")
    assert again.returncode == 4
    assert run_id in again.stderr

    cancelled = syncctl(daemon.state, "cancel", "FifoJob", "--wait")
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.split() == [run_id, "cancelled"]
    shown = fields(syncctl(daemon.state, "show", run_id).stdout)
    assert (shown["outcome"], shown["error_type"]) == ("cancelled", "Killed")

    idle = syncctl(daemon.state, "cancel", "FifoJob")
    assert (idle.returncode, idle.stdout) == (0, "")
    assert "no run under way" in idle.stderr


def test_unknown_bean_exits_3_with_a_suggestion(daemon: Daemon) -> None:
    """A misspelt bean: exit 3 and the daemon's "did you mean"."""
    ran = syncctl(daemon.state, "run", "QuikJob", "run")
    assert ran.returncode == 3
    assert "did you mean QuickJob" in ran.stderr


def test_bad_argument_exits_5_naming_the_parameter(daemon: Daemon) -> None:
    """An argument the daemon cannot use: exit 5 with the parameter's name."""
    ran = syncctl(daemon.state, "run", "QuickJob", "run", "many")
    assert ran.returncode == 5
    assert "parameter 'rows'" in ran.stderr


# ---- run-all -------------------------------------------------------------------------------


def test_run_all_wait_follows_every_job(daemon: Daemon) -> None:
    """The plan, then one line per job as it ends; FailingJob fails, so exit 1."""
    with Follower(daemon.state, "run-all", "--wait") as runner:
        plan = [runner.expect_line() for _ in range(len(E2E_JOBS))]
        assert set(plan) == E2E_JOBS
        fifo_jobs = [job for job in plan if job.endswith("FifoJob")]
        releaser = release_in_background(daemon.root, fifo_jobs)
        results = [runner.expect_line().split("\t") for _ in plan]
        join_release(releaser, daemon.root, fifo_jobs)
        code, stderr = runner.wait()
    assert [r[0] for r in results] == plan
    outcomes = {bean: outcome for bean, _, outcome in results}
    assert outcomes == {
        "QuickJob": "success",
        "FailingJob": "failed",
        "FifoJob": "success",
        "OtherFifoJob": "success",
    }
    assert all(RUN_ID.match(run_id) for _, run_id, _ in results)
    assert code == 1
    assert "1 of 4 jobs did not succeed: FailingJob failed" in stderr


# ---- pause, resume, next -------------------------------------------------------------------


def test_pause_resume_and_next(daemon: Daemon) -> None:
    """A paused bean drops out of `next` and shows as paused; resume brings it back."""
    upcoming = syncctl(daemon.state, "next")
    assert upcoming.returncode == 0
    (line,) = upcoming.stdout.splitlines()
    at, bean = line.split("\t")
    assert bean == "QuickJob"
    assert at[11:16] == QUICK_AT and at.endswith(":00Z")

    paused = syncctl(daemon.state, "pause", "QuickJob")
    assert paused.returncode == 0
    assert paused.stdout.startswith("QuickJob\t")
    assert syncctl(daemon.state, "next").stdout == ""
    beans = json.loads(syncctl(daemon.state, "status", "--json").stdout)["beans"]
    assert {b["name"]: b["state"] for b in beans}["QuickJob"] == "paused"

    resumed = syncctl(daemon.state, "resume", "QuickJob")
    assert (resumed.returncode, resumed.stdout) == (0, "")
    assert syncctl(daemon.state, "next", "--days", "2").stdout.count("\tQuickJob") == 2

    too_far = syncctl(daemon.state, "next", "--days", "400")
    assert too_far.returncode == 5
    assert "parameter 'days'" in too_far.stderr


# ---- logs, watch ---------------------------------------------------------------------------


def test_logs_of_one_run(daemon: Daemon) -> None:
    """`logs -n N --run ID` piped: the daemon's JSON lines of that run, ending in run.finished."""
    run_id = syncctl(daemon.state, "run", "QuickJob", "run", "--wait").stdout.split()[0]
    logs = syncctl(daemon.state, "logs", "-n", "50", "--run", run_id)
    assert logs.returncode == 0
    records: list[dict[str, Any]] = [json.loads(line) for line in logs.stdout.splitlines()]
    assert {r["run_id"] for r in records} == {run_id}
    finished = [r for r in records if r["event"] == "run.finished"]
    assert len(finished) == 1
    assert (finished[0]["outcome"], finished[0]["job"]) == ("success", "QuickJob")
    assert records[-1]["event"] == "run.finished"

    bad = syncctl(daemon.state, "logs", "--level", "loud")
    assert bad.returncode == 5
    assert "parameter 'level'" in bad.stderr


def test_logs_follow_receives_a_line_logged_after_it_attached(daemon: Daemon) -> None:
    """`logs -f` gets new lines as they are logged; Ctrl-C ends it with exit 0.

    The daemon subscribes the follower before it sends the backlog, so the backlog line
    arriving proves the follower is attached; the resume after it is logged later."""
    assert syncctl(daemon.state, "pause", "OtherFifoJob").returncode == 0
    try:
        with Follower(daemon.state, "logs", "-f", "-n", "1", "--job", "OtherFifoJob") as logs:
            backlog = json.loads(logs.expect_line())
            assert (backlog["event"], backlog["job"]) == ("bean.paused", "OtherFifoJob")
            assert syncctl(daemon.state, "resume", "OtherFifoJob").returncode == 0
            new = json.loads(logs.expect_line())
            assert (new["event"], new["job"]) == ("bean.resumed", "OtherFifoJob")
            assert logs.interrupt() == 0
    finally:
        syncctl(daemon.state, "resume", "OtherFifoJob")


def test_watch_sees_a_run_start_and_finish(daemon: Daemon) -> None:
    """`watch QuickJob --json` prints run.started and run.finished of a QuickJob run."""
    with Follower(daemon.state, "watch", "QuickJob", "--json") as watch:
        # WatchEvents sends nothing to say it has subscribed: pause and resume until the
        # watcher prints the pause, then every later event reaches it.
        channel, stub = daemon.stub()
        with channel:
            for _ in range(50):
                stub.Pause(pb.PauseRequest(bean="QuickJob"), timeout=BOUND)
                stub.Resume(pb.PauseRequest(bean="QuickJob"), timeout=BOUND)
                if watch.line(timeout=0.2) is not None:
                    break
            else:
                raise AssertionError("syncctl watch never attached")
        run_id = syncctl(daemon.state, "run", "QuickJob", "run", "--wait").stdout.split()[0]
        kinds: list[str] = []
        while "run.finished" not in kinds:
            seen = json.loads(watch.expect_line())
            if seen["run_id"] == run_id:
                kinds.append(seen["kind"])
                assert seen["bean"] == "QuickJob"
                if seen["kind"] == "run.finished":
                    assert seen["outcome"] == "success"
        assert kinds[0] == "run.started"
        assert watch.interrupt() == 0


# ---- shell ---------------------------------------------------------------------------------


def test_shell_runs_the_old_runbook(daemon: Daemon) -> None:
    """jmxterm's runbook piped into `syncctl shell -n -v silent`: just the values, exit 0."""
    runbook = (
        "open 1\n"
        "domain sync.mbean\n"
        "bean sync.mbean:name=OtherFifoJob\n"
        "run isCurrentlyRunning\n"
        "get State\n"
        "bean QuickJob\n"
        "run quickJob\n"
    )
    shell = syncctl(daemon.state, "shell", "-n", "-v", "silent", stdin=runbook)
    assert shell.returncode == 0, shell.stderr
    lines = shell.stdout.splitlines()
    assert lines[:2] == ["false", "State = idle;"]
    assert RUN_ID.match(lines[2])
    assert len(lines) == 3


# ---- status as a monitoring check; an unreachable daemon -----------------------------------


def test_status_is_a_monitoring_check(short_tmp: Path) -> None:
    """Healthy: the table piped and as JSON, exit 0. After a failed run: the table still
    prints and the exit status is 8. SIGTERM then stops the daemon with exit 0."""
    state = short_tmp / "state"
    with daemon_process(state, e2e_config(short_tmp)) as process:
        piped = syncctl(state, "status")
        assert (piped.returncode, piped.stderr) == (0, "")
        rows = [line.split("\t") for line in piped.stdout.splitlines()]
        assert {row[0] for row in rows} == E2E_JOBS
        assert all(len(row) == 7 and row[1] == "idle" for row in rows)

        as_json = syncctl(state, "status", "--json")
        document = json.loads(as_json.stdout)
        assert as_json.returncode == 0
        assert document["daemon"]["pid"] == process.proc.pid
        assert all(bean["problem"] is None for bean in document["beans"])

        failed = syncctl(state, "run", "FailingJob", "run", "--wait")
        assert failed.returncode == 1

        check = syncctl(state, "status")
        assert check.returncode == 8
        failing = next(
            r
            for r in (line.split("\t") for line in check.stdout.splitlines())
            if r[0] == "FailingJob"
        )
        assert failing[4] == "failed"
        assert "FailingJob is failing: last run failed: ValueError: bad input row 7" in check.stderr
        assert process.stop() == 0


def test_unreachable_daemon_exits_7_naming_the_socket(short_tmp: Path) -> None:
    """No daemon on the state dir: exit 7, and the message names the socket it tried."""
    result = syncctl(short_tmp, "status")
    assert result.returncode == 7
    assert str(short_tmp / "run" / "syncd.sock") in result.stderr
