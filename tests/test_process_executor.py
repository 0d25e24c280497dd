"""The process executor as the event loop sees it: what it leaves off the loop, and what the
job's process keeps to itself."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import multiprocessing.forkserver
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog

from syncd.execution import _proctree
from syncd.execution._niceness import ForkServerDeferral
from syncd.execution.executors import Ending, ProcessExecutor, Result
from syncd.observability.logs import configure_logging
from tests.executions import execute
from tests.packs.sample import LEVELED, QUICK

pytestmark = pytest.mark.skipif(not _proctree.has_proc(), reason="needs Linux /proc")


@pytest.fixture
def daemon_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The daemon's output lines so far (logging at debug, to stdout only), parsed: a job's
    lines arrive rendered by its process and are handed on as they are."""
    out = io.StringIO()
    configure_logging("debug", stream=out, json_output=True, cache=False)
    try:
        yield lambda: [json.loads(line) for line in out.getvalue().splitlines()]
    finally:
        structlog.reset_defaults()


def test_the_relay_thread_is_started_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Thread.start() waits until the new thread has run: called on the loop, it stalled the
    control plane for a scheduler time slice at every run's start."""
    started_on: list[int] = []
    start = threading.Thread.start

    def recording(thread: threading.Thread) -> None:
        if thread.name.startswith("job-relay:"):
            started_on.append(threading.get_ident())
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", recording)

    async def scenario() -> tuple[int, Result]:
        return threading.get_ident(), await execute(ProcessExecutor(), QUICK)

    loop_thread, result = asyncio.run(scenario())

    assert result.ending is Ending.SUCCEEDED
    assert started_on and loop_thread not in started_on


@pytest.mark.parametrize(
    ("level", "relayed"), [(logging.INFO, ["info"]), (logging.DEBUG, ["debug", "info"])]
)
def test_a_job_drops_its_lines_below_the_daemons_level_itself(
    level: int, relayed: list[str], daemon_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    """At info, the job's debug line never reaches the daemon; at debug, both do."""
    result = asyncio.run(execute(ProcessExecutor(log_level=level), LEVELED))

    assert result.ending is Ending.SUCCEEDED
    assert [e["level"] for e in daemon_lines() if e.get("event") == "test.leveled"] == relayed


@pytest.fixture
def fresh_fork_server() -> Iterator[Callable[[], int]]:
    """This process's fork server (multiprocessing's, one per process) stopped before and
    after the test, so the test's executor starts its own: another test's executor may have
    raised the niceness of the one running. Yields a function for its pid."""
    # Its private parts: `_stop` is there for tests (CPython's own use it).
    server: Any = multiprocessing.forkserver._forkserver
    server._stop()
    try:
        yield lambda: int(server._forkserver_pid)
    finally:
        server._stop()


@pytest.mark.parametrize("nice", [0, 10])
def test_job_processes_run_at_the_configured_niceness(
    nice: int,
    daemon_lines: Callable[[], list[dict[str, Any]]],
    fresh_fork_server: Callable[[], int],
) -> None:
    """daemon.job_nice: the job's process defers to the daemon by that much, and so does the
    fork server that forks it (a job's process is niced from its first instruction); the
    daemon's own niceness is untouched."""
    before = os.nice(0)
    executor = ProcessExecutor(nice=nice)
    first = asyncio.run(execute(executor, LEVELED))
    second = asyncio.run(execute(executor, LEVELED))  # forked by the deferred fork server

    assert first.ending is second.ending is Ending.SUCCEEDED
    lines = [e for e in daemon_lines() if e.get("event") == "test.leveled" and e["level"] == "info"]
    assert [line["nice"] for line in lines] == [min(before + nice, 19)] * 2
    assert os.getpriority(os.PRIO_PROCESS, fresh_fork_server()) == min(before + nice, 19)
    assert os.nice(0) == before


def test_only_a_child_of_the_daemon_is_deferred_as_the_fork_server() -> None:
    """The job's parent is given the jobs' niceness only when it is the daemon's own child
    (the fork server): a job process the daemon adopted never renices the daemon."""
    own = os.nice(0)
    deferral = ForkServerDeferral(min(own + 5, 19))
    ours = subprocess.Popen(["sleep", "30"])
    try:
        for parent in (os.getpid(), ours.pid):
            deferral.job_started(_proctree.Stat("job", "S", ppid=parent, pgid=0, start=0))
        assert os.getpriority(os.PRIO_PROCESS, ours.pid) == min(own + 5, 19)
    finally:
        ours.kill()
        ours.wait()
    assert os.nice(0) == own
