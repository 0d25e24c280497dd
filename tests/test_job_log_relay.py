"""A job's lines are rendered in its own process and handed on by the daemon as they are: the
same JSON the daemon's chain would have made, sent in batches in order with the job's other
messages, written, echoed and tailed a batch at a time; the daemon's level still holds."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import multiprocessing
import re
import threading
import uuid
from multiprocessing import Pipe
from pathlib import Path
from typing import Any

import pytest
import structlog

from syncd.execution import _joblog, _proctree
from syncd.execution.executors import Ending, ProcessExecutor
from syncd.observability.loghub import LINE_LIMIT, LogHub, LogLine, line_filter
from syncd.observability.logs import (
    FIELD_LIMIT,
    RotatingWriter,
    cap_fields,
    configure_logging,
    relay_lines,
    render_line,
)
from tests.executions import execute
from tests.packs.sample import SHAPED

BOUND = 30.0


def _run(spec: Any, run_id: str, level: int = logging.DEBUG) -> Ending:
    async def scenario() -> Ending:
        return (await execute(ProcessExecutor(log_level=level), spec, run_id)).ending

    return asyncio.run(scenario())


@pytest.mark.skipif(not _proctree.has_proc(), reason="needs Linux /proc")
def test_a_jobs_lines_carry_what_the_daemons_chain_gives_its_own(tmp_path: Path) -> None:
    """Rendered in the job's process: the first keys in the daemon's order, its timestamp,
    level and logger, every field capped at the daemon's limit, the traceback and the stack
    rendered, a library's logger kept; file, stdout and tail hold the same text."""
    hub = LogHub()
    out = io.StringIO()
    writer = configure_logging(
        "debug", stream=out, json_output=True, file=tmp_path / "s.log", hub=hub, cache=False
    )
    assert writer is not None
    run_id = f"r-{uuid.uuid4().hex}"
    try:
        assert _run(SHAPED, run_id) is Ending.SUCCEEDED
        writer.wait_written(BOUND)
    finally:
        writer.close()
    in_file = [line for line in (tmp_path / "s.log").read_text().splitlines() if run_id in line]
    assert [line for line in out.getvalue().splitlines() if run_id in line] == in_file
    assert [line.text for line in hub.last(100, line_filter(run_id=run_id))] == in_file
    shaped, failed, library, stack = (json.loads(line) for line in in_file)

    assert list(shaped)[:7] == ["timestamp", "level", "event", "logger", "job", "run_id", "trigger"]
    assert shaped["timestamp"].endswith("Z")
    assert (shaped["level"], shaped["logger"], shaped["job"], shaped["trigger"]) == (
        "info",
        "syncd.job",
        "ShapedJob",
        "manual",
    )
    assert shaped["big"] == cap_fields(None, "info", {"big": "x" * 5_000})["big"]
    assert len(shaped["big"]) < FIELD_LIMIT + 100
    assert (shaped["n"], shaped["nested"]) == (7, {"a": [1, 2]})
    assert failed["level"] == "error" and "ValueError: shaped failure" in failed["exception"]
    assert (library["logger"], library["message"], library["run_id"]) == (
        "some.library",
        "pool 3 recycled",
        run_id,
    )
    assert "shaped_body" in stack["stack"]


@pytest.mark.skipif(not _proctree.has_proc(), reason="needs Linux /proc")
def test_the_daemons_level_holds_for_a_job_that_was_given_a_lower_one() -> None:
    """A job process told to send everything: its debug line stops at the daemon's level."""
    hub = LogHub()
    configure_logging("info", stream=io.StringIO(), json_output=True, hub=hub, cache=False)
    run_id = f"r-{uuid.uuid4().hex}"
    assert _run(SHAPED, run_id, level=logging.NOTSET) is Ending.SUCCEEDED
    levels = [line.level for line in hub.last(100, line_filter(run_id=run_id))]
    assert levels == ["info", "error", "warning", "info"]

    relay_lines([render_line({"event": "x", "level": "debug", "run_id": run_id})])
    assert len(hub.last(100, line_filter(run_id=run_id))) == 4


def test_the_outbox_sends_in_order_with_runs_of_lines_batched() -> None:
    """Lines between two other messages travel as one message (at most _SEND_LINES each);
    close() sends everything waiting first."""
    reading, sending = Pipe(duplex=False)
    outbox = _joblog.Outbox(sending)
    total = 3 * _joblog._SEND_LINES + 7
    with outbox._ready:  # hold the sender back so the lines gather
        outbox.send(("progress", 1, 2))
        for n in range(total):
            outbox.line((f'{{"n": {n}}}', "info", "J", "r"))
        outbox.send(("ended", "succeeded", "", ""))
    outbox.close()
    got = []
    while reading.poll(BOUND):
        got.append(reading.recv())
        if got[-1][0] == "ended":
            break
    assert got[0] == ("progress", 1, 2) and got[-1] == ("ended", "succeeded", "", "")
    batches = [message[1] for message in got[1:-1]]
    assert all(message[0] == "logs" for message in got[1:-1])
    assert max(len(batch) for batch in batches) <= _joblog._SEND_LINES
    assert [line[0] for batch in batches for line in batch] == [
        f'{{"n": {n}}}' for n in range(total)
    ]


