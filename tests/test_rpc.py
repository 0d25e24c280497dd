"""The Management service, in process: a real grpc.aio server on a temporary unix socket."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from syncd.job import JobSpec
from syncd_api.v1 import management_pb2 as pb
from tests.harness import BOUND, Running, running_daemon
from tests.packs.sample import FAILING, QUICK, Gates, gated_job, stubborn_job


def _run(coro: Awaitable[None]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(60):
            await coro

    asyncio.run(bounded())


def _text(*values: str) -> list[pb.Value]:
    return [pb.Value(string_value=v) for v in values]


async def _wait_finished(rt: Running, run_id: str) -> pb.RunInfo:
    last = None
    async with asyncio.timeout(BOUND):
        async for info in rt.stub.WatchRun(pb.WatchRunRequest(run_id=run_id)):
            last = info
    assert last is not None
    return last


def _metadata(err: grpc.aio.AioRpcError) -> list[tuple[str, str | bytes]]:
    pairs: list[tuple[str, str | bytes]] = list(err.trailing_metadata() or ())  # type: ignore[arg-type]
    return pairs


async def _error(call: Awaitable[object]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


def _with_daemon(
    short_tmp: Path,
    jobs: list[JobSpec],
    scenario: Callable[[Running], Awaitable[None]],
) -> None:
    async def main() -> None:
        async with running_daemon(short_tmp / "state", jobs) as rt:
            await scenario(rt)

    _run(main())


class TestDescribing:
    def test_list_beans_gives_jmx_names(self, short_tmp: Path) -> None:
        """Every bean is listed with its sync.mbean object name; the daemon's own bean too."""

        async def scenario(rt: Running) -> None:
            reply = await rt.stub.ListBeans(pb.ListBeansRequest())
            names = {b.object_name for b in reply.beans}
            assert names == {"sync.mbean:name=Daemon", "sync.mbean:name=QuickJob"}

        _with_daemon(short_tmp, [QUICK], scenario)

    def test_describe_shows_operations_like_mbeaninfo(self, short_tmp: Path) -> None:
        """A job bean has its trigger, run, isCurrentlyRunning, elapsedTime and cancel."""

        async def scenario(rt: Running) -> None:
            info = await rt.stub.DescribeBean(pb.DescribeBeanRequest(bean="QuickJob"))
            ops = {o.name: o for o in info.operations}
            assert list(ops) == ["quickJob", "run", "isCurrentlyRunning", "elapsedTime", "cancel"]
            assert ops["quickJob"].impact == pb.IMPACT_ACTION
            assert ops["quickJob"].return_type == pb.VALUE_TYPE_RUN
            assert ops["run"].alias_of == "quickJob"
            assert ops["isCurrentlyRunning"].impact == pb.IMPACT_INFO
            assert ops["isCurrentlyRunning"].return_type == pb.VALUE_TYPE_BOOL
            assert [p.name for p in ops["quickJob"].parameters] == ["rows"]
            assert ops["quickJob"].parameters[0].type == pb.VALUE_TYPE_INT
            attrs = [a.name for a in info.attributes]
            for wanted in ("State", "CurrentRunId", "StartedAt", "Elapsed", "LastOutcome"):
                assert wanted in attrs
            assert "LastSuccessAt" in attrs and "NextRunAt" in attrs

        _with_daemon(short_tmp, [QUICK], scenario)

    def test_full_and_short_names_are_both_accepted(self, short_tmp: Path) -> None:
        """DescribeBean answers for sync.mbean:name=X and for X."""

        async def scenario(rt: Running) -> None:
            a = await rt.stub.DescribeBean(pb.DescribeBeanRequest(bean="QuickJob"))
            b = await rt.stub.DescribeBean(pb.DescribeBeanRequest(bean="sync.mbean:name=QuickJob"))
            assert a == b

        _with_daemon(short_tmp, [QUICK], scenario)


