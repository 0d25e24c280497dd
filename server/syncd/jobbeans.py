"""Job beans: each JobSpec becomes a bean with its trigger operation, `run`, `isCurrentlyRunning`,
`elapsedTime`, `cancel`, and the attributes an operator asks about."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from syncd.beans import Attribute, Bean, Invocation, Operation, Result
from syncd.clock import stopwatch_text
from syncd.enums import BeanState, Impact, RunOutcome, Trigger
from syncd.errors import BeanDisabledError
from syncd.health import Verdict, judge, stuck_threshold
from syncd.job import JobSpec
from syncd.ledger import LatestRuns, RunRecord
from syncd.runs import Run, RunCoordinator
from syncd.values import Value, ValueType

NextRun = Callable[[str], datetime | None]
Paused = Callable[[str], bool]


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
    verdict: Verdict  # failing / stuck / needs re-run (syncd.health)


class JobBeans:
    """Builds job beans over one coordinator and ledger, and answers their status."""

    def __init__(self, coordinator: RunCoordinator, ledger: LatestRuns) -> None:
        self._coordinator = coordinator
        self._ledger = ledger
        self._next_run: NextRun = lambda _name: None  # until attach_schedule
        self._paused: Paused = lambda _name: False
        self._disabled: dict[str, str] = {}
        self._specs: dict[str, JobSpec] = {}
        self._triggers: dict[str, Operation] = {}

    def attach_schedule(self, next_run: NextRun, paused: Paused) -> None:
        """Status answers next run and pause from the scheduler once it exists."""
        self._next_run = next_run
        self._paused = paused

    def disable(self, name: str, reason: str) -> None:
        """Refuse runs of `name` (e.g. `enabled = false` in its config table)."""
        self._disabled[name] = reason

    def enable(self, name: str) -> None:
        self._disabled.pop(name, None)

    def disabled_reason(self, name: str) -> str | None:
        """Why `name` refuses runs: the pack's reason (no broker, …) first, since enabling the
        job in the configuration would not make it runnable; then the configuration's."""
        spec = self._specs.get(name)
        return (spec.disabled_reason if spec else None) or self._disabled.get(name)

    def spec(self, name: str) -> JobSpec | None:
        return self._specs.get(name)

    def specs(self) -> list[JobSpec]:
        return list(self._specs.values())

    def bind_trigger(self, name: str, arguments: Mapping[str, Value]) -> dict[str, Value]:
        """`arguments` (e.g. a past run's, read back from the ledger) checked and typed by the
        job's trigger operation; InvalidArgumentError when they no longer fit it."""
        return self._triggers[name].bind([], arguments)

    async def trigger(
        self,
        spec: JobSpec,
        invocation: Invocation,
        trigger: Trigger,
        slot_time: datetime | None = None,
    ) -> Run:
        """Start a run of `spec`: the one path every caller (RPC, scheduler, web) takes."""
        if reason := self.disabled_reason(spec.name):
            raise BeanDisabledError(spec.name, reason)
        return await self._coordinator.start(
            spec, invocation.arguments, trigger=trigger, actor=invocation.actor, slot_time=slot_time
        )

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
        )

    def build(self, spec: JobSpec) -> Bean:
        """The bean for `spec`; remembers the spec for status and triggers."""
        if spec.name in self._specs:
            raise ValueError(f"job {spec.name} is built twice")
        self._specs[spec.name] = spec
        coordinator = self._coordinator
        name = spec.name

        async def start(inv: Invocation) -> Result:
            run = await self.trigger(spec, inv, Trigger.MANUAL)
            return Result(value=run.run_id, run=run, message="Just started")

        def is_running(_inv: Invocation) -> Result:
            return Result(value=coordinator.active(name) is not None)

        def elapsed_time(_inv: Invocation) -> Result:
            run = coordinator.active(name)
            seconds = coordinator.elapsed(run).total_seconds() if run else 0.0
            return Result(value=stopwatch_text(seconds))

        def cancel(_inv: Invocation) -> Result:
            run = coordinator.cancel(name)
            if run is None:
                return Result(value=False, message="Not running")
            return Result(value=True, run=run, message=f"Cancelling run {run.run_id}")

        trigger_desc = f"{spec.description} Starts a run and returns its id at once."
        self._triggers[name] = Operation(
            name=spec.trigger_operation,
            handler=start,
            description=trigger_desc,
            parameters=spec.parameters,
            returns=ValueType.RUN,
            impact=Impact.ACTION,
        )
        operations = [
            self._triggers[name],
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
            run = coordinator.active(name)
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
            run = coordinator.active(name)
            return round(coordinator.elapsed(run).total_seconds(), 3) if run else None

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
