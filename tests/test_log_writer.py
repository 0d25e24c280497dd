"""The log file's writer thread: lines are written off the caller's thread, in order, none
lost, rotated by bytes; a job logging flat out reaches the file and every tail follower whole;
a full disk is reported and the writing goes on once there is room."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from syncd.execution import _proctree
from syncd.execution.executors import Ending, ProcessExecutor
from syncd.observability.loghub import LogHub, LogLine, line_filter
from syncd.observability.logs import RotatingWriter, configure_logging, flush_logs
from tests.executions import execution
from tests.packs.sample import FLOOD, FLOOD_LINES

BOUND = 30.0


def _lines(directory: Path, name: str = "s.log") -> list[str]:
    """Every line of the log and its backups, oldest first."""
    files = sorted(directory.glob(f"{name}.*"), key=lambda p: -int(p.suffix[1:]))
    files.append(directory / name)
    return [line for f in files if f.exists() for line in f.read_text().splitlines()]


def test_the_file_is_written_by_the_writer_thread_not_the_caller(tmp_path: Path) -> None:
    """write() returns without touching the file: while the writer is held off, the file stays
    empty even for the thread holding the handler's lock; released, the line is there."""
    writer = RotatingWriter(tmp_path / "s.log", max_bytes=1 << 20, backups=1)
    try:
        assert writer.lock is not None
        with writer.lock:  # re-entrant: a write on this thread would go through
            writer.write('{"n": 1}')
            assert (tmp_path / "s.log").read_text() == ""
        writer.wait_written()
        assert (tmp_path / "s.log").read_text() == '{"n": 1}\n'
    finally:
        writer.close()


def test_stdout_is_written_by_the_writer_thread_after_the_file(tmp_path: Path) -> None:
    """With a log file, the daemon's stdout gets each line from the writer thread too: a slow
    pipe or terminal holds up no caller, and it shows the lines in the order logged."""
    out = io.StringIO()
    writer = configure_logging(
        "info", stream=out, json_output=True, file=tmp_path / "s.log", hub=LogHub(), cache=False
    )
    assert writer is not None and writer.lock is not None
    try:
        log = structlog.get_logger("syncd.test")
        with writer.lock:  # the writer thread waits here, before the file and stdout
            for n in range(100):
                log.info("test.echo", n=n)
            assert out.getvalue() == ""
        writer.wait_written()
        shown = [json.loads(line)["n"] for line in out.getvalue().splitlines()]
        assert shown == list(range(100))
        assert out.getvalue() == (tmp_path / "s.log").read_text()
    finally:
        writer.close()
        structlog.reset_defaults()


def test_flush_logs_returns_once_the_lines_are_written(tmp_path: Path) -> None:
    """What a forced exit does before os._exit: waits (bounded) for the writer threads; a
    writer that cannot write in time does not hold the exit up."""
    writer = RotatingWriter(tmp_path / "s.log", max_bytes=1 << 20, backups=1)
    assert writer.lock is not None
    try:
        with writer.lock:  # held by this thread: the writer cannot write meanwhile
            writer.write('{"n": 1}')
            assert writer.wait_written(0.05) is False
            flush_logs(0.05)  # bounded: returns although the line is not written
            assert (tmp_path / "s.log").read_text() == ""
        writer.write('{"n": 2}')
        flush_logs(BOUND)
        assert (tmp_path / "s.log").read_text() == '{"n": 1}\n{"n": 2}\n'
    finally:
        writer.close()


