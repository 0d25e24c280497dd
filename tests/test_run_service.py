"""The run service and the run claim behind it: typed requests, the claim taken before the
start is recorded and given back only after the end is (or when the start is refused), the
disabled state, the is-a-job rule, and dependants started through the service."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from collections.abc import Coroutine
from datetime import datetime
from typing import Any, TypeVar, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.beans.model import Invocation, Operation, Result
from syncd.enums import RunOutcome, Trigger
from syncd.errors import (
    AlreadyRunningError,
    BeanDisabledError,
    InvalidArgumentError,
    LedgerUnavailableError,
    NotAJobError,
)
from syncd.execution.claim import Claim, InMemoryRunClaim, OnCancel, OnLost
from syncd.execution.run import Run
from syncd.ledger.model import MemoryLedger, RunRecord
from syncd.observability.events import EventKind
from syncd.service import CancelRequest, HoldRequest, StartRequest
from syncd.values import Value
from tests.packs.sample import QUICK, Gates, chain_jobs, gated_job
from tests.run_service import build_service
from tests.waiting import set_within, within

Step = tuple[str, str]
T = TypeVar("T")


async def call(operation: Operation, arguments: dict[str, Value]) -> Result:
    """Invoke a bean operation as the RPC edge does (bound arguments, sync or async handler)."""
    outcome = operation.handler(
        Invocation(arguments=operation.bind([], arguments), actor="operator")
    )
    if inspect.isawaitable(outcome):
        outcome = await outcome
    assert isinstance(outcome, Result)
    return outcome


class RecordingClaim:
    """The in-memory claim, noting each acquire and release in the shared step list."""

    def __init__(self, steps: list[Step]) -> None:
        self._inner = InMemoryRunClaim()
        self._steps = steps

    async def acquire(
        self,
        bean: str,
        run_id: str,
        *,
        slot_time: datetime | None = None,
        rerun: bool = False,
    ) -> Claim:
        claim = await self._inner.acquire(bean, run_id, slot_time=slot_time, rerun=rerun)
        self._steps.append(("acquire", run_id))
        return claim

    async def release(self, claim: Claim) -> None:
        self._steps.append(("release", claim.run_id))
        await self._inner.release(claim)

    def holder(self, bean: str) -> Claim | None:
        return self._inner.holder(bean)

    async def released(self, claim: Claim) -> None:
        await self._inner.released(claim)

    async def lookup(self, bean: str) -> Claim | None:
        return await self._inner.lookup(bean)

    def on_lost(self, callback: OnLost) -> None:
        self._inner.on_lost(callback)

    def on_cancel(self, callback: OnCancel) -> None:
        self._inner.on_cancel(callback)

    async def request_cancel(self, bean: str, actor: str) -> Claim | None:
        return await self._inner.request_cancel(bean, actor)


class RecordingLedger(MemoryLedger):
    """A memory ledger noting starts and ends in the same list; `failing` refuses writes."""

    def __init__(self, steps: list[Step]) -> None:
        super().__init__()
        self._steps = steps
        self.failing = ""

    def record_start(self, record: RunRecord) -> None:
        if self.failing:
            raise LedgerUnavailableError(self.failing)
        self._steps.append(("start", record.run_id))
        super().record_start(record)

    def record_end(self, record: RunRecord) -> None:
        self._steps.append(("end", record.run_id))
        super().record_end(record)


def test_the_claim_is_taken_before_the_start_is_recorded_and_given_back_after_the_end() -> None:
    async def main() -> None:
        steps: list[Step] = []
        built = build_service(RecordingLedger(steps), [QUICK], claim=RecordingClaim(steps))
        started = await built.service.start(StartRequest(bean=QUICK.name, actor="t"))
        run = started.run
        await within(run.finished.wait(), "the run's end")
        assert steps == [
            ("acquire", run.run_id),
            ("start", run.run_id),
            ("end", run.run_id),
            ("release", run.run_id),
        ]
        assert run.record.outcome is RunOutcome.SUCCESS
        assert started.chain == ()
        await built.recorder.close()

    asyncio.run(main())


class FencedClaim(RecordingClaim):
    """As a cluster's claim: what it grants carries a fencing token."""

    def __init__(self, steps: list[Step]) -> None:
        super().__init__(steps)
        self.given_back = asyncio.Event()

    async def acquire(
        self,
        bean: str,
        run_id: str,
        *,
        slot_time: datetime | None = None,
        rerun: bool = False,
    ) -> Claim:
        claim = await super().acquire(bean, run_id, slot_time=slot_time, rerun=rerun)
        return dataclasses.replace(claim, fencing=True)

    async def release(self, claim: Claim) -> None:
        self._steps.append(("release", claim.run_id))
        self.given_back.set()


