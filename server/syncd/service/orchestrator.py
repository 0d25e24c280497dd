"""The scheduling policy: the scheduler's fires, start-up catch-up, chains (run-all,
--with-dependants) and pauses. It decides when; every run starts through the run service
(`syncd.service.RunService.start`), and every ledger write goes through the recorder (the
ledger's one writer).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from syncd.clock import Clock
from syncd.config import SchedulerConfig
from syncd.enums import RunOutcome, Trigger
from syncd.errors import (
    AlreadyRunningError,
    BeanDisabledError,
    BeanNotFoundError,
    DrainingError,
    InvalidArgumentError,
    LedgerUnavailableError,
    SlotClaimedError,
)
from syncd.execution.health import blocks_dependants
from syncd.execution.run import Run
from syncd.ledger.model import EXECUTED, RunRecord
from syncd.ledger.recorder import LedgerRecorder
from syncd.observability.events import Event, EventKind
from syncd.scheduling.plan import JobPlan, dependants, run_order
from syncd.scheduling.scheduler import ALL, Scheduler
from syncd.service.catchup import Interrupted, catch_up
from syncd.service.requests import StartRequest
from syncd.values import Value

if TYPE_CHECKING:  # the service owns this policy; it is passed in, not imported at run time
    from syncd.service.runservice import RunService

log = structlog.get_logger("syncd.orchestrator")

LAST_SEEN_KEY = "scheduler.last_seen"


class Orchestrator:
    def __init__(
        self,
        plans: Mapping[str, JobPlan],
        service: RunService,
        recorder: LedgerRecorder,
        clock: Clock,
        config: SchedulerConfig,
        observe_lateness: Callable[[float], None] | None = None,
    ) -> None:
        self.plans = plans
        self._service = service
        self._ledger = recorder
        self._clock = clock
        self._config = config
        self._tasks: set[asyncio.Task[Any]] = set()
        self._hold_changes = 0
        self.scheduler = Scheduler(
            plans if config.enabled else {},
            clock,
            fire=self._on_fire,
            miss=self._on_miss,
            holds=recorder.ledger.holds(),  # once, at construction, before anything serves
            observe_lateness=observe_lateness,
        )

    # --- start and stop ------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def start(self) -> None:
        """Finish what a crash left running, catch up, then run the scheduler."""
        now = self._clock.now()
        try:
            for record in await self._ledger.mark_interrupted(now):
                log.warning("run.interrupted", job=record.bean, run_id=record.run_id)
        except LedgerUnavailableError as exc:  # they stay "running" until a start that can
            log.error("ledger.interrupted_not_marked", problem=exc.problem)
        self._service.open_starts()  # what starts from now on is this daemon's own
        if self._config.enabled and self._config.catch_up:
            try:
                await self._catch_up(now)
            except LedgerUnavailableError as exc:
                log.error("scheduler.catch_up_skipped", problem=exc.problem)
        self._spawn(self._scheduler_loop(), "scheduler")

    async def _scheduler_loop(self) -> None:
        try:
            await self.scheduler.run()
        finally:
            self._remember_last_seen()

    def _remember_last_seen(self) -> None:
        seen = self.scheduler.last_seen or self._clock.now()
        self._ledger.note_meta(LAST_SEEN_KEY, seen.isoformat())

    async def after_failover(self, beans: set[str]) -> None:
        """Cluster mode: another replica's runs of `beans` were recorded `interrupted` when
        their leases expired; the catch-up rules decide, here, whether each runs again."""
        if not (self._config.enabled and self._config.catch_up):
            return
        try:
            await self._catch_up(self._clock.now(), only=beans)
        except LedgerUnavailableError as exc:
            log.error("scheduler.catch_up_skipped", problem=exc.problem)

    async def _catch_up(self, now: datetime, only: set[str] | None = None) -> None:
        raw = await self._ledger.get_meta(LAST_SEEN_KEY) if only is None else None
        # After a failover only the window and interrupted-run rules apply: the slots the
        # cluster passed were fired by the live replicas, not missed.
        last_seen = datetime.fromisoformat(raw) if raw else None
        plans = self.plans if only is None else {n: p for n, p in self.plans.items() if n in only}
        horizon = min(last_seen or now, now - timedelta(days=1)) - timedelta(days=1)
        successes: dict[str, list[datetime]] = {}
        recorded: dict[str, list[datetime]] = {}
        last_executed: dict[str, RunRecord] = {}
        for record in await self._ledger.runs_since(horizon):  # oldest first
            if record.outcome in EXECUTED:
                last_executed[record.bean] = record
            if record.outcome is RunOutcome.SUCCESS:
                successes.setdefault(record.bean, []).append(record.started_at)
            elif record.outcome is RunOutcome.MISSED and record.slot_time:
                recorded.setdefault(record.bean, []).append(record.slot_time)
        missed, runs = catch_up(
            plans,
            now=now,
            window=self._config.window,
            last_seen=last_seen,
            successes=successes,
            recorded_missed=recorded,
            interrupted={
                name: Interrupted(record.started_at, record.slot_time, record.arguments)
                for name, record in last_executed.items()
                if record.outcome is RunOutcome.INTERRUPTED
            },
        )
        for miss in missed:
            await self._service.record_outcome(
                miss.name,
                RunOutcome.MISSED,
                Trigger.SCHEDULE,
                miss.slot,
                "the daemon was not running at this slot",
            )
        if runs:
            slots = {r.name: r.slot for r in runs}
            triggers = {r.name: r.trigger for r in runs}
            again = {r.name: r.arguments for r in runs if r.arguments is not None}
            # Timetable order within the dependency constraints; the log line announces the
            # order that runs, one job after another.
            order = run_order(self.plans, slots)
            log.info(
                "scheduler.catch_up",
                jobs=order,
                triggers=sorted({t.value for t in triggers.values()}),
            )
            self._spawn(
                self._chain(order, triggers, "scheduler", slots=slots, arguments=again),
                "catch-up",
            )

    async def stop(self) -> None:
        """Stop firing; end chains (runs already started are left to the coordinator's drain)."""
        self.scheduler.stop()
        for task in list(self._tasks):
            if task.get_name() != "scheduler":
                task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=10)

    # --- the scheduler's callbacks -------------------------------------------------------

    def _on_fire(self, name: str, slot: datetime) -> None:
        self._remember_last_seen()
        self._spawn(self._scheduled(name, slot, Trigger.SCHEDULE), f"fire:{name}")

    def _on_miss(self, name: str, slot: datetime, run_once: bool) -> None:
        self._spawn(self._missed(name, slot, run_once), f"missed:{name}")

    async def _missed(self, name: str, slot: datetime, run_once: bool) -> None:
        await self._service.record_outcome(
            name,
            RunOutcome.MISSED,
            Trigger.SCHEDULE,
            slot,
            "the slot passed while the daemon could not fire it",
        )
        if run_once:
            await self._scheduled(name, slot, Trigger.CATCH_UP)

    def _prerequisite_failed(self, name: str) -> str | None:
        now = self._clock.now()
        for dep in self.plans[name].after:
            last = self._ledger.last_finished(dep)
            if last is not None and blocks_dependants(last, now):
                return f"prerequisite {dep} ended {last.outcome.value if last.outcome else '?'} (run {last.run_id})"
        return None

    async def _wait_for_prerequisites(self, name: str) -> None:
        for dep in self.plans[name].after:
            run = self._service.active(dep)
            if run is not None:
                log.info(
                    "scheduler.waiting_for_prerequisite",
                    job=name,
                    prerequisite=dep,
                    run_id=run.run_id,
                )
                await run.finished.wait()

    async def _scheduled(self, name: str, slot: datetime, trigger: Trigger) -> None:
        await self._wait_for_prerequisites(name)
        if (why := self._prerequisite_failed(name)) is not None:
            await self._service.record_outcome(
                name, RunOutcome.SKIPPED_PREREQUISITE_FAILED, trigger, slot, why
            )
            return
        request = StartRequest(bean=name, actor="scheduler", trigger=trigger, slot_time=slot)
        try:
            await self._service.start(request)
        except AlreadyRunningError as exc:
            where = f" on replica {exc.replica}" if exc.replica else ""
            await self._service.record_outcome(
                name,
                RunOutcome.SKIPPED_ALREADY_RUNNING,
                trigger,
                slot,
                f"run {exc.run_id} was under way{where}",
            )
        except SlotClaimedError as exc:  # another replica fired this slot: it runs there
            log.info(
                "scheduler.slot_claimed",
                job=name,
                slot=slot.isoformat(),
                run_id=exc.run_id,
                replica=exc.replica,
            )
        except (DrainingError, BeanDisabledError) as exc:
            log.info("scheduler.not_started", job=name, reason=str(exc))
        except LedgerUnavailableError as exc:  # the slot is not silently lost
            await self._service.record_outcome(name, RunOutcome.MISSED, trigger, slot, str(exc))

    def _same_arguments(self, name: str, given: Mapping[str, Value]) -> dict[str, Value]:
        """A re-run's arguments: the cut-off run's, re-checked (the job may have changed since
        they were recorded); the defaults when they no longer fit."""
        try:
            return self._service.bind(name, given)
        except InvalidArgumentError as exc:
            log.warning("scheduler.rerun_defaults", job=name, reason=str(exc))
            return self._service.defaults(name)

    # --- chains --------------------------------------------------------------------------

    async def _chain(
        self,
        names: list[str],
        triggers: Mapping[str, Trigger] | Trigger,
        actor: str,
        *,
        slots: Mapping[str, datetime] | None = None,
        first: Run | None = None,
        arguments: Mapping[str, Mapping[str, Value]] | None = None,
    ) -> dict[str, RunOutcome]:
        """Run `names` one after another; a job whose prerequisite failed in this chain is
        recorded `skipped_prerequisite_failed` instead of running."""
        outcomes: dict[str, RunOutcome] = {}
        if first is not None:
            await first.finished.wait()
            outcomes[first.record.bean] = first.record.outcome or RunOutcome.FAILED
        for name in names:
            trigger = triggers if isinstance(triggers, Trigger) else triggers[name]
            slot = slots.get(name) if slots else None
            failed = [
                d
                for d in self.plans[name].after
                if outcomes.get(d, RunOutcome.SUCCESS) is not RunOutcome.SUCCESS
            ]
            if failed:
                await self._service.record_outcome(
                    name,
                    RunOutcome.SKIPPED_PREREQUISITE_FAILED,
                    trigger,
                    slot,
                    f"prerequisite {', '.join(failed)} did not succeed in this chain",
                )
                outcomes[name] = RunOutcome.SKIPPED_PREREQUISITE_FAILED
                continue
            given = arguments.get(name) if arguments else None
            args = None if given is None else self._same_arguments(name, given)
            request = StartRequest(
                bean=name, actor=actor, arguments=args, trigger=trigger, slot_time=slot
            )
            try:
                run = (await self._service.start(request)).run
            except (AlreadyRunningError, SlotClaimedError) as exc:
                # Someone else's run of this job (here, or on another replica) is under way or
                # took this slot: its result stands for ours.
                other = self._service.active(name)
                log.info("chain.joined_run", job=name, run_id=exc.run_id)
                if other is None:
                    outcomes[name] = await self._service.outcome_elsewhere(name, exc.run_id)
                    continue
                run = other
            except DrainingError:
                log.info("chain.stopped", reason="draining", remaining=names[names.index(name) :])
                break
            except BeanDisabledError as exc:
                await self._service.record_outcome(
                    name, RunOutcome.SKIPPED_PREREQUISITE_FAILED, trigger, slot, str(exc)
                )
                outcomes[name] = RunOutcome.SKIPPED_PREREQUISITE_FAILED
                continue
            except LedgerUnavailableError as exc:  # its dependants are skipped in turn
                await self._service.record_outcome(name, RunOutcome.MISSED, trigger, slot, str(exc))
                outcomes[name] = RunOutcome.MISSED
                continue
            await run.finished.wait()
            outcomes[name] = run.record.outcome or RunOutcome.FAILED
        log.info("chain.finished", outcomes={k: v.value for k, v in outcomes.items()})
        return outcomes

    def run_all(self, actor: str) -> list[str]:
        """The old "Run All Jobs": every enabled job in dependency order, sequentially."""
        if self._service.draining:
            raise DrainingError
        names = run_order(self.plans, [n for n, p in self.plans.items() if p.enabled])
        self._spawn(self._chain(names, Trigger.MANUAL, actor), "run-all")
        return names

    def follow_with_dependants(self, run: Run, actor: str) -> list[str]:
        """Once `run` has ended, run every job that depends on its job, in order."""
        name = run.record.bean
        chain = dependants(self.plans, name)
        self._spawn(self._chain(chain, Trigger.DEPENDENCY, actor, first=run), f"dependants:{name}")
        return chain

    def replace_plans(self, plans: Mapping[str, JobPlan]) -> None:
        self.plans = plans
        self.scheduler.replace_plans(plans if self._config.enabled else {}, self._clock.now())

    # --- pauses --------------------------------------------------------------------------

    async def pause(self, name: str | None, actor: str) -> None:
        target = self._target(name)
        now = self._clock.now()
        await self._ledger.set_hold(target, now)  # not persisted, not paused
        self._hold_changes += 1  # with the pause below, before anything else runs
        self.scheduler.pause(target, now)
        self._service.events.publish(
            Event(kind=EventKind.BEAN_PAUSED, at=now, bean=target, message=actor)
        )
        log.info("bean.paused", job=target, actor=actor)

    async def resume(self, name: str | None, actor: str) -> None:
        target = self._target(name)
        await self._ledger.clear_hold(target)
        self._hold_changes += 1
        self.scheduler.resume(target, self._clock.now())
        self._service.events.publish(
            Event(kind=EventKind.BEAN_RESUMED, at=self._clock.now(), bean=target, message=actor)
        )
        log.info("bean.resumed", job=target, actor=actor)

    @property
    def hold_changes(self) -> int:
        """How many pauses and resumes this daemon has made (see `follow_holds`)."""
        return self._hold_changes

    def follow_holds(self, holds: Mapping[str, datetime], now: datetime, changes: int) -> None:
        """Cluster mode: apply the holds another replica set or lifted. `holds` was read when
        `hold_changes` was `changes`; after a pause or resume here since, it may predate that
        change, and is left for the next heartbeat."""
        if changes != self._hold_changes:
            return
        current = self.scheduler.holds()
        for name in holds.keys() - current.keys():
            self.scheduler.pause(name, holds[name])
            log.info("bean.paused", job=name, actor="another replica")
        for name in current.keys() - holds.keys():
            self.scheduler.resume(name, now)
            log.info("bean.resumed", job=name, actor="another replica")

    def _target(self, name: str | None) -> str:
        if not name or name == ALL:
            return ALL
        if name not in self.plans:
            raise BeanNotFoundError(name, [])
        return name

    def paused(self, name: str) -> bool:
        return self.scheduler.paused(name)
