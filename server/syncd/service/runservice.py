"""The run service: the one way anything starts, cancels, pauses, resumes or reads runs.

The gRPC servicer, the web console, the old REST API, the bean operations, the scheduler,
start-up catch-up, dependency chains and run-all all come here with typed requests. The
service owns the job catalogue (the "is this bean a job" rule), the disabled state and the
records of runs that did not execute (missed, skipped); the coordinator claims, records and
executes; the scheduling policy (`Orchestrator`) decides when, and asks this service to start.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from syncd.beans.model import Operation
from syncd.clock import Clock
from syncd.cluster.model import ReplicaInfo
from syncd.config import SchedulerConfig
from syncd.enums import RunOutcome, RunState, Trigger
from syncd.errors import BeanDisabledError, LedgerUnavailableError, NotAJobError
from syncd.execution.claim import Claim
from syncd.execution.run import Run, new_run_id
from syncd.execution.runs import RunCoordinator
from syncd.job import JobSpec
from syncd.ledger.model import RunRecord
from syncd.ledger.recorder import LedgerRecorder
from syncd.observability.events import Event, EventHub, EventKind
from syncd.scheduling.plan import JobPlan
from syncd.service.orchestrator import Orchestrator
from syncd.service.requests import (
    Cancelled,
    CancelRequest,
    HoldRequest,
    Holds,
    RunAllRequest,
    RunAllStarted,
    Started,
    StartRequest,
)
from syncd.values import Value

log = structlog.get_logger("syncd.service")


class ClusterView(Protocol):
    """What the service asks of cluster mode (`syncd.cluster.ClusterRunClaim`)."""

    replica: str
    problem: str  # "" while the heartbeat reaches the cluster database

    def holders(self) -> dict[str, Claim]: ...
    async def replicas(self) -> list[ReplicaInfo]: ...
    async def replicas_of(self, run_ids: list[str]) -> dict[str, str]: ...


class RunService:
    """Typed requests in, typed results out; domain errors (`syncd.errors`) for refusals."""

    def __init__(
        self,
        coordinator: RunCoordinator,
        recorder: LedgerRecorder,
        clock: Clock,
        plans: Mapping[str, JobPlan],
        scheduling: SchedulerConfig,
        observe_lateness: Callable[[float], None] | None = None,
    ) -> None:
        self.coordinator = coordinator
        self._recorder = recorder
        self._clock = clock
        self._specs: dict[str, JobSpec] = {}
        self._triggers: dict[str, Operation] = {}
        self._disabled: dict[str, str] = {}
        self._cluster: ClusterView | None = None
        self._remote: dict[str, tuple[Claim, RunRecord]] = {}  # other replicas' runs, by bean
        # Set while starts may go ahead; a daemon clears it until start-up has repaired the
        # runs its predecessor left open (see `defer_starts`).
        self._starts_open = asyncio.Event()
        self._starts_open.set()
        # The scheduling policy is the service's own: it fires, catches up and chains by
        # asking this service to start runs.
        self.schedule = Orchestrator(plans, self, recorder, clock, scheduling, observe_lateness)

    # --- the catalogue: which beans are jobs ---------------------------------------------

    def add_job(self, spec: JobSpec, trigger: Operation) -> None:
        """Make `spec` a job of this service; `trigger` checks and types its arguments."""
        if spec.name in self._specs:
            raise ValueError(f"job {spec.name} is added twice")
        self._specs[spec.name] = spec
        self._triggers[spec.name] = trigger

    def spec(self, name: str) -> JobSpec | None:
        return self._specs.get(name)

    def specs(self) -> list[JobSpec]:
        return list(self._specs.values())

    def ordered_specs(self) -> list[JobSpec]:
        """The jobs in timetable order (the plans' order), then any job without a plan: the one
        order `status`, `next`, the console and the old REST API list jobs in."""
        plans = self.plans
        planned = [self._specs[name] for name in plans if name in self._specs]
        return planned + [spec for name, spec in self._specs.items() if name not in plans]

    def job(self, name: str, operation: str) -> JobSpec:
        """The job `name` (a bean name the edge resolved), or NotAJobError."""
        spec = self._specs.get(name)
        if spec is None:
            raise NotAJobError(operation, name)
        return spec

    def bind(self, name: str, named: Mapping[str, Value]) -> dict[str, Value]:
        """Named arguments checked and typed by the job's trigger operation;
        InvalidArgumentError naming the parameter when they do not fit."""
        self.job(name, "start")
        return self._triggers[name].bind([], named)

    def defaults(self, name: str) -> dict[str, Value]:
        return {p.name: p.default for p in self.job(name, "start").parameters}

    # --- the disabled state --------------------------------------------------------------

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

    # --- runs ----------------------------------------------------------------------------

    @property
    def events(self) -> EventHub:
        return self.coordinator.events

    @property
    def draining(self) -> bool:
        return self.coordinator.draining

    def now(self) -> datetime:
        return self._clock.now()

    async def start(self, request: StartRequest) -> Started:
        """Start a run (claimed, its start recorded) and answer at once; with dependants, the
        jobs that depend on it follow in order once it has ended.

        Raises NotAJobError, BeanDisabledError, AlreadyRunningError, DrainingError, or
        LedgerUnavailableError (the start could not be recorded; nothing runs).
        """
        spec = self.job(request.bean, "start")
        if reason := self.disabled_reason(spec.name):
            raise BeanDisabledError(spec.name, reason)
        await self._starts_open.wait()
        arguments = self.defaults(spec.name) if request.arguments is None else request.arguments
        run = await self.coordinator.start(
            spec,
            arguments,
            trigger=request.trigger,
            actor=request.actor,
            slot_time=request.slot_time,
        )
        chain: tuple[str, ...] = ()
        if request.with_dependants:
            chain = tuple(self.schedule.follow_with_dependants(run, request.actor))
        return Started(run=run, chain=chain)

    async def cancel(self, request: CancelRequest) -> Cancelled:
        """Ask the job's run under way to stop; `Cancelled(run=None)` when nothing runs."""
        spec = self.job(request.bean, "Cancel")
        run = self.coordinator.cancel(spec.name, request.reason)
        if run is not None:
            log.info("run.cancel", job=spec.name, run_id=run.run_id, actor=request.actor)
            return Cancelled(run=run)
        # Cluster mode: another replica may run it; its heartbeat passes the request on.
        claim = await self.coordinator.cancel_elsewhere(spec.name, request.actor)
        if claim is None:
            return Cancelled(run=None)
        log.info(
            "run.cancel",
            job=spec.name,
            run_id=claim.run_id,
            actor=request.actor,
            replica=claim.replica,
        )
        known = self._remote.get(spec.name)
        record = known[1] if known and known[0].run_id == claim.run_id else None
        if record is None:
            with contextlib.suppress(LedgerUnavailableError):
                record = await self._recorder.get(claim.run_id)
        return Cancelled(run=None, elsewhere=record, replica=claim.replica)

    async def run_all(self, request: RunAllRequest) -> RunAllStarted:
        """The old "Run All Jobs": every enabled job in dependency order, one after another."""
        return RunAllStarted(jobs=tuple(self.schedule.run_all(request.actor)))

    def active(self, name: str) -> Run | None:
        return self.coordinator.active(name)

    def active_runs(self) -> list[Run]:
        return self.coordinator.active_runs()

    # --- cluster mode ---------------------------------------------------------------------

    def join_cluster(self, cluster: ClusterView) -> None:
        self._cluster = cluster

    @property
    def replica(self) -> str:
        """This daemon's replica name; "" on a single daemon."""
        return self._cluster.replica if self._cluster else ""

    @property
    def cluster_problem(self) -> str:
        return self._cluster.problem if self._cluster else ""

    async def replicas(self) -> list[ReplicaInfo] | None:
        """The cluster's members (None on a single daemon)."""
        return None if self._cluster is None else await self._cluster.replicas()

    async def run_replicas(self, run_ids: list[str]) -> dict[str, str]:
        """Which replica ran each of these runs ({} on a single daemon). Best effort: an
        unreachable cluster database leaves the runs unnamed."""
        if self._cluster is None:
            return {}
        try:
            return await self._cluster.replicas_of(run_ids)
        except LedgerUnavailableError:
            return {}

    def remote_run(self, name: str) -> tuple[Claim, RunRecord] | None:
        """Another replica's run of `name` under way, as of the last heartbeat."""
        if self.coordinator.active(name) is not None:
            return None
        found = self._remote.get(name)
        holder = self.coordinator.claim_of(name)
        if found is None or holder is None or holder.run_id != found[0].run_id:
            return None
        return found

    async def refresh_remote_runs(self) -> None:
        """Read the records of the runs other replicas hold (after each heartbeat)."""
        if self._cluster is None:
            return
        remote: dict[str, tuple[Claim, RunRecord]] = {}
        for bean, claim in self._cluster.holders().items():
            if claim.replica == self._cluster.replica:
                continue
            known = self._remote.get(bean)
            if known is not None and known[0].run_id == claim.run_id:
                remote[bean] = known
                continue
            record = await self._recorder.get(claim.run_id)
            if record is not None:
                remote[bean] = (claim, record)
        self._remote = remote

    def holder(self, name: str) -> Claim | None:
        """Who runs `name` now: this daemon's run or (cluster mode) another replica's."""
        return self.coordinator.claim_of(name)

    async def wait_elsewhere(self, record: RunRecord) -> RunRecord | None:
        """Cluster mode: wait for another replica's run to end; its record then, or None when
        no replica holds it (a single daemon; a run already ended or taken back)."""
        with contextlib.suppress(LedgerUnavailableError):
            claim = await self.coordinator.lookup_claim(record.bean)
            if claim is None or claim.run_id != record.run_id:
                return None
            return await self.coordinator.wait_released(claim)
        return None

    async def outcome_elsewhere(self, name: str, run_id: str) -> RunOutcome:
        """The outcome of a run another replica holds (or held): awaited until it ends, as
        far as the claim tells; SUCCESS when its record cannot be read (it was not ours)."""
        claim = self.coordinator.claim_of(name)
        record: RunRecord | None = None
        with contextlib.suppress(LedgerUnavailableError):
            if claim is not None and claim.run_id == run_id:
                record = await self.coordinator.wait_released(claim)
            else:
                record = await self._recorder.get(run_id)
        if record is None or record.outcome is None:
            return RunOutcome.SUCCESS
        return record.outcome

    def elapsed(self, run: Run) -> timedelta:
        return self.coordinator.elapsed(run)

    async def get_run(self, run_id: str) -> Run | RunRecord:
        """A live run, or a finished run's record; RunNotFoundError when there is none."""
        return await self.coordinator.get(run_id)

    async def history(self, bean: str | None, limit: int) -> list[RunRecord]:
        return await self.coordinator.history(bean, limit)

    async def record_outcome(
        self, name: str, outcome: RunOutcome, trigger: Trigger, slot: datetime | None, why: str
    ) -> RunRecord:
        """A run that did not execute (missed, skipped), written to the ledger and logged."""
        now = self._clock.now()
        spec = self._specs.get(name)
        record = RunRecord(
            run_id=new_run_id(now),
            bean=name,
            operation=spec.trigger_operation if spec else "run",
            trigger=trigger,
            actor="scheduler",
            slot_time=slot,
            started_at=now,
            ended_at=now,
            state=RunState.FINISHED,
            outcome=outcome,
            error_message=why,
        )
        await self._recorder.record(record)  # kept in memory and retried if the ledger fails
        kind = EventKind.RUN_MISSED if outcome is RunOutcome.MISSED else EventKind.RUN_SKIPPED
        self.events.publish(
            Event(
                kind=kind,
                at=now,
                bean=name,
                run_id=record.run_id,
                outcome=outcome.value,
                message=why,
            )
        )
        log.info(
            f"run.{outcome.value}",
            job=name,
            run_id=record.run_id,
            slot=slot.isoformat() if slot else None,
            reason=why,
        )
        return record

    # --- holds and the timetable ---------------------------------------------------------

    def _hold_target(self, request: HoldRequest, operation: str) -> str | None:
        return None if request.bean is None else self.job(request.bean, operation).name

    async def pause(self, request: HoldRequest) -> Holds:
        """Hold one job's scheduled runs (or every job's); recorded before it applies."""
        await self.schedule.pause(self._hold_target(request, "Pause"), request.actor)
        return self.holds()

    async def resume(self, request: HoldRequest) -> Holds:
        await self.schedule.resume(self._hold_target(request, "Resume"), request.actor)
        return self.holds()

    def holds(self) -> Holds:
        return Holds(holds=self.schedule.scheduler.holds())

    def paused(self, name: str) -> bool:
        return self.schedule.paused(name)

    def next_run(self, name: str) -> datetime | None:
        return self.schedule.scheduler.next_run(name)

    def upcoming(self, days: float) -> list[tuple[datetime, str]]:
        """The scheduled fires of the next `days` days, in time order: (at, job)."""
        return self.schedule.scheduler.upcoming(self._clock.now(), days)

    @property
    def plans(self) -> Mapping[str, JobPlan]:
        return self.schedule.plans

    def replace_plans(self, plans: Mapping[str, JobPlan]) -> None:
        self.schedule.replace_plans(plans)

    def defer_starts(self) -> None:
        """Hold every start until `open_starts`. A daemon serves before its start-up is done,
        and a run started then would look like one its predecessor left open: start-up would
        record it interrupted (and in a cluster, joining would take its fresh claim back)."""
        self._starts_open.clear()

    def open_starts(self) -> None:
        """Let held and new starts go ahead (after start-up's repair; or at a drain, which
        then refuses them)."""
        self._starts_open.set()

    async def begin(self) -> None:
        """Finish what a crash left running, open starts, catch up, then run the scheduler."""
        await self.schedule.start()

    async def stop_scheduling(self) -> None:
        """Stop firing and end chains; runs already started are left to the drain."""
        await self.schedule.stop()
