"""The ledger's one writer: every write goes through here, off the event loop, and none is lost.

`LedgerRecorder` is the asyncio face of a `RunLedger`. Writes — run starts and ends, the
outcomes of runs that never executed, holds, last-seen, audit rows, prunes — run in order on a
single writer thread, those queued together committed as one transaction (`_writer`); reads
run on a small pool of reader threads. The event loop only awaits, so a ledger that is slow,
locked or gone never stalls the control plane.

What a failed write means depends on what it records:

- a run's **start** that cannot be written is an error for the caller (the run is refused);
- a run's **end**, a skipped or missed outcome, or the last-seen mark is kept in memory,
  served to readers as if written, and retried with backoff until the ledger takes it — or,
  at shutdown, logged whole so nothing vanishes silently;
- holds, prunes and start-up repairs raise, for the caller to answer.

While writes fail the recorder reports the ledger unhealthy (`health()`), and probes it with
backoff until a write succeeds again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import structlog

from syncd.errors import LedgerUnavailableError
from syncd.ledger._faults import problem_of
from syncd.ledger._writer import GroupWriter
from syncd.ledger.audit import AuditEntry, AuditTrail, trail_for
from syncd.ledger.model import EXECUTED, RunLedger, RunRecord
from syncd.retry import Backoff, retrying_async

log = structlog.get_logger("syncd.ledger")

_T = TypeVar("_T")
PROBE_KEY = "ledger.probe"


@dataclass(frozen=True, slots=True)
class LedgerHealth:
    """Whether the ledger takes writes, and how many records wait in memory for it."""

    problem: str  # "" while healthy, else e.g. "the run ledger cannot be written: disk full"
    unwritten: int

    @property
    def healthy(self) -> bool:
        return not self.problem


@dataclass(frozen=True, slots=True)
class _Write:
    """One record the ledger has not confirmed yet. Writes are idempotent: retrying is safe."""

    kind: Literal["end", "whole", "meta"]
    record: RunRecord | None = None
    key: str = ""
    value: str = ""


class LedgerRecorder:
    """The one writer of a RunLedger, with an async API for the event loop."""

    def __init__(
        self,
        ledger: RunLedger,
        *,
        retry_initial: float = 0.5,
        retry_max: float = 30.0,
        read_threads: int = 2,
    ) -> None:
        self.ledger = ledger
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._writer = GroupWriter(ledger.batch, name="syncd-ledger-writer")
        self._readers = ThreadPoolExecutor(read_threads, thread_name_prefix="syncd-ledger-reader")
        self._unwritten: dict[str, _Write] = {}  # insertion order is write order
        self._last_finished: dict[str, RunRecord] = {}
        self._last_success: dict[str, RunRecord] = {}
        self._problem = ""
        self._settled = asyncio.Event()
        self._settled.set()
        self._wake = asyncio.Event()
        self._retrying: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self._audit: AuditTrail | None = None

    # --- health ----------------------------------------------------------------------------

    def health(self) -> LedgerHealth:
        return LedgerHealth(self._problem, len(self._unwritten))

    async def settled(self) -> None:
        """Return once the ledger is healthy and every record kept in memory is written."""
        await self._settled.wait()

    def _check_settled(self) -> None:
        if self._unwritten or self._problem:
            self._settled.clear()
        else:
            self._settled.set()

    def retry_now(self) -> None:
        """Cut the current backoff short (an operator fixed the fault)."""
        self._wake.set()

    def _fault(self, exc: LedgerUnavailableError) -> None:
        message = str(exc)
        if message != self._problem:
            log.error("ledger.unavailable", problem=message, unwritten=len(self._unwritten))
        self._problem = message
        self._check_settled()
        self._ensure_retrying()

    def _recovered(self) -> None:
        if self._problem:
            log.info("ledger.recovered", unwritten=len(self._unwritten))
            self._problem = ""
            self._check_settled()
            self._wake.set()

    # --- the writer thread -----------------------------------------------------------------

    async def call_writer(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run another write on the one writer thread (a replicated batch), in a transaction
        of its own: a storage fault marks the ledger unhealthy; the caller's own errors (a
        cursor gap) pass as they are."""
        try:
            result = await asyncio.wrap_future(self._writer.submit(fn, *args, alone=True))
        except LedgerUnavailableError as exc:
            self._fault(exc)
            raise
        self._recovered()
        return result

    async def call_reader(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run another read on the reader threads."""
        return await asyncio.wrap_future(self._readers.submit(fn, *args))

    async def _write(self, fn: Callable[..., _T], *args: Any, alone: bool = False) -> _T:
        """Run `fn` on the writer thread, in the next group unless `alone`; health follows
        its result."""
        try:
            result = await asyncio.wrap_future(self._writer.submit(fn, *args, alone=alone))
        except LedgerUnavailableError as exc:
            self._fault(exc)
            raise
        except Exception as exc:  # an unexpected driver error is still a refusal, not INTERNAL
            wrapped = LedgerUnavailableError(problem_of(exc))
            self._fault(wrapped)
            raise wrapped from exc
        self._recovered()
        return result

    async def _read(self, fn: Callable[..., _T], *args: Any) -> _T:
        try:
            return await asyncio.wrap_future(self._readers.submit(fn, *args))
        except LedgerUnavailableError:
            raise
        except Exception as exc:
            raise LedgerUnavailableError(problem_of(exc), action="read") from exc

    def _apply(self, write: _Write) -> None:
        if write.kind == "meta":
            self.ledger.set_meta(write.key, write.value)
        elif write.record is not None and write.kind == "end":
            self.ledger.record_end(write.record)
        elif write.record is not None:
            self.ledger.record(write.record)

    def _apply_all(self, writes: Iterable[_Write]) -> None:
        for write in writes:  # stops at the first failure; what was written stays written
            self._apply(write)

    # --- writes ------------------------------------------------------------------------------

    async def start(self, record: RunRecord) -> None:
        """Write a run's start. Raises LedgerUnavailableError: the caller refuses the run."""
        await self._write(self.ledger.record_start, record)

    async def end(self, record: RunRecord) -> bool:
        """Write a run's end: True once written, False when kept in memory to retry. Never
        raises; readers see the record either way."""
        self._remember(record)
        return await self._keep(record.run_id, _Write("end", record))

    async def record(self, record: RunRecord) -> bool:
        """Write a run that never executed (missed, skipped) whole; as `end` otherwise."""
        self._remember(record)
        return await self._keep(record.run_id, _Write("whole", record))

    def note_meta(self, key: str, value: str) -> None:
        """Write bookkeeping (the scheduler's last-seen mark) soon; the latest value wins."""
        write = _Write("meta", key=key, value=value)
        self._queue(f"meta:{key}", write)  # now, so a close that follows writes it
        self._spawn(self._keep(f"meta:{key}", write))

    async def set_hold(self, bean: str, at: datetime) -> None:
        await self._write(self.ledger.set_hold, bean, at)

    async def clear_hold(self, bean: str) -> None:
        await self._write(self.ledger.clear_hold, bean)

    async def mark_interrupted(self, now: datetime) -> list[RunRecord]:
        # Alone: it reads back what it wrote, from another connection, once committed.
        done = await self._write(self.ledger.mark_interrupted, now, alone=True)
        for record in done:
            self._remember(record)
        return done

    async def prune(self, now: datetime, keep_days: float, keep_per_bean: int) -> int:
        return await self._write(self.ledger.prune, now, keep_days, keep_per_bean, alone=True)

    def _queue(self, key: str, write: _Write) -> None:
        self._unwritten[key] = write
        self._settled.clear()

    async def _keep(self, key: str, write: _Write) -> bool:
        self._queue(key, write)
        try:
            await self._write(self._apply, write)
        except LedgerUnavailableError as exc:
            log.warning(
                "ledger.write_deferred",
                kind=write.kind,
                run_id=write.record.run_id if write.record else None,
                problem=exc.problem,
                unwritten=len(self._unwritten),
            )
            return False
        self._forget(key, write)
        return True

    def _forget(self, key: str, write: _Write) -> None:
        if self._unwritten.get(key) is write:  # a newer version of the record stays queued
            del self._unwritten[key]
        self._check_settled()

    def _remember(self, record: RunRecord) -> None:
        if record.outcome in EXECUTED:
            self._last_finished[record.bean] = record
        if record.outcome is not None and record.outcome.value == "success":
            self._last_success[record.bean] = record

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- retries -----------------------------------------------------------------------------

    def _ensure_retrying(self) -> None:
        if self._closed or (self._retrying is not None and not self._retrying.done()):
            return
        self._retrying = asyncio.get_running_loop().create_task(
            self._retry_loop(), name="ledger-retry"
        )

    async def _retry_loop(self) -> None:
        # Started by a failed write: wait before the first try, back off while it fails, and
        # start over (short waits) once a flush goes through but more has come in meanwhile.
        backoff = Backoff(
            initial=self._retry_initial, maximum=self._retry_max, jitter=_REPLICA_JITTER
        )
        while (self._unwritten or self._problem) and not self._closed:
            try:
                await retrying_async(
                    self._flush_or_raise,
                    backoff=backoff,
                    transient=_not_taken,
                    sleep=self._pause,
                    first_wait=True,
                )
            except _Closed:
                return

    async def _pause(self, seconds: float) -> None:
        """Wait out a backoff, or less when woken (`retry_now`, recovery, close)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        self._wake.clear()

    async def _flush_or_raise(self) -> None:
        if self._closed:
            raise _Closed
        if not await self._flush_once():
            raise _NotTaken

    async def _flush_once(self) -> bool:
        """Write every record kept in memory, or probe the ledger when none is; True if it
        took them."""
        pending = list(self._unwritten.items())
        try:
            if pending:
                await self._write(self._apply_all, [w for _, w in pending])
            else:
                probe = datetime.now(UTC).isoformat()
                await self._write(self.ledger.set_meta, PROBE_KEY, probe)
        except LedgerUnavailableError:
            return False
        for key, write in pending:
            self._forget(key, write)
        if pending:
            log.info("ledger.caught_up", written=len(pending))
        return True

    # --- reads (records kept in memory win: they are newer than the ledger's) ------------------

    def last_finished(self, bean: str) -> RunRecord | None:
        """The bean's last executed run, from memory (no I/O: status calls use it)."""
        return self._last_finished.get(bean) or self.ledger.last_finished(bean)

    def last_success(self, bean: str) -> RunRecord | None:
        return self._last_success.get(bean) or self.ledger.last_success(bean)

    def adopt(self, finished: Mapping[str, RunRecord], success: Mapping[str, RunRecord]) -> None:
        """Cluster mode: each bean's latest runs read back from the shared ledger (another
        replica may have ended them); one replaces the cached record when it ended later."""
        for fresh, cache in ((finished, self._last_finished), (success, self._last_success)):
            for bean, record in fresh.items():
                cached = cache.get(bean)
                if cached is None or _ended(record) > _ended(cached):
                    cache[bean] = record

    def _kept_runs(self) -> list[RunRecord]:
        return [w.record for w in self._unwritten.values() if w.record is not None]

    async def get(self, run_id: str) -> RunRecord | None:
        kept = self._unwritten.get(run_id)
        if kept is not None and kept.record is not None:
            return kept.record
        stored = await self._read(self.ledger.get, run_id)
        kept = self._unwritten.get(run_id)  # kept while the read was under way: newer
        return kept.record if kept is not None and kept.record is not None else stored

    async def _read_runs(
        self, fn: Callable[..., list[RunRecord]], *args: Any
    ) -> tuple[list[RunRecord], dict[str, RunRecord]]:
        """A ledger read and the records kept in memory, taken before and after it: a kept
        record the retry writes while the read is under way is in neither the read's result
        nor the memory afterwards, so the snapshot from before has to answer for it."""
        before = self._kept_runs()
        stored = await self._read(fn, *args)
        kept = {r.run_id: r for r in before} | {r.run_id: r for r in self._kept_runs()}
        return stored, kept

    async def history(self, bean: str | None = None, limit: int = 50) -> list[RunRecord]:
        stored, kept = await self._read_runs(self.ledger.history, bean, limit)
        mine = {k: r for k, r in kept.items() if bean is None or r.bean == bean}
        if not mine:
            return stored
        merged = {r.run_id: r for r in stored} | mine
        newest = sorted(merged.values(), key=lambda r: (r.started_at, r.run_id), reverse=True)
        return newest[:limit]

    async def runs_since(self, since: datetime) -> list[RunRecord]:
        stored, kept = await self._read_runs(self.ledger.runs_since, since)
        mine = {k: r for k, r in kept.items() if (r.slot_time or r.started_at) >= since}
        merged = {r.run_id: r for r in stored} | mine
        return sorted(merged.values(), key=lambda r: r.started_at)

    async def holds(self) -> dict[str, datetime]:
        return await self._read(self.ledger.holds)

    async def get_meta(self, key: str) -> str | None:
        kept = self._unwritten.get(f"meta:{key}")
        if kept is not None:
            return kept.value
        return await self._read(self.ledger.get_meta, key)

    # --- the audit trail ---------------------------------------------------------------------

    async def _trail(self) -> AuditTrail:
        if self._audit is None:  # created on the writer thread: it may create its table
            self._audit = await self._write(trail_for, self.ledger, alone=True)
        return self._audit

    async def audit(self, entry: AuditEntry) -> bool:
        """Write an audit row: True once written. A ledger that cannot take it does not fail
        the request audited: the row is logged whole instead, so it is not lost silently."""
        entry = entry.bounded()  # a target may come from input
        try:
            trail = await self._trail()
            await self._write(trail.append, entry)
        except LedgerUnavailableError as exc:
            fields = asdict(entry.bounded()) | {"at": entry.at.isoformat()}
            log.error("audit.unwritten", problem=exc.problem, **fields)
            return False
        return True

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run `coro` as one of the recorder's tasks (awaited at close), for callers that
        cannot await: a signal handler's audit row."""
        self._spawn(coro)

    async def prune_audit(self, before: datetime) -> int:
        """Drop audit entries older than `before` (the ledger's `keep_days`)."""
        trail = await self._trail()
        return await self._write(trail.prune, before, alone=True)

    async def audit_entries(self, since: datetime | None, limit: int) -> list[AuditEntry]:
        """Audit rows, newest first."""
        trail = await self._trail()
        return await self._read(trail.entries, since, limit)

    # --- the end -----------------------------------------------------------------------------

    def flush_blocking(self, records: Iterable[RunRecord], timeout: float) -> int:
        """Forced exit: queue these ends and wait up to `timeout` for the writer to write
        everything kept; blocks the calling thread. Returns how many stayed unwritten."""
        for record in records:
            self._unwritten[record.run_id] = _Write("end", record)
        writes = list(self._unwritten.values())
        queued: Future[None] = self._writer.submit(self._apply_all, writes, alone=True)
        done, _ = wait_futures([queued], timeout=timeout)
        written = bool(done) and next(iter(done)).exception() is None
        return 0 if written else len(writes)

    async def close(self, timeout: float = 10.0) -> None:
        """Write what is kept in memory (retrying for up to `timeout` seconds), log whatever
        still could not be written, then release the ledger."""
        if self._unwritten:
            last_chance = Backoff(
                initial=self._retry_initial,
                maximum=self._retry_max,
                within=timeout,
                jitter=(1.0, 1.0),
            )
            with contextlib.suppress(_NotTaken):
                await retrying_async(
                    self._flush_or_raise,
                    backoff=last_chance,
                    transient=_not_taken,
                    sleep=self._pause,
                )
        self._closed = True
        self._wake.set()
        if self._retrying is not None:
            self._retrying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retrying
        for write in self._unwritten.values():  # logged whole, so an operator can re-enter it
            log.error(
                "ledger.record_lost",
                problem=self._problem,
                kind=write.kind,
                record=_loggable(write.record) if write.record else None,
                key=write.key or None,
                value=write.value or None,
            )
        for task in list(self._tasks):
            task.cancel()
        self._readers.shutdown(wait=False, cancel_futures=True)
        await asyncio.wrap_future(self._writer.submit(self.ledger.close, alone=True))
        self._writer.shutdown()


_REPLICA_JITTER = (0.8, 1.2)  # replicas that lost the ledger together retry apart


class _NotTaken(Exception):
    """The ledger did not take the records kept in memory (yet)."""


class _Closed(Exception):
    """The recorder closed while it was retrying."""


def _not_taken(exc: BaseException) -> str | None:
    return "the ledger did not take the write" if isinstance(exc, _NotTaken) else None


def _ended(record: RunRecord) -> datetime:
    return record.ended_at or record.started_at


def _loggable(record: RunRecord) -> dict[str, Any]:
    fields = asdict(record)
    for name, value in fields.items():
        if isinstance(value, datetime):
            fields[name] = value.isoformat()
        elif hasattr(value, "value"):
            fields[name] = value.value
    fields["arguments"] = {k: str(v)[:200] for k, v in record.arguments.items()}
    return fields