class TestBadInput:
    def test_unknown_bean_is_not_found_with_suggestions(self, short_tmp: Path) -> None:
        """Every RPC naming an unknown bean answers NOT_FOUND and the closest names."""

        async def scenario(rt: Running) -> None:
            for call in (
                rt.stub.DescribeBean(pb.DescribeBeanRequest(bean="QuikJob")),
                rt.stub.Invoke(pb.InvokeRequest(bean="QuikJob", operation="run")),
                rt.stub.GetAttributes(pb.GetAttributesRequest(bean="QuikJob")),
            ):
                err = await _error(call)
                assert err.code() == grpc.StatusCode.NOT_FOUND
                assert "did you mean QuickJob" in (err.details() or "")

        _with_daemon(short_tmp, [QUICK], scenario)

    def test_unknown_operation_and_attribute_are_not_found(self, short_tmp: Path) -> None:
        """An operation or attribute the bean lacks is NOT_FOUND, naming the nearest."""

        async def scenario(rt: Running) -> None:
            err = await _error(rt.stub.Invoke(pb.InvokeRequest(bean="QuickJob", operation="qick")))
            assert err.code() == grpc.StatusCode.NOT_FOUND
            assert "quickJob" in (err.details() or "")
            err = await _error(
                rt.stub.GetAttributes(pb.GetAttributesRequest(bean="QuickJob", names=["Stat"]))
            )
            assert err.code() == grpc.StatusCode.NOT_FOUND
            assert "did you mean State" in (err.details() or "")

        _with_daemon(short_tmp, [QUICK], scenario)

    def test_wrong_arguments_are_invalid_and_name_the_parameter(self, short_tmp: Path) -> None:
        """Wrong count or type is INVALID_ARGUMENT naming the parameter; nothing starts."""

        async def scenario(rt: Running) -> None:
            err = await _error(
                rt.stub.Invoke(
                    pb.InvokeRequest(bean="QuickJob", operation="run", arguments=_text("many"))
                )
            )
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "'rows'" in (err.details() or "")
            assert ("syncd-parameter", "rows") in _metadata(err)
            err = await _error(
                rt.stub.Invoke(
                    pb.InvokeRequest(bean="QuickJob", operation="run", arguments=_text("1", "2"))
                )
            )
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "takes 1 argument(s) (rows), got 2" in (err.details() or "")
            err = await _error(
                rt.stub.Invoke(
                    pb.InvokeRequest(bean="QuickJob", operation="run", arguments=_text("-4"))
                )
            )
            assert "must not be negative" in (err.details() or "")
            assert rt.daemon.ledger.history() == []

        _with_daemon(short_tmp, [QUICK], scenario)

    def test_unknown_run_is_not_found(self, short_tmp: Path) -> None:
        """GetRun and WatchRun of an unknown id answer NOT_FOUND."""

        async def scenario(rt: Running) -> None:
            err = await _error(rt.stub.GetRun(pb.GetRunRequest(run_id="nope")))
            assert err.code() == grpc.StatusCode.NOT_FOUND
            with pytest.raises(grpc.aio.AioRpcError) as info:
                async for _ in rt.stub.WatchRun(pb.WatchRunRequest(run_id="nope")):
                    pass
            assert info.value.code() == grpc.StatusCode.NOT_FOUND

        _with_daemon(short_tmp, [QUICK], scenario)


