"""The run ledger: every run is written when it starts and again when it ends."""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
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
    # The repository that ran it ("" where the ledger does not replicate, e.g. in memory).
    origin: str = ""


# Outcomes of runs that executed; "last outcome" and "last success" consider only these.
EXECUTED = frozenset(
    {
        RunOutcome.SUCCESS,
        RunOutcome.FAILED,
        RunOutcome.CANCELLED,
        RunOutcome.TIMED_OUT,
        RunOutcome.INTERRUPTED,
    }
)


class LatestRuns(Protocol):
    """Each bean's last executed and last successful run, answered from memory (no I/O)."""

    def last_finished(self, bean: str) -> RunRecord | None: ...
    def last_success(self, bean: str) -> RunRecord | None: ...


class RunLedger(Protocol):
    """Where runs are kept. Every implementation passes the same contract tests.

    Methods block (SQL, files): the daemon calls them only through `syncd.ledger.recorder`, whose
    threads keep them off the event loop. `last_finished` and `last_success` answer from
    memory. Storage faults raise `LedgerUnavailableError`; writes are idempotent, so a write
    may be retried after a fault.
    """

    def record_start(self, record: RunRecord) -> None: ...
    def record_end(self, record: RunRecord) -> None: ...
    def record(self, record: RunRecord) -> None:
        """A run that never executed (missed, skipped), written whole."""
        ...

    def get(self, run_id: str) -> RunRecord | None: ...
    def last_finished(self, bean: str) -> RunRecord | None: ...
    def last_success(self, bean: str) -> RunRecord | None: ...
    def history(
        self, bean: str | None = None, limit: int = 50, repository: str | None = None
    ) -> list[RunRecord]:
        """Newest first. This repository's runs, or another's by id, or every one ("*")."""
        ...

    def runs_since(self, since: datetime) -> list[RunRecord]:
        """Runs started or slotted at or after `since`, oldest first."""
        ...

    def mark_interrupted(self, now: datetime) -> list[RunRecord]:
        """At start-up: runs still "running" were cut off by a crash; finish them."""
        ...

    def prune(self, now: datetime, keep_days: float, keep_per_bean: int) -> int: ...
    def holds(self) -> dict[str, datetime]:
        """Paused beans ("*" is the whole daemon) and when they were paused."""
        ...

    def set_hold(self, bean: str, at: datetime) -> None: ...
    def clear_hold(self, bean: str) -> None: ...
    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...
    def batch(self) -> AbstractContextManager[object]:
        """Writes made inside (on the calling thread) commit together as the block ends; if
        it raises, none is kept where the ledger has transactions. The one writer's groups."""
        ...

    def close(self) -> None: ...


INTERRUPTED_MESSAGE = "the daemon stopped while the run was under way"


def keeps_interrupted(state: str, outcome: str | None, end: RunRecord) -> bool:
    """Whether a stored run (its state and outcome values) keeps its `interrupted` outcome
    against `end`: once a run is recorded interrupted, only another interrupted end (a note
    added to it) may rewrite it, never its old holder's late cancelled or success."""
    return (
        state == RunState.FINISHED.value
        and outcome == RunOutcome.INTERRUPTED.value
        and end.outcome is not RunOutcome.INTERRUPTED
    )


class MemoryLedger:
    """A ledger held in memory, bounded to the newest `keep` runs."""

    def __init__(self, keep: int = 10_000) -> None:
        self._keep = keep
        self._runs: OrderedDict[str, RunRecord] = OrderedDict()
        self._last_finished: dict[str, RunRecord] = {}
        self._last_success: dict[str, RunRecord] = {}
        self._holds: dict[str, datetime] = {}
        self._meta: dict[str, str] = {}
        self._lock = threading.Lock()

    def record_start(self, record: RunRecord) -> None:
        with self._lock:
            self._runs[record.run_id] = record
            while len(self._runs) > self._keep:
                self._runs.popitem(last=False)

    def record_end(self, record: RunRecord) -> None:
        with self._lock:
            stored = self._runs.get(record.run_id)
            if stored is not None and keeps_interrupted(
                stored.state.value, stored.outcome.value if stored.outcome else None, record
            ):
                return
            self._runs[record.run_id] = record
            if record.outcome in EXECUTED:
                self._last_finished[record.bean] = record
            if record.outcome is RunOutcome.SUCCESS:
                self._last_success[record.bean] = record

    def record(self, record: RunRecord) -> None:
        self.record_start(record)
        self.record_end(record)

    def get(self, run_id: str) -> RunRecord | None:
        return self._runs.get(run_id)

    def last_finished(self, bean: str) -> RunRecord | None:
        return self._last_finished.get(bean)

    def last_success(self, bean: str) -> RunRecord | None:
        return self._last_success.get(bean)

    def history(
        self, bean: str | None = None, limit: int = 50, repository: str | None = None
    ) -> list[RunRecord]:
        with self._lock:
            runs = [r for r in reversed(self._runs.values()) if bean is None or r.bean == bean]
        return runs[:limit]

    def runs_since(self, since: datetime) -> list[RunRecord]:
        with self._lock:
            runs = [r for r in self._runs.values() if (r.slot_time or r.started_at) >= since]
        return sorted(runs, key=lambda r: r.started_at)

    def mark_interrupted(self, now: datetime) -> list[RunRecord]:
        return []  # memory does not outlive the process, so nothing can have been cut off

    def prune(self, now: datetime, keep_days: float, keep_per_bean: int) -> int:
        cutoff = now - timedelta(days=keep_days)
        with self._lock:
            per_bean: dict[str, int] = {}
            doomed = []
            for run in reversed(self._runs.values()):
                per_bean[run.bean] = per_bean.get(run.bean, 0) + 1
                old = run.ended_at is not None and run.ended_at < cutoff
                if old or per_bean[run.bean] > keep_per_bean:
                    doomed.append(run.run_id)
            for run_id in doomed:
                del self._runs[run_id]
        return len(doomed)

    def holds(self) -> dict[str, datetime]:
        return dict(self._holds)

    def set_hold(self, bean: str, at: datetime) -> None:
        self._holds.setdefault(bean, at)

    def clear_hold(self, bean: str) -> None:
        self._holds.pop(bean, None)

    def get_meta(self, key: str) -> str | None:
        return self._meta.get(key)

    def set_meta(self, key: str, value: str) -> None:
        self._meta[key] = value

    def batch(self) -> AbstractContextManager[object]:
        # Nothing to commit: each write is in place at once (and idempotent, so the writer
        # may write again those of a group another write failed).
        return contextlib.nullcontext()

    def close(self) -> None:
        pass


def interrupted(record: RunRecord, now: datetime) -> RunRecord:
    return replace(
        record,
        state=RunState.FINISHED,
        outcome=RunOutcome.INTERRUPTED,
        ended_at=now,
        error_type="Interrupted",
        error_message=INTERRUPTED_MESSAGE,
    )
