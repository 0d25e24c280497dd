"""Daemon events — the equivalent of JMX notifications: runs started, progressing, finished,
skipped, missed; beans paused and resumed; the daemon draining.

Each subscriber has a bounded queue: a slow one never blocks the daemon or other subscribers;
when its queue is full it loses events and is told how many.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime


class EventKind(enum.StrEnum):
    RUN_STARTED = "run.started"
    RUN_PROGRESS = "run.progress"
    RUN_FINISHED = "run.finished"
    RUN_SKIPPED = "run.skipped"
    RUN_MISSED = "run.missed"
    BEAN_PAUSED = "bean.paused"
    BEAN_RESUMED = "bean.resumed"
    CONFIG_RELOADED = "config.reloaded"
    DAEMON_DRAINING = "daemon.draining"


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    kind: EventKind
    at: datetime
    bean: str = ""
    run_id: str = ""
    outcome: str = ""
    message: str = ""
    progress_done: int = 0
    progress_total: int = 0
    rows_read: int = 0
    rows_written: int = 0


@dataclass(eq=False)
class Subscription:
    queue: asyncio.Queue[Event] = field(default_factory=lambda: asyncio.Queue(maxsize=1000))
    lost: int = 0

    async def next(self) -> tuple[Event, int]:
        """The next event, and how many were lost before it (then reset)."""
        event = await self.queue.get()
        lost, self.lost = self.lost, 0
        return event, lost


class EventHub:
    """Fan-out of daemon events to subscribers; publish never blocks."""

    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()
        self._listeners: list[Callable[[Event], None]] = []

    def listen(self, listener: Callable[[Event], None]) -> None:
        """Call `listener` synchronously with every event (metrics, notifications); it must
        be quick and must not raise."""
        self._listeners.append(listener)

    def publish(self, event: Event) -> None:
        for listener in self._listeners:
            listener(event)
        for sub in self._subscribers:
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                sub.lost += 1

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        sub = Subscription()
        self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)

    def __len__(self) -> int:
        return len(self._subscribers)
