"""The tail of the daemon's log in memory: the last lines, and live followers.

Lines arrive from any thread; followers live on the event loop. Each follower has a bounded
queue: a slow or stalled follower loses lines (and is told how many) instead of slowing the
daemon or the other followers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

LEVEL_ORDER = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


@dataclass(frozen=True, slots=True)
class LogLine:
    seq: int
    text: str  # the JSON line
    level: str
    job: str
    run_id: str


Filter = Callable[[LogLine], bool]


def line_filter(job: str = "", run_id: str = "", level: str = "") -> Filter:
    """Lines of a job and/or a run, at or above a level."""
    minimum = LEVEL_ORDER.get(level.lower(), 0) if level else 0

    def keep(line: LogLine) -> bool:
        return (
            (not job or line.job == job)
            and (not run_id or line.run_id == run_id)
            and LEVEL_ORDER.get(line.level, 20) >= minimum
        )

    return keep


@dataclass(eq=False)
class Follower:
    keep: Filter
    queue: asyncio.Queue[LogLine] = field(default_factory=lambda: asyncio.Queue(maxsize=10_000))
    lost: int = 0

    def offer(self, line: LogLine) -> None:
        if not self.keep(line):
            return
        try:
            self.queue.put_nowait(line)
        except asyncio.QueueFull:
            self.lost += 1

    async def next(self) -> tuple[LogLine, int]:
        line = await self.queue.get()
        lost, self.lost = self.lost, 0
        return line, lost

    def drain(self, limit: int) -> list[tuple[LogLine, int]]:
        """Up to `limit` more lines already waiting, without waiting."""
        out: list[tuple[LogLine, int]] = []
        while len(out) < limit and not self.queue.empty():
            line = self.queue.get_nowait()
            lost, self.lost = self.lost, 0
            out.append((line, lost))
        return out


class LogHub:
    def __init__(self, capacity: int = 10_000) -> None:
        self._ring: deque[LogLine] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._followers: set[Follower] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._loop_thread = threading.get_ident()

    def append(self, text: str, fields: Mapping[str, Any]) -> None:
        with self._lock:
            line = LogLine(
                next(self._seq),
                text,
                str(fields.get("level", "info")),
                str(fields.get("job", "") or ""),
                str(fields.get("run_id", "") or ""),
            )
            self._ring.append(line)
        if not self._followers or self._loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            self._deliver(line)
        else:
            # A closed loop raises: the line is still in the ring and the file.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._deliver, line)

    def _deliver(self, line: LogLine) -> None:
        for follower in list(self._followers):
            follower.offer(line)

    def last(self, count: int, keep: Filter) -> list[LogLine]:
        with self._lock:
            lines = list(self._ring)
        picked = [line for line in lines if keep(line)]
        return picked[-count:] if count > 0 else []

    @asynccontextmanager
    async def follow(self, keep: Filter) -> AsyncIterator[Follower]:
        follower = Follower(keep)
        self._followers.add(follower)
        try:
            yield follower
        finally:
            self._followers.discard(follower)