def test_a_full_outbox_makes_the_logging_thread_wait_and_loses_nothing() -> None:
    """With the daemon not reading, a body logging past the outbox's room waits; once read,
    every line arrives in order."""
    reading, sending = Pipe(duplex=False)
    outbox = _joblog.Outbox(sending, limit=5)
    total = 20_000  # far more than the pipe's buffer and the outbox hold
    finished = threading.Event()

    def body() -> None:
        for n in range(total):
            outbox.line((f'{{"n": {n}, "pad": "{"p" * 100}"}}', "info", "J", "r"))
        outbox.close()
        finished.set()

    threading.Thread(target=body, daemon=True).start()
    assert not finished.wait(0.2)  # bounded: it must still be waiting for the reader
    got: list[str] = []
    while len(got) < total and reading.poll(BOUND):
        got.extend(line[0] for line in reading.recv()[1])
    assert finished.wait(BOUND)
    assert [json.loads(text)["n"] for text in got] == list(range(total))


def test_a_process_the_body_forks_sends_its_lines_itself() -> None:
    """A forked process has the pipe but not the outbox's thread: its lines still arrive."""
    reading, sending = Pipe(duplex=False)
    outbox = _joblog.Outbox(sending)
    line = ('{"event": "from.fork"}', "info", "J", "r")
    forked = multiprocessing.get_context("fork").Process(target=outbox.line, args=(line,))
    forked.start()
    forked.join(BOUND)
    assert forked.exitcode == 0
    assert reading.poll(BOUND) and reading.recv() == ("logs", [line])
    outbox.close()


def test_relayed_lines_are_shown_by_the_console_renderer_on_a_terminal() -> None:
    """On a terminal stdout gets the console rendering of a job's line; the tail keeps the
    JSON text."""
    hub = LogHub()
    out = io.StringIO()
    configure_logging("info", stream=out, json_output=False, hub=hub, cache=False)
    line = render_line({"event": "job.step", "level": "info", "job": "J", "run_id": "r", "n": 5})
    relay_lines([line])
    shown = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())  # without the colours
    assert "job.step" in shown and "n=5" in shown and not shown.startswith("{")
    (tailed,) = hub.last(5, line_filter(run_id="r"))
    assert tailed.text == line[0]


def test_without_configured_logging_relayed_lines_are_printed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    structlog.reset_defaults()
    relay_lines([render_line({"event": "a", "level": "info"})])
    assert json.loads(capsys.readouterr().out) == {"level": "info", "event": "a"}


def test_a_rendered_line_over_the_limit_keeps_its_identity_in_the_tail() -> None:
    hub = LogHub()
    huge = {"event": "e", "level": "warning", "job": "J", "run_id": "r1", "blob": "b" * LINE_LIMIT}
    hub.extend([render_line(dict(huge)), render_line({"event": "next", "run_id": "r1"})])
    cut, following = hub.last(5, line_filter(run_id="r1"))
    assert json.loads(cut.text) == {
        "level": "warning",
        "event": "e",
        "job": "J",
        "run_id": "r1",
        "truncated_chars": len(render_line(dict(huge))[0]),
    }
    assert (cut.level, cut.job) == ("warning", "J")
    assert json.loads(following.text)["event"] == "next" and following.seq == cut.seq + 1


def test_followers_get_a_batch_in_order_after_lines_logged_before_it() -> None:
    """A batch from another thread reaches each follower whole and in seq order, after the
    lines the loop had from other threads before it."""
    hub = LogHub()

    async def scenario() -> list[LogLine]:
        hub.bind_loop(asyncio.get_running_loop())
        async with hub.follow(line_filter(job="J")) as follower:
            batches = [
                [(f'{{"n": {b * 100 + n}}}', "info", "J", "r") for n in range(100)]
                for b in range(5)
            ]
            senders = [threading.Thread(target=hub.extend, args=(batch,)) for batch in batches]
            for sender in senders:  # one after another: their order is the order to keep
                sender.start()
                sender.join()
            got: list[LogLine] = []
            async with asyncio.timeout(BOUND):
                while len(got) < 500:
                    line, lost = await follower.next()
                    assert lost == 0
                    got.append(line)
            return got

    got = asyncio.run(scenario())
    assert [json.loads(line.text)["n"] for line in got] == list(range(500))
    assert [line.seq for line in got] == sorted(line.seq for line in got)


def test_a_batch_rotates_the_file_at_line_boundaries_by_bytes(tmp_path: Path) -> None:
    """One write_many() bigger than the file's limit: rotated between lines, each file within
    its bytes (multi-byte text), none lost; a batch larger than the queue's room goes in."""
    writer = RotatingWriter(tmp_path / "s.log", max_bytes=2_000, backups=50, queue_lines=10)
    lines = [json.dumps({"n": n, "text": "é" * 40}, ensure_ascii=False) for n in range(300)]
    try:
        writer.write_many(lines[:150])
        writer.write_many(lines[150:], None)
        assert writer.wait_written(BOUND)
    finally:
        writer.close()
    files = sorted(tmp_path.glob("s.log.*"), key=lambda p: -int(p.suffix[1:]))
    files.append(tmp_path / "s.log")
    assert all(f.stat().st_size <= 2_000 for f in files)
    assert [line for f in files for line in f.read_text().splitlines()] == lines