class EndRefusingLedger(RecordingLedger):
    """Refuses run ends while `ends_refused` says why."""

    ends_refused = ""

    def record_end(self, record: RunRecord) -> None:
        if self.ends_refused:
            raise LedgerUnavailableError(self.ends_refused)
        super().record_end(record)


def test_a_cluster_claim_is_held_until_the_ledger_has_the_runs_end() -> None:
    """An end the ledger cannot take yet is kept to retry; the cluster claim is given back only
    once it is written (released before, a replica starting up would record the run
    interrupted over the end still to come). A single daemon's claim goes at once."""

    async def main() -> None:
        steps: list[Step] = []
        ledger = EndRefusingLedger(steps)
        claim = FencedClaim(steps)
        built = build_service(ledger, [QUICK], claim=claim)
        ledger.ends_refused = "locked by another writer"
        run = (await built.service.start(StartRequest(bean=QUICK.name, actor="t"))).run
        await within(run.finished.wait(), "the run's end")
        assert run.record.outcome is RunOutcome.SUCCESS
        assert not claim.given_back.is_set() and ("release", run.run_id) not in steps
        ledger.ends_refused = ""
        built.recorder.retry_now()
        await within(claim.given_back.wait(), "the claim given back")
        assert steps[-2:] == [("end", run.run_id), ("release", run.run_id)]
        await built.recorder.close()

    asyncio.run(main())


def test_a_start_the_ledger_refuses_gives_the_claim_back_and_leaves_the_job_startable() -> None:
    async def main() -> None:
        steps: list[Step] = []
        ledger = RecordingLedger(steps)
        claim = RecordingClaim(steps)
        built = build_service(ledger, [QUICK], claim=claim)
        ledger.failing = "disk full"
        with pytest.raises(LedgerUnavailableError):
            await built.service.start(StartRequest(bean=QUICK.name, actor="t"))
        assert [kind for kind, _ in steps] == ["acquire", "release"]
        assert steps[0][1] == steps[1][1]
        assert claim.holder(QUICK.name) is None
        assert built.service.active(QUICK.name) is None
        ledger.failing = ""
        run = (await built.service.start(StartRequest(bean=QUICK.name, actor="t"))).run
        await within(run.finished.wait(), "the second run's end")
        assert run.record.outcome is RunOutcome.SUCCESS
        await built.recorder.close()

    asyncio.run(main())


def test_a_second_start_is_refused_by_the_claim_and_writes_nothing() -> None:
    gates = Gates()
    job = gated_job(gates)

    async def main() -> None:
        steps: list[Step] = []
        claim = RecordingClaim(steps)
        built = build_service(RecordingLedger(steps), [job], claim=claim)
        first = (await built.service.start(StartRequest(bean=job.name, actor="t"))).run
        with pytest.raises(AlreadyRunningError) as refused:
            await built.service.start(StartRequest(bean=job.name, actor="u"))
        assert refused.value.run_id == first.run_id
        holder = claim.holder(job.name)
        assert holder is not None and holder.run_id == first.run_id
        assert steps == [("acquire", first.run_id), ("start", first.run_id)]
        cancelled = await built.service.cancel(CancelRequest(bean=job.name, actor="t"))
        assert cancelled.run is first
        await within(first.finished.wait(), "the cancelled run's end")
        assert first.record.outcome is RunOutcome.CANCELLED
        assert claim.holder(job.name) is None
        assert (await built.service.cancel(CancelRequest(bean=job.name, actor="t"))).run is None
        await built.recorder.close()

    asyncio.run(main())


