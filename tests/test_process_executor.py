"""The process executor as the event loop sees it: what it leaves off the loop, and what the
job's process keeps to itself."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog

from syncd.execution import _proctree
from syncd.execution.executors import Ending, ProcessExecutor, Result
from syncd.job import JobSpec
from syncd.observability.logs import configure_logging
from tests.executions import execute
from tests.packs.sample import LEVELED, QUICK

pytestmark = pytest.mark.skipif(not _proctree.has_proc(), reason="needs Linux /proc")

BOUND = 30.0


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


async def _execute(executor: ProcessExecutor, spec: JobSpec) -> Result:
    return await execute(executor, spec)


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
        return threading.get_ident(), await _execute(ProcessExecutor(), QUICK)

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
    result = asyncio.run(_execute(ProcessExecutor(log_level=level), LEVELED))

    assert result.ending is Ending.SUCCEEDED
    assert [e["level"] for e in daemon_lines() if e.get("event") == "test.leveled"] == relayed


@pytest.mark.parametrize("nice", [0, 10])
def test_job_processes_run_at_the_configured_niceness(
    nice: int, daemon_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    """daemon.job_nice: the job's process defers to the daemon by that much; the daemon's own
    niceness is untouched."""
    before = os.nice(0)
    result = asyncio.run(_execute(ProcessExecutor(nice=nice), LEVELED))

    assert result.ending is Ending.SUCCEEDED
    (line,) = [
        e for e in daemon_lines() if e.get("event") == "test.leveled" and e["level"] == "info"
    ]
    assert line["nice"] == min(before + nice, 19)
    assert os.nice(0) == before
