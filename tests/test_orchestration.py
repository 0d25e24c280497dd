"""Scheduling, chains, pauses, timeouts and kills through the real daemon and its gRPC API."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from syncd.config import JobConfig, SchedulerConfig
from syncd.enums import RunOutcome, Trigger
from syncd_api.v1 import management_pb2 as pb
from tests.clocks import ManualClock
from tests.harness import BOUND, Running, running_daemon
from tests.packs.sample import FAILING, IGNORING, QUICK, Gates, chain_jobs, gated_job

START = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)


def _run(coro: Awaitable[None]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(60):
            await coro

    asyncio.run(bounded())


async def _finished(rt: Running, run_id: str) -> pb.RunInfo:
    last = None
    async with asyncio.timeout(BOUND):
        async for info in rt.stub.WatchRun(pb.WatchRunRequest(run_id=run_id)):
            last = info
    assert last is not None
    return last


async def _until(predicate: Callable[[], bool], rt: Running) -> None:
    """Wait, bounded, until `predicate` holds, re-checking after each daemon event."""
    async with rt.daemon.coordinator.events.subscribe() as events, asyncio.timeout(BOUND):
        while not predicate():
            await events.next()


def _done(rt: Running, bean: str, count: int = 1) -> Callable[[], bool]:
    """True once `bean` has `count` finished records in the ledger."""

    def check() -> bool:
        finished = [r for r in rt.daemon.ledger.history(bean) if r.outcome is not None]
        return len(finished) >= count

    return check


async def _started_order(rt: Running, action: Awaitable[object], last: str) -> list[str]:
    """The beans whose runs start while `action` and what follows run, until `last` ends."""
    started: list[str] = []
    async with rt.daemon.coordinator.events.subscribe() as events, asyncio.timeout(BOUND):
        await action
        while not _done(rt, last)():
            event, _ = await events.next()
            if event.kind == "run.started":
                started.append(event.bean)
    return started


class TestScheduledRuns:
    def test_a_due_slot_starts_a_scheduled_run(self, short_tmp: Path) -> None:
        """At 00:05 the job runs with trigger schedule and its slot time; status shows next."""
        clock = ManualClock(START)

        async def main() -> None:
            async with running_daemon(
                short_tmp / "state", [replace(QUICK, default_at="00:05")], clock=clock
            ) as rt:
                status = await rt.stub.GetStatus(pb.GetStatusRequest())
                assert status.beans[0].next_run_at.ToDatetime(tzinfo=UTC) == START + timedelta(
                    minutes=5
                )
                await clock.until_parked()
                clock.advance(timedelta(minutes=5))
                await _until(_done(rt, "QuickJob"), rt)
                (record,) = rt.daemon.ledger.history("QuickJob")
                assert record.trigger is Trigger.SCHEDULE
                assert record.slot_time == START + timedelta(minutes=5)
                assert record.outcome is RunOutcome.SUCCESS
                assert record.actor == "scheduler"

        _run(main())

    def test_a_fire_while_running_is_recorded_skipped(self, short_tmp: Path) -> None:
        """The slot comes while a manual run is under way: skipped_already_running."""
        clock = ManualClock(START)
        gates = Gates()
        job = replace(gated_job(gates), default_at="00:05")

        async def main() -> None:
            async with running_daemon(short_tmp / "state", [job], clock=clock) as rt:
                reply = await rt.stub.Invoke(pb.InvokeRequest(bean="GatedJob", operation="run"))
                await clock.until_parked()
                clock.advance(timedelta(minutes=5))
                await _until(lambda: len(rt.daemon.ledger.history("GatedJob")) == 2, rt)
                skipped = rt.daemon.ledger.history("GatedJob")[0]
                assert skipped.outcome is RunOutcome.SKIPPED_ALREADY_RUNNING
                assert reply.run.run_id in skipped.error_message
                gates.release.set()
                await _finished(rt, reply.run.run_id)

        _run(main())

    def test_a_failed_prerequisite_skips_the_scheduled_dependant(self, short_tmp: Path) -> None:
        """Index's prerequisite failed tonight: Index's slot is recorded as skipped."""
        clock = ManualClock(START)
        gates = Gates()
        jobs = chain_jobs(gates)
        jobs[0] = replace(jobs[0], body=FAILING.body)  # Owner fails

        async def main() -> None:
            async with running_daemon(short_tmp / "state", jobs, clock=clock) as rt:
                await clock.until_parked()
                clock.advance(timedelta(minutes=5))
                await _until(_done(rt, "Owner"), rt)
                await clock.until_parked()
                clock.advance(timedelta(hours=1, minutes=24))
                await _until(_done(rt, "Index"), rt)
                (index,) = rt.daemon.ledger.history("Index")
                assert index.outcome is RunOutcome.SKIPPED_PREREQUISITE_FAILED
                assert "Owner ended failed" in index.error_message

        _run(main())


class TestChains:
    def test_with_dependants_runs_the_graph_below_the_job(self, short_tmp: Path) -> None:
        """Emp --with-dependants runs Emp, then Train, then Index, each as a new run."""

        async def main() -> None:
            async with running_daemon(short_tmp / "state", chain_jobs(Gates())) as rt:
                call = rt.stub.Invoke(
                    pb.InvokeRequest(bean="Emp", operation="run", with_dependants=True)
                )
                order = await _started_order(rt, call, "Index")
                assert order == ["Emp", "Train", "Index"]
                reply = await call
                assert list(reply.chain) == ["Train", "Index"]
                runs = {r.bean: r for r in rt.daemon.ledger.history(limit=10)}
                assert runs["Emp"].trigger is Trigger.MANUAL
                assert runs["Train"].trigger is runs["Index"].trigger is Trigger.DEPENDENCY
                assert all(r.outcome is RunOutcome.SUCCESS for r in runs.values())

        _run(main())

    def test_a_failure_skips_its_dependants_in_the_chain(self, short_tmp: Path) -> None:
        """Emp fails: Train and Index are recorded skipped_prerequisite_failed."""
        jobs = chain_jobs(Gates())
        jobs[1] = replace(jobs[1], body=FAILING.body)

        async def main() -> None:
            async with running_daemon(short_tmp / "state", jobs) as rt:
                await rt.stub.Invoke(
                    pb.InvokeRequest(bean="Emp", operation="run", with_dependants=True)
                )
                await _until(_done(rt, "Index"), rt)
                outcomes = {r.bean: r.outcome for r in rt.daemon.ledger.history(limit=10)}
                assert outcomes == {
                    "Emp": RunOutcome.FAILED,
                    "Train": RunOutcome.SKIPPED_PREREQUISITE_FAILED,
                    "Index": RunOutcome.SKIPPED_PREREQUISITE_FAILED,
                }

        _run(main())

    def test_run_all_follows_dependencies(self, short_tmp: Path) -> None:
        """RunAll runs every job once, prerequisites first."""

        async def main() -> None:
            async with running_daemon(short_tmp / "state", chain_jobs(Gates())) as rt:
                reply = await rt.stub.RunAll(pb.RunAllRequest())
                assert list(reply.jobs) == ["Owner", "Emp", "Train", "Index"]
                await _until(lambda: bool(rt.daemon.ledger.history("Index")), rt)
                history = await rt.stub.History(pb.HistoryRequest(limit=10))
                assert [r.bean for r in reversed(history.runs)] == [
                    "Owner",
                    "Emp",
                    "Train",
                    "Index",
                ]

        _run(main())

    def test_with_dependants_on_a_non_trigger_is_invalid(self, short_tmp: Path) -> None:
        """--with-dependants applies to operations that start runs only."""

        async def main() -> None:
            async with running_daemon(short_tmp / "state", chain_jobs(Gates())) as rt:
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await rt.stub.Invoke(
                        pb.InvokeRequest(
                            bean="Emp", operation="isCurrentlyRunning", with_dependants=True
                        )
                    )
                assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        _run(main())


class TestPauses:
    def test_a_pause_survives_a_restart(self, short_tmp: Path) -> None:
        """Pause is persisted: a restarted daemon still shows the bean paused, no next run."""
        jobs = [replace(QUICK, default_at="00:05")]

        async def main() -> None:
            async with running_daemon(short_tmp / "state", jobs) as rt:
                reply = await rt.stub.Pause(pb.PauseRequest(bean="QuickJob"))
                assert list(reply.holds) == ["QuickJob"]
            async with running_daemon(short_tmp / "state", jobs) as rt:
                status = await rt.stub.GetStatus(pb.GetStatusRequest())
                assert status.beans[0].state == pb.BEAN_STATE_PAUSED
                assert not status.beans[0].HasField("next_run_at")
                fires = await rt.stub.ListFires(pb.ListFiresRequest(days=2))
                assert list(fires.fires) == []
                await rt.stub.Resume(pb.PauseRequest(bean="QuickJob"))
                fires = await rt.stub.ListFires(pb.ListFiresRequest(days=2))
                assert [f.bean for f in fires.fires] == ["QuickJob", "QuickJob"]

        _run(main())

    def test_pausing_an_unknown_bean_is_not_found(self, short_tmp: Path) -> None:
        """Pause names an unknown bean with NOT_FOUND; bad ListFires days is invalid."""

        async def main() -> None:
            async with running_daemon(short_tmp / "state", [QUICK]) as rt:
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await rt.stub.Pause(pb.PauseRequest(bean="Quick"))
                assert info.value.code() == grpc.StatusCode.NOT_FOUND
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await rt.stub.ListFires(pb.ListFiresRequest(days=-1))
                assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        _run(main())


class TestLimits:
    def test_a_timed_out_run_is_timed_out(self, short_tmp: Path) -> None:
        """A run past its timeout is cancelled and recorded timed_out."""
        gates = Gates()

        async def main() -> None:
            async with running_daemon(
                short_tmp / "state",
                [gated_job(gates)],
                job_tables={"GatedJob": JobConfig(timeout=0.2)},
            ) as rt:
                reply = await rt.stub.Invoke(pb.InvokeRequest(bean="GatedJob", operation="run"))
                final = await _finished(rt, reply.run.run_id)
                assert final.outcome == pb.RUN_OUTCOME_TIMED_OUT
                assert final.error_type == "TimedOut"

        _run(main())

    def test_a_child_ignoring_cancel_is_killed_and_recorded_cancelled(
        self, short_tmp: Path
    ) -> None:
        """In a child process, a body that ignores cancellation is killed after cancel_grace."""

        async def main() -> None:
            async with running_daemon(
                short_tmp / "state", [IGNORING], execution="process", cancel_grace=0.3
            ) as rt:
                reply = await rt.stub.Invoke(pb.InvokeRequest(bean="IgnoringJob", operation="run"))
                async with asyncio.timeout(BOUND):
                    async for info in rt.stub.WatchRun(pb.WatchRunRequest(run_id=reply.run.run_id)):
                        if info.progress_total == 1:
                            break  # the child is up and in the body
                cancel = await rt.stub.Cancel(pb.CancelRequest(bean="IgnoringJob"))
                assert cancel.cancelling
                final = await _finished(rt, reply.run.run_id)
                assert final.outcome == pb.RUN_OUTCOME_CANCELLED
                assert final.error_type == "Killed"
                idle = await rt.stub.Cancel(pb.CancelRequest(bean="IgnoringJob"))
                assert not idle.cancelling

        _run(main())

    def test_a_disabled_job_refuses_runs(self, short_tmp: Path) -> None:
        """enabled = false: the bean is disabled and a trigger is FAILED_PRECONDITION."""

        async def main() -> None:
            async with running_daemon(
                short_tmp / "state", [QUICK], job_tables={"QuickJob": JobConfig(enabled=False)}
            ) as rt:
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await rt.stub.Invoke(pb.InvokeRequest(bean="QuickJob", operation="run"))
                assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
                assert "jobs.QuickJob.enabled = false" in (info.value.details() or "")
                status = await rt.stub.GetStatus(pb.GetStatusRequest())
                assert status.beans[0].state == pb.BEAN_STATE_DISABLED

        _run(main())


def test_catch_up_at_start_runs_tonights_jobs_in_order(short_tmp: Path) -> None:
    """Started at 03:00 UTC with an empty ledger: every due job runs, in timetable order."""
    clock = ManualClock(START + timedelta(hours=3))

    async def main() -> None:
        async with running_daemon(
            short_tmp / "state",
            chain_jobs(Gates()),
            clock=clock,
            scheduler=SchedulerConfig(catch_up=True),
        ) as rt:
            await _until(_done(rt, "Index"), rt)
            runs = rt.daemon.ledger.history(limit=10)
            assert {r.bean for r in runs} == {"Owner", "Emp", "Train", "Index"}
            assert {r.trigger for r in runs} == {Trigger.STARTUP}
            assert all(r.outcome is RunOutcome.SUCCESS for r in runs)
            # One after another: each started no earlier than the previous one ended.
            by_bean = {r.bean: r for r in runs}
            chain = [by_bean[n] for n in ("Owner", "Emp", "Train", "Index")]
            for before, after in itertools.pairwise(chain):
                assert before.ended_at is not None and after.started_at >= before.ended_at

    _run(main())
