"""Job beans: each JobSpec becomes a bean with its trigger operation, `run`, `isCurrentlyRunning`,
`elapsedTime`, `cancel`, and the attributes an operator asks about. The beans are an edge over
the run service: their operations start and cancel through it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from syncd.beans.model import Attribute, Bean, Invocation, Operation, Result
from syncd.clock import stopwatch_text
from syncd.enums import BeanState, Impact, RunOutcome
from syncd.execution.health import Verdict, judge, stuck_threshold
from syncd.job import JobSpec
from syncd.ledger.model import LatestRuns, RunRecord
from syncd.service.requests import CancelRequest, StartRequest
from syncd.service.runservice import RunService
from syncd.values import ValueType


@dataclass(frozen=True, slots=True, kw_only=True)
class JobStatus:
    """One bean's status, as `syncctl status` shows it."""

    name: str
    state: BeanState
    current: RunRecord | None
    elapsed: timedelta | None
    last_finished: RunRecord | None
    last_success: RunRecord | None
    next_run_at: datetime | None
    disabled_reason: str | None
    verdict: Verdict  # failing / stuck / needs re-run (syncd.execution.health)
    replica: str = ""  # cluster mode: the replica that runs `current`


class JobBeans:
    """Builds job beans over the run service and the ledger, and answers their status."""

    def __init__(self, service: RunService, ledger: LatestRuns) -> None:
        self._service = service
        self._coordinator = service.coordinator
        self._ledger = ledger
        self._next_run = service.next_run
        self._paused = service.paused

    def disabled_reason(self, name: str) -> str | None:
        return self._service.disabled_reason(name)

    def spec(self, name: str) -> JobSpec | None:
        return self._service.spec(name)

    def specs(self) -> list[JobSpec]:
        return self._service.specs()

    def status(self, name: str, stuck_after: timedelta | None = None) -> JobStatus:
        """The bean's status; `stuck_after` overrides the job's stuck threshold."""
        run = self._coordinator.active(name)
        disabled = self.disabled_reason(name)
        if run is not None:
            state = BeanState.CANCELLING if run.cancel_requested.is_set() else BeanState.RUNNING
        elif disabled:
            state = BeanState.DISABLED
        elif self._paused(name):
            state = BeanState.PAUSED
        else:
            state = BeanState.IDLE
        current = run.record if run else None
        elapsed = self._coordinator.elapsed(run) if run else None
        replica = self._service.replica if run else ""
        remote = self._service.remote_run(name) if run is None else None
        if remote is not None:  # another replica runs it (cluster mode)
            claim, current = remote
            state = BeanState.RUNNING
            replica = claim.replica
            elapsed = max(timedelta(0), self._service.now() - current.started_at)
        last = self._ledger.last_finished(name)
        threshold = None
        if run is not None:  # only a run under way can be stuck
            options = self._coordinator.options(name)
            threshold = stuck_threshold(stuck_after, options.timeout, options.cancel_grace)
        return JobStatus(
            name=name,
            state=state,
            current=current,
            elapsed=elapsed,
            last_finished=last,
            last_success=self._ledger.last_success(name),
            next_run_at=self._next_run(name),
            disabled_reason=disabled,
            verdict=judge(last, current, elapsed, threshold),
            replica=replica,
        )

    def build(self, spec: JobSpec) -> Bean:
        """The bean for `spec`, whose job the run service now knows."""
        service = self._service
        name = spec.name

        async def start(inv: Invocation) -> Result:
            started = await service.start(
                StartRequest(bean=name, actor=inv.actor, arguments=inv.arguments)
            )
            run_id = started.run.run_id
            return Result(value=run_id, run_id=run_id, message="Just started")

        def is_running(_inv: Invocation) -> Result:
            return Result(value=service.active(name) is not None)

        def elapsed_time(_inv: Invocation) -> Result:
            run = service.active(name)
            seconds = service.elapsed(run).total_seconds() if run else 0.0
            return Result(value=stopwatch_text(seconds))

        async def cancel(inv: Invocation) -> Result:
            cancelled = await service.cancel(CancelRequest(bean=name, actor=inv.actor))
            run, elsewhere = cancelled.run, cancelled.elsewhere
            if run is None and elsewhere is not None:  # cluster mode: another replica's run
                return Result(
                    value=True,
                    run_id=elsewhere.run_id,
                    message=f"Cancelling run {elsewhere.run_id} on replica {cancelled.replica}",
                )
            if run is None:
                return Result(value=False, message="Not running")
            return Result(value=True, run_id=run.run_id, message=f"Cancelling run {run.run_id}")

        trigger_desc = f"{spec.description} Starts a run and returns its id at once."
        trigger = Operation(
            name=spec.trigger_operation,
            handler=start,
            description=trigger_desc,
            parameters=spec.parameters,
            returns=ValueType.RUN,
            impact=Impact.ACTION,
        )
        service.add_job(spec, trigger)
        operations = [
            trigger,
            Operation(
                name="run",
                handler=start,
                description=f"Another name for {spec.trigger_operation}.",
                parameters=spec.parameters,
                returns=ValueType.RUN,
                impact=Impact.ACTION,
                alias_of=spec.trigger_operation,
            ),
            Operation(
                name="isCurrentlyRunning",
                handler=is_running,
                description="Whether a run of this job is under way.",
                returns=ValueType.BOOL,
            ),
            Operation(
                name="elapsedTime",
                handler=elapsed_time,
                description='Time the current run has taken, as "3.512 min"; "0s" when idle.',
                returns=ValueType.STRING,
            ),
            Operation(
                name="cancel",
                handler=cancel,
                description="Ask the current run to stop; false when nothing runs.",
                returns=ValueType.BOOL,
                impact=Impact.ACTION,
            ),
            *spec.extra_operations,
        ]

        def current() -> RunRecord | None:
            run = service.active(name)
            return run.record if run else None

        def outcome(record: RunRecord | None) -> str | None:
            return record.outcome.value if record and record.outcome else None

        def finished_at() -> datetime | None:
            last = self._ledger.last_finished(name)
            return last.ended_at if last else None

        def success_at() -> datetime | None:
            last = self._ledger.last_success(name)
            return last.ended_at if last else None

        def last_error() -> str | None:
            last = self._ledger.last_finished(name)
            if last is None or last.outcome is RunOutcome.SUCCESS:
                return None
            return f"{last.error_type}: {last.error_message}" if last.error_type else None

        def elapsed_seconds() -> float | None:
            run = service.active(name)
            return round(service.elapsed(run).total_seconds(), 3) if run else None

        attributes = [
            Attribute(
                name="State",
                type=ValueType.STRING,
                read=lambda: self.status(name).state.value,
                description="idle, running, cancelling, paused or disabled.",
            ),
            Attribute(
                name="CurrentRunId",
                type=ValueType.STRING,
                read=lambda: c.run_id if (c := current()) else None,
                description="The id of the run under way.",
            ),
            Attribute(
                name="StartedAt",
                type=ValueType.TIMESTAMP,
                read=lambda: c.started_at if (c := current()) else None,
                description="When the run under way started (UTC).",
            ),
            Attribute(
                name="Elapsed",
                type=ValueType.FLOAT,
                read=elapsed_seconds,
                description="Seconds the run under way has taken.",
            ),
            Attribute(
                name="LastOutcome",
                type=ValueType.STRING,
                read=lambda: outcome(self._ledger.last_finished(name)),
                description="How the last finished run ended.",
            ),
            Attribute(
                name="LastFinishedAt",
                type=ValueType.TIMESTAMP,
                read=finished_at,
                description="When the last run ended (UTC).",
            ),
            Attribute(
                name="LastSuccessAt",
                type=ValueType.TIMESTAMP,
                read=success_at,
                description="When the last successful run ended (UTC).",
            ),
            Attribute(
                name="LastError",
                type=ValueType.STRING,
                read=last_error,
                description="The error of the last run, when it did not succeed.",
            ),
            Attribute(
                name="NextRunAt",
                type=ValueType.TIMESTAMP,
                read=lambda: self._next_run(name),  # late-bound: the scheduler attaches later
                description="The next scheduled run (UTC); empty when the job has no timetable.",
            ),
        ]
        return Bean.build(name, spec.description, operations, attributes, spec.aliases)
