"""The run ledger: every run is written when it starts and again when it ends."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from syncd.enums import RunOutcome, RunState, Trigger
from syncd.values import Value


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRecord:
    """One run, as the ledger keeps it."""

    run_id: str
    bean: str
    operation: str
    arguments: Mapping[str, Value] = field(default_factory=dict)
    trigger: Trigger
    actor: str
    slot_time: datetime | None = None
    started_at: datetime
    ended_at: datetime | None = None
    state: RunState = RunState.RUNNING
    outcome: RunOutcome | None = None
    error_type: str = ""
    error_message: str = ""
    rows_read: int = 0
    rows_written: int = 0
    progress_done: int = 0
    progress_total: int = 0


class RunLedger(Protocol):
    def record_start(self, record: RunRecord) -> None: ...
    def record_end(self, record: RunRecord) -> None: ...
    def get(self, run_id: str) -> RunRecord | None: ...
    def last_finished(self, bean: str) -> RunRecord | None: ...
    def last_success(self, bean: str) -> RunRecord | None: ...
    def history(self, bean: str | None = None, limit: int = 50) -> list[RunRecord]: ...


class MemoryLedger:
    """A ledger held in memory, bounded to the newest `keep` runs."""

    def __init__(self, keep: int = 10_000) -> None:
        self._keep = keep
        self._runs: OrderedDict[str, RunRecord] = OrderedDict()
        self._last_finished: dict[str, RunRecord] = {}
        self._last_success: dict[str, RunRecord] = {}
        self._lock = threading.Lock()

    def record_start(self, record: RunRecord) -> None:
        with self._lock:
            self._runs[record.run_id] = record
            while len(self._runs) > self._keep:
                self._runs.popitem(last=False)

    def record_end(self, record: RunRecord) -> None:
        with self._lock:
            self._runs[record.run_id] = record
            self._last_finished[record.bean] = record
            if record.outcome is RunOutcome.SUCCESS:
                self._last_success[record.bean] = record

    def get(self, run_id: str) -> RunRecord | None:
        return self._runs.get(run_id)

    def last_finished(self, bean: str) -> RunRecord | None:
        return self._last_finished.get(bean)

    def last_success(self, bean: str) -> RunRecord | None:
        return self._last_success.get(bean)

    def history(self, bean: str | None = None, limit: int = 50) -> list[RunRecord]:
        with self._lock:
            runs = [r for r in reversed(self._runs.values()) if bean is None or r.bean == bean]
        return runs[:limit]