def test_a_disabled_job_is_refused_before_anything_is_claimed() -> None:
    async def main() -> None:
        steps: list[Step] = []
        built = build_service(RecordingLedger(steps), [QUICK], claim=RecordingClaim(steps))
        service = built.service
        service.disable(QUICK.name, "disabled in the configuration")
        assert service.disabled_reason(QUICK.name) == "disabled in the configuration"
        with pytest.raises(BeanDisabledError, match="disabled in the configuration"):
            await service.start(StartRequest(bean=QUICK.name, actor="t"))
        assert steps == []
        service.enable(QUICK.name)
        assert service.disabled_reason(QUICK.name) is None
        run = (await service.start(StartRequest(bean=QUICK.name, actor="t"))).run
        await within(run.finished.wait(), "the run's end")
        await built.recorder.close()

    asyncio.run(main())


def test_beans_that_are_not_jobs_are_refused_by_every_run_operation() -> None:
    async def main() -> None:
        built = build_service(MemoryLedger(), [QUICK])
        service = built.service
        with pytest.raises(NotAJobError) as start:
            await service.start(StartRequest(bean="Daemon", actor="t"))
        assert isinstance(start.value, InvalidArgumentError)
        assert start.value.parameter == "bean"
        assert "Daemon is not a job" in str(start.value)
        with pytest.raises(NotAJobError):
            await service.cancel(CancelRequest(bean="Daemon", actor="t"))
        with pytest.raises(NotAJobError):
            await service.pause(HoldRequest(bean="Daemon", actor="t"))
        with pytest.raises(NotAJobError):
            service.bind("Daemon", {})
        assert service.spec("Daemon") is None
        assert [s.name for s in service.specs()] == [QUICK.name]
        await built.recorder.close()

    asyncio.run(main())


def test_the_bean_operations_start_and_cancel_through_the_service() -> None:
    """The trigger operation answers the run's id (no run object travels in the result);
    the edge reads the run back from the service."""
    gates = Gates()
    job = gated_job(gates)

    async def main() -> None:
        built = build_service(MemoryLedger(), [job])
        bean = built.beans[job.name]
        started = await call(bean.operation("run"), {"rows": "2"})
        assert started.value == started.run_id != ""
        run = await built.service.get_run(started.run_id)
        assert isinstance(run, Run) and run is built.service.active(job.name)
        assert run.record.arguments == {"rows": 2} and run.record.actor == "operator"
        set_within(gates.started, "the body to start")
        cancelled = await call(bean.operation("cancel"), {})
        assert (cancelled.value, cancelled.run_id) == (True, started.run_id)
        await within(run.finished.wait(), "the cancelled run's end")
        assert (await call(bean.operation("cancel"), {})).value is False
        await built.recorder.close()

    asyncio.run(main())


def test_dependants_follow_a_run_started_through_the_service() -> None:
    gates = Gates()
    jobs = chain_jobs(gates)

    async def main() -> None:
        built = build_service(MemoryLedger(), jobs)
        service = built.service
        async with service.events.subscribe() as events:
            started = await service.start(
                StartRequest(bean="Emp", actor="t", arguments={"rows": 2}, with_dependants=True)
            )
            assert started.chain == ("Train", "Index")
            assert started.run.record.trigger is Trigger.MANUAL

            async def index_finished() -> None:
                while True:
                    event, _lost = await events.next()
                    if event.kind is EventKind.RUN_FINISHED and event.bean == "Index":
                        return

            await within(index_finished(), "the chain's last run to finish")
        runs = {r.bean: r for r in await service.history(None, 10)}
        assert set(runs) == {"Emp", "Train", "Index"}
        assert runs["Emp"].arguments == {"rows": 2}
        for name in ("Train", "Index"):
            assert runs[name].trigger is Trigger.DEPENDENCY
            assert runs[name].outcome is RunOutcome.SUCCESS
        await service.stop_scheduling()
        await built.recorder.close()

    asyncio.run(main())