def test_a_small_queue_keeps_every_line_in_order_from_each_thread(tmp_path: Path) -> None:
    """Four threads write through a queue of 4 lines: they wait for room, nothing is dropped,
    and each thread's lines are in the file in the order it wrote them."""
    writer = RotatingWriter(tmp_path / "s.log", max_bytes=1 << 24, backups=1, queue_lines=4)

    def produce(name: str) -> None:
        for n in range(2_000):
            writer.write(json.dumps({"t": name, "n": n}))

    threads = [threading.Thread(target=produce, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(BOUND)
        assert not thread.is_alive()
    writer.close()
    events = [json.loads(line) for line in _lines(tmp_path)]
    assert len(events) == 8_000
    for name in ("t0", "t1", "t2", "t3"):
        assert [e["n"] for e in events if e["t"] == name] == list(range(2_000))


def test_rotation_by_bytes_holds_inside_one_batch(tmp_path: Path) -> None:
    """Lines queued while the writer is held off are written as one batch, which crosses the
    size limit many times: every file stays within max_bytes, no line is split or lost."""
    writer = RotatingWriter(tmp_path / "s.log", max_bytes=1_000, backups=50)
    lines = [json.dumps({"n": n, "text": "é" * (n % 40)}) for n in range(300)]
    assert writer.lock is not None
    with writer.lock:
        for line in lines:
            writer.write(line)
    writer.close()
    files = list(tmp_path.iterdir())
    assert len(files) > 10
    assert all(f.stat().st_size <= 1_000 for f in files)
    assert _lines(tmp_path) == lines


def test_close_writes_what_is_still_queued(tmp_path: Path) -> None:
    """Lines queued when the daemon closes its log are in the file afterwards."""
    writer = RotatingWriter(tmp_path / "s.log", max_bytes=1 << 20, backups=1)
    assert writer.lock is not None
    with writer.lock:
        for n in range(500):
            writer.write(f'{{"n": {n}}}')
    writer.close()
    assert _lines(tmp_path) == [f'{{"n": {n}}}' for n in range(500)]


@pytest.mark.skipif(not _proctree.has_proc(), reason="needs Linux /proc")
def test_a_job_logging_flat_out_reaches_the_file_and_every_follower_whole(
    short_tmp: Path,
) -> None:
    """Every line of a job's process, in order, in the file and at two followers (tail -f),
    with followers' lines delivered on the loop."""
    hub = LogHub()
    log_file = short_tmp / "logs" / "syncd.log"
    writer = configure_logging(
        "info", stream=io.StringIO(), json_output=True, file=log_file, hub=hub, cache=False
    )
    assert writer is not None
    run_id = f"r-{uuid.uuid4().hex}"

    class Reporter:
        def progress(self, done: int, total: int) -> None:
            pass

        def rows(self, read: int, written: int) -> None:
            pass

    async def follow(into: list[LogLine], ready: asyncio.Event) -> None:
        async with hub.follow(line_filter(run_id=run_id)) as follower:
            ready.set()
            while len(into) < FLOOD_LINES:
                line, lost = await follower.next()
                assert lost == 0
                into.append(line)

    async def scenario() -> tuple[list[LogLine], list[LogLine], Ending]:
        hub.bind_loop(asyncio.get_running_loop())
        first: list[LogLine] = []
        second: list[LogLine] = []
        ready = [asyncio.Event(), asyncio.Event()]
        followers = [
            asyncio.ensure_future(follow(first, ready[0])),
            asyncio.ensure_future(follow(second, ready[1])),
        ]
        async with asyncio.timeout(BOUND):
            await asyncio.gather(*(event.wait() for event in ready))
            result = await ProcessExecutor().execute(execution(FLOOD, run_id, Reporter()))
            await asyncio.gather(*followers)
        return first, second, result.ending

    try:
        first, second, ending = asyncio.run(scenario())
    finally:
        writer.close()
        structlog.reset_defaults()
    assert ending is Ending.SUCCEEDED
    expected = list(range(FLOOD_LINES))
    for followed in (first, second):
        assert [json.loads(line.text)["n"] for line in followed] == expected
    in_file = [json.loads(line) for line in _lines(log_file.parent, "syncd.log")]
    assert [e["n"] for e in in_file if e.get("run_id") == run_id] == expected


@pytest.fixture
def tiny_disk() -> Iterator[Path]:
    """A small tmpfs (256 KiB), unmounted afterwards: a disk that can fill up."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path = Path(tempfile.mkdtemp(prefix="sd-fs-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
        path.rmdir()


def test_a_full_disk_is_reported_and_writing_resumes_once_there_is_room(
    tiny_disk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The log's disk fills up: the callers never see an error (logging's handleError reports
    it on stderr) and keep going; once room is made, new lines reach the file, none of them
    continuing a half-written line."""
    writer = RotatingWriter(tiny_disk / "s.log", max_bytes=1 << 30, backups=1)
    filler = tiny_disk / "filler"
    try:
        writer.write('{"phase": "before"}')
        writer.wait_written()
        fs = os.statvfs(tiny_disk)
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.posix_fallocate(fd, 0, fs.f_bavail * fs.f_frsize)
        finally:
            os.close(fd)
        for n in range(2_000):  # more than the file object's buffer holds
            writer.write(json.dumps({"phase": "full", "n": n, "pad": "x" * 100}))
        writer.wait_written()
        assert "No space left on device" in capsys.readouterr().err
        filler.unlink()
        writer.write('{"phase": "after"}')
        writer.wait_written()
    finally:
        writer.close()
    kept = (tiny_disk / "s.log").read_text().splitlines()
    assert all(json.loads(line) for line in kept)  # no line continues a half-written one
    assert kept[0] == '{"phase": "before"}'
    assert kept[-1] == '{"phase": "after"}'


def test_followers_get_lines_from_threads_and_the_loop_in_sequence() -> None:
    """Lines another thread logs reach the followers in one loop callback per burst; a line the
    loop logs meanwhile comes after them, so each follower sees every line in seq order."""

    async def scenario() -> list[LogLine]:
        hub = LogHub()
        hub.bind_loop(asyncio.get_running_loop())
        got: list[LogLine] = []
        async with hub.follow(line_filter()) as follower:

            def log_from_a_thread() -> None:
                for n in range(1000):
                    hub.append(f'{{"n": {n}}}', {"level": "info"})

            # Joined without yielding to the loop: its delivery callback has not run yet when
            # the loop logs its own line below.
            thread = threading.Thread(target=log_from_a_thread)
            thread.start()
            thread.join(BOUND)
            assert not thread.is_alive()
            hub.append('{"n": "loop"}', {"level": "info"})
            async with asyncio.timeout(BOUND):
                while len(got) < 1001:
                    line, lost = await follower.next()
                    assert lost == 0
                    got.append(line)
        return got

    got = asyncio.run(scenario())
    assert [line.seq for line in got] == sorted(line.seq for line in got)
    assert [json.loads(line.text)["n"] for line in got] == [*range(1000), "loop"]