class TestRuns:
    def test_a_trigger_returns_the_run_id_at_once(self, short_tmp: Path) -> None:
        """Invoke answers "Just started" with the run's id while the body is still running."""
        gates = Gates()

        async def scenario(rt: Running) -> None:
            reply = await rt.stub.Invoke(pb.InvokeRequest(bean="GatedJob", operation="gatedJob"))
            assert reply.message == "Just started"
            assert reply.result.string_value == reply.run.run_id
            assert reply.run.state == pb.RUN_STATE_RUNNING
            running = await rt.stub.Invoke(
                pb.InvokeRequest(bean="GatedJob", operation="isCurrentlyRunning")
            )
            assert running.result.bool_value is True
            gates.release.set()
            final = await _wait_finished(rt, reply.run.run_id)
            assert final.outcome == pb.RUN_OUTCOME_SUCCESS
            idle = await rt.stub.Invoke(
                pb.InvokeRequest(bean="GatedJob", operation="isCurrentlyRunning")
            )
            assert idle.result.bool_value is False
            elapsed = await rt.stub.Invoke(
                pb.InvokeRequest(bean="GatedJob", operation="elapsedTime")
            )
            assert elapsed.result.string_value == "0s"

        _with_daemon(short_tmp, [gated_job(gates)], scenario)

    def test_fifty_concurrent_triggers_start_exactly_one_run(self, short_tmp: Path) -> None:
        """One run wins; the other 49 get FAILED_PRECONDITION carrying its id."""
        gates = Gates()

        async def scenario(rt: Running) -> None:
            calls = [
                rt.stub.Invoke(pb.InvokeRequest(bean="GatedJob", operation="run"))
                for _ in range(50)
            ]
            results = await asyncio.gather(*calls, return_exceptions=True)
            started = [r for r in results if isinstance(r, pb.InvokeResponse)]
            refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
            assert len(started) == 1 and len(refused) == 49
            run_id = started[0].run.run_id
            for err in refused:
                assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
                assert run_id in (err.details() or "")
                assert ("syncd-run-id", run_id) in _metadata(err)
            assert len(rt.daemon.ledger.history()) == 1
            gates.release.set()
            await _wait_finished(rt, run_id)

        _with_daemon(short_tmp, [gated_job(gates)], scenario)

    def test_bodies_run_off_the_event_loop(self, short_tmp: Path) -> None:
        """The body runs on its own thread; the control plane answers while it works."""
        gates = Gates()

        async def scenario(rt: Running) -> None:
            reply = await rt.stub.Invoke(pb.InvokeRequest(bean="GatedJob", operation="run"))
            assert await asyncio.to_thread(gates.started.wait, BOUND)
            status = await rt.stub.GetStatus(pb.GetStatusRequest())
            assert status.beans[0].state == pb.BEAN_STATE_RUNNING
            assert gates.body_threads == ["job:GatedJob"]
            assert threading.current_thread().name != "job:GatedJob"
            gates.release.set()
            await _wait_finished(rt, reply.run.run_id)

        _with_daemon(short_tmp, [gated_job(gates)], scenario)

    def test_watch_follows_progress_to_the_end(self, short_tmp: Path) -> None:
        """WatchRun streams the run until it finishes, with its counters."""

        async def scenario(rt: Running) -> None:
            reply = await rt.stub.Invoke(
                pb.InvokeRequest(
                    bean="QuickJob",
                    operation="quickJob",
                    named_arguments={"rows": pb.Value(int_value=5)},
                )
            )
            final = await _wait_finished(rt, reply.run.run_id)
            assert final.state == pb.RUN_STATE_FINISHED
            assert final.outcome == pb.RUN_OUTCOME_SUCCESS
            assert (final.rows_read, final.progress_done, final.progress_total) == (5, 5, 5)
            assert final.arguments["rows"].int_value == 5
            again = await rt.stub.GetRun(pb.GetRunRequest(run_id=reply.run.run_id))
            assert again.outcome == pb.RUN_OUTCOME_SUCCESS and again.HasField("ended_at")

        _with_daemon(short_tmp, [QUICK], scenario)

    def test_a_failing_body_is_recorded_failed_with_its_error(self, short_tmp: Path) -> None:
        """An exception from the body fails the run; status shows the error, bean goes idle."""

        async def scenario(rt: Running) -> None:
            reply = await rt.stub.Invoke(
                pb.InvokeRequest(bean="FailingJob", operation="run", arguments=_text("9"))
            )
            final = await _wait_finished(rt, reply.run.run_id)
            assert final.outcome == pb.RUN_OUTCOME_FAILED
            assert (final.error_type, final.error_message) == ("ValueError", "bad input row 9")
            status = await rt.stub.GetStatus(pb.GetStatusRequest())
            (bean,) = status.beans
            assert bean.state == pb.BEAN_STATE_IDLE
            assert bean.last_outcome == pb.RUN_OUTCOME_FAILED
            assert bean.last_error == "ValueError: bad input row 9"
            assert not bean.HasField("last_success_at")

        _with_daemon(short_tmp, [FAILING], scenario)

    def test_cancel_stops_a_cooperative_body(self, short_tmp: Path) -> None:
        """The cancel operation stops a body at its next check; the run is cancelled."""
        gates = Gates()

        async def scenario(rt: Running) -> None:
            reply = await rt.stub.Invoke(pb.InvokeRequest(bean="GatedJob", operation="run"))
            assert await asyncio.to_thread(gates.started.wait, BOUND)
            cancel = await rt.stub.Invoke(pb.InvokeRequest(bean="GatedJob", operation="cancel"))
            assert cancel.result.bool_value is True
            final = await _wait_finished(rt, reply.run.run_id)
            assert final.outcome == pb.RUN_OUTCOME_CANCELLED
            idle = await rt.stub.Invoke(pb.InvokeRequest(bean="GatedJob", operation="cancel"))
            assert idle.result.bool_value is False and idle.message == "Not running"

        _with_daemon(short_tmp, [gated_job(gates)], scenario)

    def test_attributes_describe_the_current_and_last_run(self, short_tmp: Path) -> None:
        """GetAttributes gives state, run id and times of the current and last runs."""
        gates = Gates()

        async def scenario(rt: Running) -> None:
            reply = await rt.stub.Invoke(pb.InvokeRequest(bean="GatedJob", operation="run"))
            attrs = await rt.stub.GetAttributes(
                pb.GetAttributesRequest(bean="GatedJob", names=["state", "CurrentRunId"])
            )
            values = {a.name: a.value for a in attrs.attributes}
            assert values["State"].string_value == "running"
            assert values["CurrentRunId"].string_value == reply.run.run_id
            gates.release.set()
            await _wait_finished(rt, reply.run.run_id)
            attrs = await rt.stub.GetAttributes(pb.GetAttributesRequest(bean="GatedJob"))
            values = {a.name: a.value for a in attrs.attributes}
            assert values["State"].string_value == "idle"
            assert values["CurrentRunId"].HasField("null_value")
            assert values["LastOutcome"].string_value == "success"
            assert values["LastSuccessAt"].HasField("timestamp_value")

        _with_daemon(short_tmp, [gated_job(gates)], scenario)


