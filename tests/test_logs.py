"""Structured logs: one chain, fanned out to file, stdout and the tail; rotation; followers."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import logging.handlers
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from syncd.observability.loghub import LogHub, line_filter
from syncd.observability.logs import RotatingWriter, configure_logging


def test_one_event_reaches_file_stdout_and_tail_as_the_same_json(tmp_path: Path) -> None:
    """The JSON line is rendered once: file, piped stdout and the tail hub see the same text."""
    hub = LogHub()
    out = io.StringIO()
    writer = configure_logging(
        "info", stream=out, json_output=True, file=tmp_path / "s.log", hub=hub, cache=False
    )
    structlog.get_logger("syncd.test").info("test.event", job="A", run_id="r1", rows=3)
    assert writer is not None
    writer.close()
    file_line = (tmp_path / "s.log").read_text().strip()
    assert out.getvalue().strip() == file_line
    (tail,) = hub.last(10, line_filter())
    assert tail.text == file_line
    event = json.loads(file_line)
    assert list(event)[:6] == ["timestamp", "level", "event", "logger", "job", "run_id"]
    assert event["event"] == "test.event" and event["rows"] == 3
    assert event["timestamp"].endswith("Z")


def test_library_logs_go_through_the_chain_with_the_job_context(tmp_path: Path) -> None:
    """A stdlib logger's warning, inside a job's context, carries job and run_id."""
    hub = LogHub()
    configure_logging("info", stream=io.StringIO(), json_output=True, hub=hub, cache=False)
    with structlog.contextvars.bound_contextvars(job="A", run_id="r9"):
        logging.getLogger("sqlalchemy.pool").warning("connection %s recycled", 7)
    (line,) = hub.last(5, line_filter(run_id="r9"))
    event = json.loads(line.text)
    assert (event["event"], event["logger"], event["job"]) == (
        "library.log",
        "sqlalchemy.pool",
        "A",
    )
    assert event["message"] == "connection 7 recycled"


def test_the_console_renderer_is_used_on_a_terminal() -> None:
    """On a TTY stdout gets the readable console rendering, the tail still JSON."""

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    hub = LogHub()
    out = Tty()
    configure_logging("info", stream=out, hub=hub, cache=False)
    structlog.get_logger("x").info("test.pretty", key="value")
    assert "test.pretty" in out.getvalue() and not out.getvalue().startswith("{")
    assert json.loads(hub.last(1, line_filter())[0].text)["key"] == "value"


def test_levels_filter_below_the_configured_level() -> None:
    """With level warning, info events are dropped before rendering."""
    hub = LogHub()
    configure_logging("warning", stream=io.StringIO(), json_output=True, hub=hub, cache=False)
    log = structlog.get_logger("x")
    log.info("test.quiet")
    log.warning("test.loud")
    assert [json.loads(line.text)["event"] for line in hub.last(10, line_filter())] == ["test.loud"]


def test_the_file_rotates_by_size_and_keeps_its_backups(tmp_path: Path) -> None:
    """Past max_bytes the file moves to .1 (then .2), and no line is lost or split."""
    writer = RotatingWriter(tmp_path / "s.log", max_bytes=100, backups=2)
    lines = [f'{{"n": {i}, "pad": "{"x" * 30}"}}' for i in range(10)]
    for line in lines:
        writer.write(line)
    writer.close()
    kept = []
    for name in ("s.log.2", "s.log.1", "s.log"):
        kept += (tmp_path / name).read_text().splitlines()
    assert kept == lines[-len(kept) :]
    assert all(json.loads(k) for k in kept)
    assert not (tmp_path / "s.log.3").exists()


@pytest.mark.parametrize("text", ["é", "€", "𝄞", "名"])
def test_the_size_limit_counts_bytes_not_characters(tmp_path: Path, text: str) -> None:
    """Lines of multi-byte text rotate by their UTF-8 size: no file passes max_bytes."""
    writer = RotatingWriter(tmp_path / "s.log", max_bytes=200, backups=3)
    assert isinstance(writer, logging.handlers.RotatingFileHandler)
    lines = [f"{i} {text * 40}" for i in range(8)]  # 80-160 bytes each, 42 characters
    for line in lines:
        writer.write(line)
    writer.close()
    names = ("s.log.3", "s.log.2", "s.log.1", "s.log")
    files = [tmp_path / n for n in names if (tmp_path / n).exists()]
    assert len(files) >= 3 and all(f.stat().st_size <= 200 for f in files)
    kept = [line for f in files for line in f.read_text(encoding="utf-8").splitlines()]
    assert kept == lines[-len(kept) :] and len(kept) >= 4


def test_no_backups_means_the_file_starts_over(tmp_path: Path) -> None:
    """With backups = 0 a full file is emptied, not kept growing."""
    writer = RotatingWriter(tmp_path / "s.log", max_bytes=100, backups=0)
    for i in range(5):
        writer.write(f"{i} {'x' * 60}")
    writer.close()
    assert (tmp_path / "s.log").read_text().splitlines() == [f"4 {'x' * 60}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.log"]


def test_tail_filters_by_job_run_and_level() -> None:
    """last() applies the job, run and minimum level filters."""
    hub = LogHub()
    for job, run, level in [("A", "1", "info"), ("B", "2", "error"), ("A", "3", "warning")]:
        hub.append(json.dumps({"job": job}), {"job": job, "run_id": run, "level": level})
    assert [line.run_id for line in hub.last(10, line_filter(job="A"))] == ["1", "3"]
    assert [line.run_id for line in hub.last(10, line_filter(level="warning"))] == ["2", "3"]
    assert [line.run_id for line in hub.last(1, line_filter())] == ["3"]


def test_a_stalled_follower_does_not_slow_a_fast_one() -> None:
    """A follower that never reads loses lines and is told how many; the other gets all."""

    async def main() -> None:
        hub = LogHub()
        hub.bind_loop(asyncio.get_running_loop())
        async with hub.follow(line_filter()) as stalled, hub.follow(line_filter()) as fast:
            stalled.queue = asyncio.Queue(maxsize=10)
            received = 0
            for i in range(1000):
                hub.append(f'{{"n": {i}}}', {"level": "info"})
                _, lost = await fast.next()
                assert lost == 0
                received += 1
            assert received == 1000
            assert stalled.queue.qsize() == 10
            first, lost = await stalled.next()
            assert first.text == '{"n": 0}'
            assert lost == 990

    asyncio.run(main())


def test_the_canonical_run_line_is_one_event_with_the_summary() -> None:
    """Each run ends with one run.finished event: outcome, duration, rows, trigger."""
    import tempfile

    from tests.harness import running_daemon
    from tests.packs.sample import QUICK

    async def main(state: Path) -> list[MutableMapping[str, Any]]:
        from syncd_api.v1 import management_pb2 as pb

        with capture_logs() as events:
            async with running_daemon(state, [QUICK]) as rt:
                reply = await rt.stub.Invoke(pb.InvokeRequest(bean="QuickJob", operation="run"))
                async for _ in rt.stub.WatchRun(pb.WatchRunRequest(run_id=reply.run.run_id)):
                    pass
        return events

    with tempfile.TemporaryDirectory(prefix="sd-") as tmp:
        events = asyncio.run(main(Path(tmp) / "state"))
    (finished,) = [e for e in events if e["event"] == "run.finished"]
    assert finished["outcome"] == "success"
    assert finished["trigger"] == "manual"
    assert finished["rows_read"] == 3
    assert isinstance(finished["duration_s"], float)
    assert finished["job"] == "QuickJob"


def test_lines_logged_in_a_jobs_process_reach_the_tail(short_tmp: Path) -> None:
    """A job running in a child process logs through the daemon: its lines (and its libraries'
    warnings) are in the tail, carrying job and run_id."""
    from syncd_api.v1 import management_pb2 as pb
    from tests.harness import running_daemon
    from tests.packs.sample import CHATTY

    hub = LogHub()
    configure_logging("info", stream=io.StringIO(), json_output=True, hub=hub, cache=False)

    async def main() -> None:
        async with running_daemon(
            short_tmp / "state", [CHATTY], execution="process", log_hub=hub
        ) as rt:
            reply = await rt.stub.Invoke(pb.InvokeRequest(bean="ChattyJob", operation="run"))
            async for _ in rt.stub.WatchRun(pb.WatchRunRequest(run_id=reply.run.run_id)):
                pass
            lines = [
                json.loads(x.text) for x in hub.last(100, line_filter(run_id=reply.run.run_id))
            ]
            events = [e["event"] for e in lines]
            assert "test.chatty" in events and "library.log" in events
            chatty = next(e for e in lines if e["event"] == "test.chatty")
            assert (chatty["job"], chatty["pid_differs"]) == ("ChattyJob", True)
            library = next(e for e in lines if e["event"] == "library.log")
            assert library["logger"] == "some.library" and library["job"] == "ChattyJob"

    asyncio.run(main())
