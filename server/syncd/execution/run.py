"""One run under way: its record as it changes, its cancel and change signals, its id, and the
options its job executes with. Owned by the coordinator (`runs`); read by the edges.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from syncd.execution.executors import Executor, ThreadExecutor
from syncd.ledger.model import RunRecord


def new_run_id(started_at: datetime) -> str:
    """Sortable, readable, unique across a cluster's repositories:
    `20261122T031500.123-4f3a9c0e1d2b7a65`, the start to the millisecond, then 64 random bits
    (24 bits made a same-second clash between repositories of a large fleet likely enough to
    matter once run records replicate)."""
    millis = started_at.microsecond // 1000
    return f"{started_at:%Y%m%dT%H%M%S}.{millis:03d}-{secrets.token_hex(8)}"


@dataclass(slots=True, eq=False)
class Run:
    """A run under way. Owned by the event loop; its worker thread only touches counters."""

    record: RunRecord
    started_monotonic: float
    cancel_requested: threading.Event = field(default_factory=threading.Event)
    cancel_signal: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    cancel_reason: str = ""  # "", "request", "timeout" or "shutdown"
    ending: bool = False  # its end is being recorded; it finishes once the ledger has it
    version: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def run_id(self) -> str:
        return self.record.run_id

    def update(self, **changes: Any) -> RunRecord:
        """Replace the record with changed fields; safe from the loop and the worker alike."""
        with self._lock:
            self.record = replace(self.record, **changes)
            return self.record

    def touch(self) -> None:
        """Wake whoever follows this run (WatchRun, `--wait`)."""
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self, seen_version: int, timeout: float) -> bool:
        """Wait until the run changes after `seen_version`; False on timeout."""
        if self.version != seen_version:
            return True
        try:
            async with asyncio.timeout(timeout):
                await self._changed.wait()
        except TimeoutError:
            return False
        return True


@dataclass(frozen=True, slots=True, kw_only=True)
class JobOptions:
    """How one job executes: its time limit, its cancel grace and where its body runs."""

    timeout: float = 0.0  # seconds; 0 means no limit
    cancel_grace: float = 10.0
    executor: Executor = field(default_factory=ThreadExecutor)


class Reporter:
    """Progress from the executor's threads into the run, coalesced per loop turn."""

    def __init__(self, run: Run, notify: Any) -> None:
        self._run = run
        self._notify = notify

    def progress(self, done: int, total: int) -> None:
        self._run.update(progress_done=done, progress_total=total)
        self._notify(self._run)

    def rows(self, read: int, written: int) -> None:
        with self._run._lock:
            rec = self._run.record
            self._run.record = replace(
                rec, rows_read=rec.rows_read + read, rows_written=rec.rows_written + written
            )
        self._notify(self._run)
