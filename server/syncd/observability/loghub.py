"""The tail of the daemon's log in memory: the last lines, and live followers.

Lines arrive from any thread; followers live on the event loop. Each follower has a bounded
queue: a slow or stalled follower loses lines (and is told how many) instead of slowing the
daemon or the other followers.

Memory is bounded by characters as well as by lines: a line longer than LINE_LIMIT is kept as
its identifying fields only, and the tail and each follower's queue hold at most a fixed number
of characters, so callers who get huge inputs echoed into log lines cannot grow the daemon.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

LEVEL_ORDER = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
LINE_LIMIT = 16 * 1024  # characters of one line in the tail; a longer one is cut down
TAIL_CHARS = 16 * 1024 * 1024  # characters the tail holds at most, beside its line count
FOLLOWER_CHARS = 8 * 1024 * 1024  # characters one follower may have waiting
_KEPT_FIELDS = ("timestamp", "level", "event", "logger", "job", "run_id", "trigger")
_KEPT_FIELD_LIMIT = 200


def fit_line(text: str, fields: Mapping[str, Any]) -> str:
    """`text`, or for a line over LINE_LIMIT a JSON line of its identifying fields saying
    how long it was (the log file keeps the whole line)."""
    if len(text) <= LINE_LIMIT:
        return text
    kept: dict[str, Any] = {}
    for key in _KEPT_FIELDS:
        value = fields.get(key)
        if value is not None:
            shown = value if isinstance(value, str) else str(value)
            kept[key] = shown[:_KEPT_FIELD_LIMIT]
    kept["truncated_chars"] = len(text)
    return json.dumps(kept, ensure_ascii=False)


def _fit_rendered(text: str, level: str, job: str, run_id: str) -> str:
    """fit_line for a rendered line over LINE_LIMIT (rare): its fields from its text."""
    try:
        fields = json.loads(text)
    except ValueError:
        fields = None
    if not isinstance(fields, dict):
        fields = {"level": level, "job": job, "run_id": run_id}
    return fit_line(text, fields)


class LogLine(NamedTuple):  # a tuple: made for every line a job logs, half a dataclass's cost
    seq: int
    text: str  # the JSON line
    level: str
    job: str
    run_id: str


# A line as its process rendered it: (the JSON text, level, job, run_id).
RenderedLine = tuple[str, str, str, str]

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
    waiting_chars: int = 0  # of the lines in `queue`; take lines by next() and drain() only

    def offer(self, line: LogLine) -> None:
        if not self.keep(line):
            return
        if self.waiting_chars + len(line.text) > FOLLOWER_CHARS:
            self.lost += 1
            return
        try:
            self.queue.put_nowait(line)
        except asyncio.QueueFull:
            self.lost += 1
        else:
            self.waiting_chars += len(line.text)

    def offer_many(self, lines: Sequence[LogLine]) -> None:
        for line in lines:
            self.offer(line)

    async def next(self) -> tuple[LogLine, int]:
        line = await self.queue.get()
        self.waiting_chars -= len(line.text)
        lost, self.lost = self.lost, 0
        return line, lost

    def drain(self, limit: int) -> list[tuple[LogLine, int]]:
        """Up to `limit` more lines already waiting, without waiting."""
        out: list[tuple[LogLine, int]] = []
        while len(out) < limit and not self.queue.empty():
            line = self.queue.get_nowait()
            self.waiting_chars -= len(line.text)
            lost, self.lost = self.lost, 0
            out.append((line, lost))
        return out


class LogHub:
    def __init__(self, capacity: int = 10_000, max_chars: int = TAIL_CHARS) -> None:
        self._ring: deque[LogLine] = deque()
        self._capacity = capacity
        self._max_chars = max_chars
        self._chars = 0
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._followers: set[Follower] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._pending: list[LogLine] = []  # from other threads, for the followers
        self._delivery_scheduled = False

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._loop_thread = threading.get_ident()

    def append(self, text: str, fields: Mapping[str, Any]) -> None:
        self.extend(
            [
                (
                    fit_line(text, fields),
                    str(fields.get("level", "info")),
                    str(fields.get("job", "") or ""),
                    str(fields.get("run_id", "") or ""),
                )
            ]
        )

    def extend(self, rendered: Sequence[RenderedLine]) -> None:
        """Lines in order, from any thread: a job's batch is one lock, one hand-over to the
        loop and one offer to each follower, not one of each a line."""
        with self._lock:
            lines = [
                LogLine(
                    next(self._seq),
                    text if len(text) <= LINE_LIMIT else _fit_rendered(text, level, job, run_id),
                    level[:_KEPT_FIELD_LIMIT],
                    job[:_KEPT_FIELD_LIMIT],
                    run_id[:_KEPT_FIELD_LIMIT],
                )
                for text, level, job, run_id in rendered
            ]
            self._ring.extend(lines)
            self._chars += sum(len(line.text) for line in lines)
            while len(self._ring) > self._capacity or self._chars > self._max_chars:
                self._chars -= len(self._ring.popleft().text)
        if not lines or not self._followers or self._loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            self._deliver_pending()  # lines from other threads first: followers see seq order
            self._deliver(lines)
            return
        with self._lock:
            self._pending.extend(lines)
            if self._delivery_scheduled:
                return
            self._delivery_scheduled = True
        # One callback on the loop for whatever other threads add until it runs, not one a
        # line: a job logging flat out would otherwise queue thousands of callbacks a second.
        try:
            self._loop.call_soon_threadsafe(self._deliver_pending)
        except RuntimeError:  # a closed loop: the line is still in the ring and the file
            with self._lock:
                self._pending.clear()
                self._delivery_scheduled = False

    def _deliver_pending(self) -> None:
        with self._lock:
            lines, self._pending = self._pending, []
            self._delivery_scheduled = False
        if lines:
            self._deliver(lines)

    def _deliver(self, lines: list[LogLine]) -> None:
        for follower in list(self._followers):
            follower.offer_many(lines)

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
