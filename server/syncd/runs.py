"""Runs: the one code path that starts, follows, cancels and records a job's run.

The coordinator lives on the daemon's event loop. `start()` is synchronous and never awaits
between checking for an active run and claiming the bean, so concurrent requests on the loop
cannot both win. Job bodies run on their own (daemon) threads: a body that ignores cancellation
can delay neither the control plane nor the daemon's exit.
"""

from __future__ import annotations

import asyncio
import contextvars
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import structlog

from syncd.clock import Clock
from syncd.enums import RunOutcome, RunState, Trigger
from syncd.errors import AlreadyRunningError, DrainingError, RunCancelled, RunNotFoundError
from syncd.job import JobSpec
from syncd.ledger import RunLedger, RunRecord
from syncd.values import Value

log = structlog.get_logger("syncd.runs")


def new_run_id(started_at: datetime) -> str:
    """Sortable, readable, unique: `20261122T031500-4f3a9c`."""
    return f"{started_at:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


@dataclass(slots=True, eq=False)
class Run:
    """A run under way. Owned by the event loop; its worker thread only touches counters."""

    record: RunRecord
    started_monotonic: float
    cancel_requested: threading.Event = field(default_factory=threading.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
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


class _Context:
    """The RunContext a job body gets. Called from the worker thread."""

    def __init__(self, run: Run, spec: JobSpec, notify: Any) -> None:
        self._run = run
        self._spec = spec
        self._notify = notify  # thread-safe "this run changed"
        rec = run.record
        self.log = structlog.get_logger("syncd.job").bind(
            job=rec.bean, run_id=rec.run_id, trigger=rec.trigger.value
        )

    @property
    def run_id(self) -> str:
        return self._run.record.run_id

    @property
    def bean(self) -> str:
        return self._run.record.bean

    @property
    def trigger(self) -> Trigger:
        return self._run.record.trigger

    @property
    def args(self) -> Mapping[str, Value]:
        return self._run.record.arguments

    @property
    def settings(self) -> Any:
        return self._spec.settings

    def is_cancelled(self) -> bool:
        return self._run.cancel_requested.is_set()

    def raise_if_cancelled(self) -> None:
        if self._run.cancel_requested.is_set():
            raise RunCancelled

    def wait_cancelled(self, timeout: float) -> bool:
        return self._run.cancel_requested.wait(timeout)

    def report_progress(self, done: int, total: int | None = None) -> None:
        self._update(progress_done=done, progress_total=total or 0)

    def add_rows(self, *, read: int = 0, written: int = 0) -> None:
        with self._run._lock:
            rec = self._run.record
            self._run.record = replace(
                rec, rows_read=rec.rows_read + read, rows_written=rec.rows_written + written
            )
        self._notify(self._run)

    def _update(self, **changes: Any) -> None:
        self._run.update(**changes)
        self._notify(self._run)


class RunCoordinator:
    """Starts runs (one per bean at a time), follows them and writes them to the ledger."""

    def __init__(self, ledger: RunLedger, clock: Clock) -> None:
        self._ledger = ledger
        self._clock = clock
        self._active: dict[str, Run] = {}
        self._recent: dict[str, Run] = {}  # finished runs still followed by id
        self._tasks: set[asyncio.Task[None]] = set()
        self._draining = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending_notify: set[Run] = set()
        self._notify_lock = threading.Lock()

    @property
    def draining(self) -> bool:
        return self._draining

    def active(self, bean: str) -> Run | None:
        return self._active.get(bean)

    def active_runs(self) -> list[Run]:
        return list(self._active.values())

    def start(
        self,
        spec: JobSpec,
        arguments: Mapping[str, Value],
        *,
        trigger: Trigger,
        actor: str,
        slot_time: datetime | None = None,
    ) -> Run:
        """Claim the bean and start its body on a worker; returns at once.

        Raises AlreadyRunningError (with the active run's id) or DrainingError.
        """
        if self._draining:
            raise DrainingError
        current = self._active.get(spec.name)
        if current is not None:
            raise AlreadyRunningError(spec.name, current.run_id)
        self._loop = asyncio.get_running_loop()
        started = self._clock.now()
        record = RunRecord(
            run_id=new_run_id(started),
            bean=spec.name,
            operation=spec.trigger_operation,
            arguments=dict(arguments),
            trigger=trigger,
            actor=actor,
            slot_time=slot_time,
            started_at=started,
            state=RunState.RUNNING,
        )
        run = Run(record=record, started_monotonic=self._clock.monotonic())
        self._active[spec.name] = run
        self._ledger.record_start(record)
        log.info(
            "run.started",
            job=spec.name,
            run_id=record.run_id,
            trigger=trigger.value,
            actor=actor,
            operation=spec.trigger_operation,
        )
        task = asyncio.create_task(self._execute(spec, run), name=f"run:{record.run_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return run

    def get(self, run_id: str) -> Run | RunRecord:
        """A live run, or a finished run's record from the ledger."""
        for run in (*self._active.values(), *self._recent.values()):
            if run.run_id == run_id:
                return run
        record = self._ledger.get(run_id)
        if record is None:
            raise RunNotFoundError(run_id)
        return record

    def cancel(self, bean: str) -> Run | None:
        """Ask the bean's active run to stop at its next check; None when nothing runs."""
        run = self._active.get(bean)
        if run is None:
            return None
        if not run.cancel_requested.is_set():
            run.cancel_requested.set()
            run.update(state=RunState.CANCELLING)
            run.touch()
            log.info("run.cancel_requested", job=bean, run_id=run.run_id)
        return run

    def elapsed(self, run: Run) -> timedelta:
        return timedelta(seconds=max(0.0, self._clock.monotonic() - run.started_monotonic))

    async def _execute(self, spec: JobSpec, run: Run) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[BaseException | None] = loop.create_future()
        ctx = _Context(run, spec, self._notify_threadsafe)

        def settle(result: BaseException | None) -> None:
            if not done.done():
                done.set_result(result)

        def work() -> None:
            try:
                spec.body(ctx)
            except BaseException as exc:  # the body's failure is the run's outcome
                loop.call_soon_threadsafe(settle, exc)
            else:
                loop.call_soon_threadsafe(settle, None)

        # A fresh copy of the caller's context, so the body's logs carry its bindings.
        thread = threading.Thread(
            target=contextvars.copy_context().run,
            args=(work,),
            name=f"job:{spec.name}",
            daemon=True,
        )
        thread.start()
        error = await done
        if run.record.state is RunState.FINISHED:
            return  # already recorded by a forced stop while the body was still going
        if error is None:
            self._finish(run, RunOutcome.SUCCESS)
        elif isinstance(error, RunCancelled):
            self._finish(run, RunOutcome.CANCELLED, "RunCancelled", "cancelled on request")
        else:
            self._finish(run, RunOutcome.FAILED, type(error).__name__, str(error) or repr(error))

    def _finish(
        self, run: Run, outcome: RunOutcome, error_type: str = "", error_message: str = ""
    ) -> None:
        rec = run.update(
            state=RunState.FINISHED,
            outcome=outcome,
            ended_at=self._clock.now(),
            error_type=error_type,
            error_message=error_message,
        )
        self._ledger.record_end(rec)
        if self._active.get(rec.bean) is run:
            del self._active[rec.bean]
        self._recent[rec.bean] = run
        duration = self.elapsed(run).total_seconds()
        log.info(
            "run.finished",
            job=rec.bean,
            run_id=rec.run_id,
            trigger=rec.trigger.value,
            outcome=outcome.value,
            duration_s=round(duration, 3),
            rows_read=rec.rows_read,
            rows_written=rec.rows_written,
            error_type=error_type or None,
            error=error_message or None,
        )
        run.touch()
        run.finished.set()

    def _notify_threadsafe(self, run: Run) -> None:
        # Coalesce bursts of progress reports into one wake-up per loop turn.
        with self._notify_lock:
            if run in self._pending_notify:
                return
            self._pending_notify.add(run)
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._flush_notify, run)

    def _flush_notify(self, run: Run) -> None:
        with self._notify_lock:
            self._pending_notify.discard(run)
        run.touch()

    def refuse_new_runs(self) -> None:
        """First step of shutdown: from now on `start()` raises DrainingError."""
        self._draining = True

    async def drain(self, grace: float, cancel_grace: float) -> None:
        """Let running jobs finish for `grace` seconds, then cancel and record the rest.

        A body that ignores cancellation for `cancel_grace` more seconds is abandoned (its
        daemon thread dies with the process) and its run is recorded as cancelled.
        """
        self.refuse_new_runs()
        if await self._wait_all(grace):
            return
        for bean in list(self._active):
            self.cancel(bean)
        if await self._wait_all(cancel_grace):
            return
        for run in list(self._active.values()):
            log.warning("run.abandoned", job=run.record.bean, run_id=run.run_id)
            self._finish(
                run,
                RunOutcome.CANCELLED,
                "ShutdownCancelled",
                "the daemon stopped; the job did not finish within shutdown_grace",
            )

    async def _wait_all(self, timeout: float) -> bool:
        waits = [asyncio.ensure_future(run.finished.wait()) for run in self._active.values()]
        if not waits:
            return True
        _, pending = await asyncio.wait(waits, timeout=timeout)
        for fut in pending:
            fut.cancel()
        return not pending
