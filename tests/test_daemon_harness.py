"""The subprocess harness itself: no log line the daemon wrote is lost between two waits.

A daemon writes each line with its own write, but a reader that falls behind (a loaded machine)
gets several lines in one read; a wait that returned at the first of them once dropped the rest,
so a test waiting next for one of those lines failed although the daemon had logged it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.daemon_process import BOUND, DaemonProcess


@contextmanager
def _writer(output: bytes) -> Iterator[DaemonProcess]:
    """A process that writes `output` to stdout in ONE write, then exits; read as a daemon."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import os, sys; os.write(1, sys.stdin.buffer.read())"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(output)
    proc.stdin.close()
    # Exited: everything it wrote is in the pipe, so the first read takes it all at once.
    proc.wait(BOUND)
    handle = DaemonProcess(proc, Path("unused"))
    try:
        yield handle
    finally:
        handle.close()


def _lines(*events: dict[str, object]) -> bytes:
    return b"".join(json.dumps(event).encode() + b"\n" for event in events)


def test_lines_after_a_match_in_the_same_read_are_kept() -> None:
    """The failure seen in the killed-daemon test: daemon.started and run.interrupted came in
    one read; waiting for the first lost the second."""
    output = _lines(
        {"event": "daemon.started"},
        {"event": "run.interrupted", "run_id": "r1"},
        {"event": "run.started", "run_id": "r2"},
    )
    with _writer(output) as d:
        assert d.wait_for_event("daemon.started") == {"event": "daemon.started"}
        assert d.wait_for_event("run.interrupted", run_id="r1")["run_id"] == "r1"
        assert d.wait_for_event("run.started")["run_id"] == "r2"
        assert [line["event"] for line in d.lines] == [
            "daemon.started",
            "run.interrupted",
            "run.started",
        ]


def test_a_missing_event_fails_naming_every_event_read() -> None:
    with _writer(_lines({"event": "a"}, {"event": "b"}) + b"not json\n") as d:
        d.wait_for_event("a")
        with pytest.raises(AssertionError, match=r"no c \{\} .*events \['a', 'b'\].*not json"):
            d.wait_for_event("c", timeout=BOUND)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=12),
    data=st.data(),
)
def test_every_line_written_can_be_waited_for_in_order(
    events: list[str], data: st.DataObject
) -> None:
    """Whatever subset of the lines a test waits for, in order, each wait finds its own line
    (matched by its sequence number) and every line stays in `lines`."""
    written = [{"event": event, "seq": n} for n, event in enumerate(events)]
    waited = data.draw(st.lists(st.sampled_from(range(len(written))), unique=True).map(sorted))
    with _writer(_lines(*written)) as d:
        for n in waited:
            assert d.wait_for_event(events[n], seq=n) == written[n]
        if waited:
            assert d.lines[: waited[-1] + 1] == written[: waited[-1] + 1]
