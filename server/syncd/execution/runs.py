"""Runs: the one code path that starts, follows, cancels, times out and records a job's run.

The coordinator lives on the daemon's event loop. `start()` acquires the bean's run claim
(`syncd.execution.claim`; in cluster mode a lease in PostgreSQL) before it writes anything,
then awaits the ledger's record of the start; a start the ledger cannot take releases the
claim and is refused (LedgerUnavailableError): no bean runs with a run id that exists nowhere.
The claim is released only once the run's end is recorded; a claim lost before that (a
cluster lease this replica could not renew) cancels the run. Ends go to the ledger's one
writer, which keeps them in memory while the ledger is unwritable. Bodies execute off the
loop, in a child process or a thread (`executors`); a run under way is a `run.Run`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta

import structlog

from syncd.clock import Clock
from syncd.enums import RunOutcome, RunState, Trigger
from syncd.errors import (
    DrainingError,
    LedgerUnavailableError,
    RunNotFoundError,
)
from syncd.execution.claim import Claim, InMemoryRunClaim, RunClaim
from syncd.execution.executors import Ending, Execution
from syncd.execution.run import JobOptions, Reporter, Run, new_run_id
from syncd.job import JobSpec
from syncd.ledger.model import RunRecord
from syncd.ledger.recorder import LedgerRecorder
from syncd.observability.events import Event, EventHub, EventKind
from syncd.values import Value

log = structlog.get_logger("syncd.runs")

# Runs the catch-up rules start for a slot already passed (they may rerun a skipped slot).
CATCH_UP_TRIGGERS = frozenset({Trigger.STARTUP, Trigger.CATCH_UP})


def _retrieved(future: asyncio.Future[Run]) -> None:
    """Mark a launch's refusal as seen when its caller has gone (it was logged already)."""
    if not future.cancelled():
        future.exception()


_ENDING_ERRORS = {
    "timeout": ("TimedOut", "the run exceeded its timeout of {timeout:g}s"),
    "shutdown": (
        "ShutdownCancelled",
        "the daemon stopped; the job did not finish within shutdown_grace",
    ),
    "lease_lost": (
        "LeaseLost",
        "this replica could not renew the run's cluster lease, so it stopped the run before"
        " another replica could take the job over",
    ),
}