class TestHealthAndShutdown:
    def test_health_serves_and_reflection_lists_services(self, short_tmp: Path) -> None:
        """grpc.health.v1 answers SERVING; reflection names the Management service."""

        async def scenario(rt: Running) -> None:
            health = health_pb2_grpc.HealthStub(rt.channel)
            for service in ("", "syncd.v1.Management"):
                reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
            refl = reflection_pb2_grpc.ServerReflectionStub(rt.channel)
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            names: set[str] = set()
            async for reply in refl.ServerReflectionInfo(iter([request])):
                names |= {s.name for s in reply.list_services_response.service}
            assert {"syncd.v1.Management", "grpc.health.v1.Health"} <= names

        _with_daemon(short_tmp, [QUICK], scenario)

    def test_draining_refuses_new_runs_and_reports_not_serving(self, short_tmp: Path) -> None:
        """During shutdown health is NOT_SERVING and a trigger is UNAVAILABLE; the running
        job finishes within the grace and is recorded."""
        gates = Gates()

        async def scenario(rt: Running) -> None:
            reply = await rt.stub.Invoke(pb.InvokeRequest(bean="GatedJob", operation="run"))
            rt.daemon.request_stop()
            health = health_pb2_grpc.HealthStub(rt.channel)
            async with asyncio.timeout(BOUND):
                async for change in health.Watch(health_pb2.HealthCheckRequest(service="")):
                    if change.status == health_pb2.HealthCheckResponse.NOT_SERVING:
                        break
            err = await _error(rt.stub.Invoke(pb.InvokeRequest(bean="QuickJob", operation="run")))
            assert err.code() == grpc.StatusCode.UNAVAILABLE
            status = await rt.stub.GetStatus(pb.GetStatusRequest())
            assert status.daemon.draining is True
            gates.release.set()
            final = await _wait_finished(rt, reply.run.run_id)
            assert final.outcome == pb.RUN_OUTCOME_SUCCESS

        _with_daemon(short_tmp, [gated_job(gates), QUICK], scenario)

    def test_a_job_ignoring_cancellation_is_recorded_cancelled(self, short_tmp: Path) -> None:
        """Past shutdown_grace and cancel_grace, a stubborn run is abandoned and recorded."""
        gates = Gates()

        async def main() -> None:
            rt_daemon = None
            async with running_daemon(
                short_tmp / "state", [stubborn_job(gates)], shutdown_grace=0.2, cancel_grace=0.2
            ) as rt:
                rt_daemon = rt.daemon
                reply = await rt.stub.Invoke(pb.InvokeRequest(bean="StubbornJob", operation="run"))
                assert await asyncio.to_thread(gates.started.wait, BOUND)
                run_id = reply.run.run_id
            assert rt_daemon is not None
            record = rt_daemon.ledger.get(run_id)
            assert record is not None and record.outcome is not None
            assert record.outcome.value == "cancelled"
            assert record.error_type == "ShutdownCancelled"
            gates.release.set()  # let the abandoned thread end

        _run(main())