def test_requests_and_results_are_frozen() -> None:
    request = StartRequest(bean=QUICK.name, actor="t")
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.bean = "other"  # type: ignore[misc]
    assert request.trigger is Trigger.MANUAL and request.arguments is None


# --- the in-memory claim, against a model -------------------------------------------------

_BEANS = ("A", "B", "C")
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("acquire"), st.sampled_from(_BEANS)),
        st.tuples(st.just("release"), st.integers(min_value=0, max_value=20)),
    ),
    max_size=40,
)


@given(_ops)
def test_the_in_memory_claim_holds_at_most_one_run_per_bean(ops: list[tuple[str, object]]) -> None:
    """Against a model: a held bean refuses naming its holder; only the holder's own claim
    frees it (a stale release changes nothing); tokens only grow."""
    claim = InMemoryRunClaim()
    model: dict[str, str] = {}
    granted: list[Claim] = []
    for n, (kind, arg) in enumerate(ops):
        if kind == "acquire":
            assert isinstance(arg, str)
            run_id = f"run-{n}"
            if arg in model:
                with pytest.raises(AlreadyRunningError) as refused:
                    at_once(claim.acquire(arg, run_id))
                assert refused.value.run_id == model[arg]
            else:
                got = at_once(claim.acquire(arg, run_id))
                assert all(got.token > g.token for g in granted)
                granted.append(got)
                model[arg] = run_id
        elif granted:
            assert isinstance(arg, int)
            old = granted[arg % len(granted)]
            at_once(claim.release(old))
            if model.get(old.bean) == old.run_id:
                del model[old.bean]
        for bean in _BEANS:
            holder = claim.holder(bean)
            assert (holder.run_id if holder else None) == model.get(bean)


def test_a_stale_release_does_not_free_a_newer_run() -> None:
    claim = InMemoryRunClaim()
    first = at_once(claim.acquire("A", "r1"))
    at_once(claim.release(first))
    second = at_once(claim.acquire("A", "r2"))
    at_once(claim.release(first))
    assert claim.holder("A") == second


def at_once(step: Coroutine[Any, Any, T]) -> T:
    """The coroutine's result, asserting it never awaited: the in-memory claim decides in one
    step, so two requests on one event loop cannot interleave inside it."""
    try:
        step.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    step.close()
    raise AssertionError("the in-memory claim awaited inside acquire or release")


class RepairNotingLedger(RecordingLedger):
    """Notes start-up's repair of open runs in the step list too."""

    def mark_interrupted(self, now: datetime) -> list[RunRecord]:
        self._steps.append(("repair", ""))
        return super().mark_interrupted(now)


def test_a_run_asked_for_while_the_daemon_starts_up_is_not_recorded_interrupted() -> None:
    """A daemon serves before its start-up is done: a start asked for then waits until the
    runs a predecessor left open are repaired, so the repair never takes it for one of them
    (it would record the run interrupted, and in a cluster take its fresh claim back)."""

    async def main() -> None:
        steps: list[Step] = []
        ledger = RepairNotingLedger(steps)
        gates = Gates()
        job = gated_job(gates)
        built = build_service(ledger, [job], claim=RecordingClaim(steps))
        built.service.defer_starts()
        starting = asyncio.create_task(built.service.start(StartRequest(bean=job.name, actor="t")))
        # Without the hold the start would claim and record at once: bounded, it must not end.
        ended, _ = await asyncio.wait({starting}, timeout=0.5)
        assert not ended and steps == []
        await built.service.begin()
        run = (await within(starting, "the held start")).run
        gates.release.set()
        await within(run.finished.wait(), "the run's end")
        assert steps[:3] == [("repair", ""), ("acquire", run.run_id), ("start", run.run_id)]
        assert run.record.outcome is RunOutcome.SUCCESS
        assert ledger.get(run.run_id).outcome is RunOutcome.SUCCESS  # type: ignore[union-attr]
        await built.service.stop_scheduling()
        await built.recorder.close()

    asyncio.run(main())