class RunCoordinator:
    """Starts runs (one per bean at a time), follows them and writes them to the ledger."""

    def __init__(
        self,
        recorder: LedgerRecorder,
        clock: Clock,
        default_options: JobOptions | None = None,
        events: EventHub | None = None,
        claim: RunClaim | None = None,
    ) -> None:
        self._recorder = recorder
        self._claim: RunClaim = claim or InMemoryRunClaim()
        self._claim.on_lost(self._claim_lost)
        self._claim.on_cancel(self._cancel_asked_elsewhere)
        self._claims: dict[str, Claim] = {}  # by run id, until the run's end is recorded
        self._clock = clock
        self.events = events or EventHub()
        self._default_options = default_options or JobOptions()
        self._options: dict[str, JobOptions] = {}
        self._active: dict[str, Run] = {}  # the live runs by bean (the claim is the guard)
        self._recent: dict[str, Run] = {}  # finished runs still followed by id
        self._tasks: set[asyncio.Task[None]] = set()
        self._draining = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending_notify: set[Run] = set()
        self._notify_lock = threading.Lock()

    def set_options(self, bean: str, options: JobOptions) -> None:
        self._options[bean] = options

    def options(self, bean: str) -> JobOptions:
        return self._options.get(bean, self._default_options)

    @property
    def draining(self) -> bool:
        return self._draining

    def active(self, bean: str) -> Run | None:
        return self._active.get(bean)

    def active_runs(self) -> list[Run]:
        return list(self._active.values())

    async def start(
        self,
        spec: JobSpec,
        arguments: Mapping[str, Value],
        *,
        trigger: Trigger,
        actor: str,
        slot_time: datetime | None = None,
    ) -> Run:
        """Claim the bean, record the start, and start its body on a worker; returns once the
        start is recorded, without waiting for the body.

        Raises AlreadyRunningError (from the claim, with the holder's run id), DrainingError,
        or LedgerUnavailableError when the start cannot be recorded (the bean stays idle).
        """
        if self._draining:
            raise DrainingError
        self._loop = asyncio.get_running_loop()
        started = self._clock.now()
        run_id = new_run_id(started)
        # Before anything is written: a refused claim leaves no trace in the ledger.
        claim = await self._claim.acquire(
            spec.name, run_id, slot_time=slot_time, rerun=trigger in CATCH_UP_TRIGGERS
        )
        if self._draining:  # shutdown began while a cluster claim was being taken
            await self._claim.release(claim)
            raise DrainingError
        self._claims[run_id] = claim
        # The run starts once it holds the claim (a cluster claim may have waited on the
        # database): recorded runs of a bean then never overlap, whichever replica ran them.
        started = self._clock.now()
        record = RunRecord(
            run_id=run_id,
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
        # Shielded: a caller that goes away does not leave a recorded start without its run.
        launching = asyncio.ensure_future(self._launch(spec, run))
        launching.add_done_callback(_retrieved)
        return await asyncio.shield(launching)

    async def _launch(self, spec: JobSpec, run: Run) -> Run:
        record = run.record
        try:
            await self._recorder.start(record)
        except LedgerUnavailableError as exc:
            await self._release(run)
            log.error("run.refused", job=spec.name, run_id=record.run_id, problem=exc.problem)
            raise
        except BaseException:
            await self._release(run)
            raise
        trigger, actor, started = record.trigger, record.actor, record.started_at
        log.info(
            "run.started",
            job=spec.name,
            run_id=record.run_id,
            trigger=trigger.value,
            actor=actor,
            operation=spec.trigger_operation,
        )
        self.events.publish(
            Event(
                kind=EventKind.RUN_STARTED,
                at=started,
                bean=spec.name,
                run_id=record.run_id,
                message=trigger.value,
            )
        )
        task = asyncio.create_task(self._execute(spec, run), name=f"run:{record.run_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return run

    async def _release(self, run: Run) -> None:
        """Give up a claim whose start was never recorded: the bean is idle again, and
        whoever waits on the run (a cancel, a drain) is let go."""
        if self._active.get(run.record.bean) is run:
            del self._active[run.record.bean]
        await self._release_claim(run)
        run.update(state=RunState.FINISHED)
        run.touch()
        run.finished.set()

    async def _release_when_written(self, run: Run) -> None:
        await self._recorder.settled()
        log.info("run.claim_released_after_end_written", job=run.record.bean, run_id=run.run_id)
        await self._release_claim(run)

    async def _release_claim(self, run: Run) -> None:
        claim = self._claims.pop(run.run_id, None)
        if claim is not None:
            await self._claim.release(claim)

    def _claim_lost(self, claim: Claim) -> None:
        """A claim this process held is gone (its lease was not renewed in time): stop the
        run now, before another replica may start the job."""
        run = self._active.get(claim.bean)
        if run is not None and run.run_id == claim.run_id:
            log.error("run.lease_lost", job=claim.bean, run_id=claim.run_id, token=claim.token)
            self.cancel(claim.bean, reason="lease_lost")

    def _cancel_asked_elsewhere(self, claim: Claim, actor: str) -> None:
        """Another replica was asked to cancel this process's run (cluster mode)."""
        run = self._active.get(claim.bean)
        if run is not None and run.run_id == claim.run_id:
            log.info("run.cancel_forwarded", job=claim.bean, run_id=claim.run_id, actor=actor)
            self.cancel(claim.bean)

    async def cancel_elsewhere(self, bean: str, actor: str) -> Claim | None:
        """Cluster mode: ask the replica running `bean` to stop it; its claim, or None when no
        other replica runs it."""
        if bean in self._active:
            return None
        return await self._claim.request_cancel(bean, actor)

    async def lookup_claim(self, bean: str) -> Claim | None:
        """Who holds `bean` now, asking the cluster database (in memory: as `claim_of`)."""
        return await self._claim.lookup(bean)

    def claim_of(self, bean: str) -> Claim | None:
        """Who holds `bean` now, as far as this process knows: its own run, or (cluster
        mode) another replica's."""
        return self._claim.holder(bean)

    async def wait_released(self, claim: Claim) -> RunRecord | None:
        """Wait until a claim (another replica's run) is released, then its recorded run."""
        await self._claim.released(claim)
        return await self._recorder.get(claim.run_id)

    async def get(self, run_id: str) -> Run | RunRecord:
        """A live run, or a finished run's record from the ledger."""
        for run in (*self._active.values(), *self._recent.values()):
            if run.run_id == run_id:
                return run
        record = await self._recorder.get(run_id)
        if record is None:
            raise RunNotFoundError(run_id)
        return record

    def cancel(self, bean: str, reason: str = "request") -> Run | None:
        """Ask the bean's active run to stop at its next check; None when nothing runs.

        A body that ignores the request is force-stopped after the job's cancel_grace.
        """
        run = self._active.get(bean)
        if run is None:
            return None
        if not run.cancel_requested.is_set():
            run.cancel_reason = reason
            run.cancel_requested.set()
            run.cancel_signal.set()
            run.update(state=RunState.CANCELLING)
            run.touch()
            log.info("run.cancel_requested", job=bean, run_id=run.run_id, reason=reason)
        return run

    def now(self) -> datetime:
        return self._clock.now()

    async def history(self, bean: str | None, limit: int) -> list[RunRecord]:
        return await self._recorder.history(bean, limit)

    def elapsed(self, run: Run) -> timedelta:
        return timedelta(seconds=max(0.0, self._clock.monotonic() - run.started_monotonic))

    async def _execute(self, spec: JobSpec, run: Run) -> None:
        options = self.options(spec.name)
        claim = self._claims.get(run.run_id)
        execution = Execution(
            spec=spec,
            run_id=run.run_id,
            fencing_token=claim.token if claim is not None and claim.fencing else None,
            trigger=run.record.trigger,
            arguments=run.record.arguments,
            cancel_requested=run.cancel_requested,
            cancel_signal=run.cancel_signal,
            cancel_grace=options.cancel_grace,
            reporter=Reporter(run, self._notify_threadsafe),
        )
        executing = asyncio.ensure_future(options.executor.execute(execution))
        if options.timeout > 0:
            done, _ = await asyncio.wait({executing}, timeout=options.timeout)
            if not done:
                log.warning(
                    "run.timed_out", job=spec.name, run_id=run.run_id, timeout_s=options.timeout
                )
                self.cancel(spec.name, reason="timeout")
        try:
            result = await executing
        except Exception as exc:  # the executor itself failed (e.g. could not start a process)
            log.exception("run.executor_failed", job=spec.name, run_id=run.run_id)
            await self._finish(run, RunOutcome.FAILED, type(exc).__name__, str(exc))
            return
        if run.ending:
            return  # already recorded by a forced stop
        if result.ending is Ending.SUCCEEDED:
            await self._finish(run, RunOutcome.SUCCESS)
        elif result.ending is Ending.FAILED:
            await self._finish(run, RunOutcome.FAILED, result.error_type, result.error_message)
        else:
            outcome = (
                RunOutcome.TIMED_OUT if run.cancel_reason == "timeout" else RunOutcome.CANCELLED
            )
            error_type, message = result.error_type, result.error_message
            if run.cancel_reason in _ENDING_ERRORS:
                error_type, template = _ENDING_ERRORS[run.cancel_reason]
                message = template.format(timeout=options.timeout)
                if result.ending in (Ending.KILLED, Ending.ABANDONED):
                    message += f"; {result.error_message}"
            await self._finish(run, outcome, error_type, message)

    async def _finish(
        self, run: Run, outcome: RunOutcome, error_type: str = "", error_message: str = ""
    ) -> None:
        if run.ending:
            return
        run.ending = True
        with run._lock:
            ended = replace(
                run.record,
                state=RunState.FINISHED,
                outcome=outcome,
                ended_at=self._clock.now(),
                error_type=error_type,
                error_message=error_message,
            )
        # Written, or kept by the recorder until the ledger takes it; only then does anyone
        # see the run finished, so whoever sees it finished finds it in the ledger.
        written = await self._recorder.end(ended)
        with run._lock:
            run.record = ended
        rec = ended
        if self._active.get(rec.bean) is run:
            del self._active[rec.bean]
        claim = self._claims.get(run.run_id)
        if written or claim is None or not claim.fencing:
            await self._release_claim(run)  # only now: the ledger has the end
        else:
            # A cluster claim outlives an end the ledger has not taken yet (it is kept to
            # retry): released now, a replica starting up would find the run open with no
            # lease over it and record it interrupted, over the end still to come.
            releasing = asyncio.ensure_future(self._release_when_written(run))
            self._tasks.add(releasing)
            releasing.add_done_callback(self._tasks.discard)
        self._recent[rec.bean] = run
        duration = self.elapsed(run).total_seconds()
        level = {RunOutcome.SUCCESS: "info", RunOutcome.CANCELLED: "warning"}.get(outcome, "error")
        getattr(log, level)(
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
        self.events.publish(
            Event(
                kind=EventKind.RUN_FINISHED,
                at=rec.ended_at or self._clock.now(),
                bean=rec.bean,
                run_id=rec.run_id,
                outcome=outcome.value,
                message=error_message,
                progress_done=rec.progress_done,
                progress_total=rec.progress_total,
                rows_read=rec.rows_read,
                rows_written=rec.rows_written,
            )
        )

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
        rec = run.record
        if rec.state is not RunState.FINISHED:
            self.events.publish(
                Event(
                    kind=EventKind.RUN_PROGRESS,
                    at=self._clock.now(),
                    bean=rec.bean,
                    run_id=rec.run_id,
                    progress_done=rec.progress_done,
                    progress_total=rec.progress_total,
                )
            )

    def refuse_new_runs(self) -> None:
        """First step of shutdown: from now on `start()` raises DrainingError."""
        self._draining = True

    async def drain(self, grace: float) -> None:
        """Let running jobs finish for `grace` seconds, then cancel the rest and record them.

        Executors end a cancelled run within its cancel_grace (killing a child process, or
        abandoning a thread that ignores cancellation), so this returns in bounded time.
        """
        self.refuse_new_runs()
        if await self._wait_all(grace):
            return
        for bean in list(self._active):
            self.cancel(bean, reason="shutdown")
        longest = max((self.options(b).cancel_grace for b in self._active), default=0.0)
        if await self._wait_all(longest + 5.0):
            return
        for run in list(self._active.values()):  # an executor that overran its own bound
            log.warning("run.abandoned", job=run.record.bean, run_id=run.run_id)
            await self._finish(run, RunOutcome.CANCELLED, *_ENDING_ERRORS["shutdown"])

    async def _wait_all(self, timeout: float) -> bool:
        waits = [asyncio.ensure_future(run.finished.wait()) for run in self._active.values()]
        if not waits:
            return True
        _, pending = await asyncio.wait(waits, timeout=timeout)
        for fut in pending:
            fut.cancel()
        return not pending
