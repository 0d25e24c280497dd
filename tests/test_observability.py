"""TailLogs, WatchEvents, the metrics and health endpoints, and webhook notifications,
against a real daemon in process."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Awaitable, Sequence
from pathlib import Path

import aiohttp
import grpc
import pytest
import structlog
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from syncd.config import NotifyConfig
from syncd.observability.loghub import LogHub
from syncd.observability.logs import configure_logging
from syncd_api.v1 import management_pb2 as pb
from tests.harness import BOUND, Running, running_daemon
from tests.packs.sample import FAILING, QUICK, Gates, gated_job
from tests.security.support import VIEWER, token_auth
from tests.waiting import following


def _run(coro: Awaitable[None]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(60):
            await coro

    asyncio.run(bounded())


async def _finish(rt: Running, bean: str, *args: str) -> pb.RunInfo:
    reply = await rt.stub.Invoke(
        pb.InvokeRequest(
            bean=bean, operation="run", arguments=[pb.Value(string_value=a) for a in args]
        )
    )
    last = None
    async for info in rt.stub.WatchRun(pb.WatchRunRequest(run_id=reply.run.run_id)):
        last = info
    assert last is not None
    return last


class TestTailLogs:
    def test_a_runs_lines_are_served_filtered(self, short_tmp: Path) -> None:
        """--run R gives that run's lines only, ending with its canonical run.finished."""
        hub = LogHub()
        configure_logging("info", stream=io.StringIO(), json_output=True, hub=hub, cache=False)

        async def main() -> None:
            async with running_daemon(short_tmp / "state", [QUICK, FAILING], log_hub=hub) as rt:
                quick = await _finish(rt, "QuickJob")
                await _finish(rt, "FailingJob")
                stream = rt.stub.TailLogs(pb.TailLogsRequest(lines=100, run_id=quick.run_id))
                events = [json.loads(line.json) async for batch in stream for line in batch.lines]
                assert {e["run_id"] for e in events} == {quick.run_id}
                assert events[0]["event"] == "run.started"
                assert events[-1]["event"] == "run.finished"
                errors = rt.stub.TailLogs(pb.TailLogsRequest(lines=100, level="warning"))
                levels = [json.loads(x.json)["level"] async for b in errors for x in b.lines]
                assert levels and "info" not in levels

        _run(main())

    def test_follow_gets_new_lines_across_a_file_rotation(self, short_tmp: Path) -> None:
        """A follower sees every line, in order, while the log file rotates underneath."""
        hub = LogHub()
        log_file = short_tmp / "logs" / "syncd.log"
        writer = configure_logging(
            "info",
            stream=io.StringIO(),
            json_output=True,
            hub=hub,
            file=log_file,
            max_bytes=2048,
            backups=2,
            cache=False,
        )
        assert writer is not None

        async def main() -> None:
            async with running_daemon(short_tmp / "state", [QUICK], log_hub=hub) as rt:
                stream = rt.stub.TailLogs(pb.TailLogsRequest(lines=0, follow=True))
                log = structlog.get_logger("test")
                received: list[int] = []

                async def read() -> None:
                    async for batch in stream:
                        for line in batch.lines:
                            event = json.loads(line.json)
                            if event["event"] == "test.line":
                                received.append(event["n"])
                                if event["n"] == 199:
                                    return

                reader = asyncio.create_task(read())
                await following(stream)
                for n in range(200):
                    log.info("test.line", n=n, pad="x" * 40)
                async with asyncio.timeout(BOUND):
                    await reader
                stream.cancel()
                assert received == list(range(200))
                # The tail gets each line before the log's own thread has written it.
                assert writer.wait_written(BOUND)
                assert log_file.with_name("syncd.log.1").exists()

        try:
            _run(main())
        finally:
            writer.close()

    def test_a_bad_level_is_invalid(self, short_tmp: Path) -> None:
        """--level must be a known level; an unknown job is NOT_FOUND."""

        async def main() -> None:
            async with running_daemon(short_tmp / "state", [QUICK]) as rt:
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    async for _ in rt.stub.TailLogs(pb.TailLogsRequest(level="loud")):
                        pass
                assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    async for _ in rt.stub.TailLogs(pb.TailLogsRequest(job="Nope")):
                        pass
                assert info.value.code() == grpc.StatusCode.NOT_FOUND

        _run(main())


def test_watch_events_streams_a_runs_life(short_tmp: Path) -> None:
    """WatchEvents sends run.started, run.progress and run.finished for a run."""
    gates = Gates()

    async def main() -> None:
        async with running_daemon(short_tmp / "state", [gated_job(gates)]) as rt:
            stream = rt.stub.WatchEvents(pb.WatchEventsRequest(bean="GatedJob"))
            kinds: list[str] = []

            async def read() -> None:
                async for event in stream:
                    kinds.append(event.kind)
                    if event.kind == "run.finished":
                        assert event.outcome == "success"
                        return

            reader = asyncio.create_task(read())
            await following(stream)
            await rt.stub.Invoke(
                pb.InvokeRequest(
                    bean="GatedJob", operation="run", arguments=[pb.Value(string_value="3")]
                )
            )
            gates.release.set()
            async with asyncio.timeout(BOUND):
                await reader
            stream.cancel()
            assert kinds[0] == "run.started" and kinds[-1] == "run.finished"
            assert "run.progress" in kinds

    _run(main())


def test_metrics_are_scraped_after_a_real_run(short_tmp: Path) -> None:
    """/metrics parses as Prometheus text with the job's runs, rows and last success."""

    async def main() -> None:
        async with running_daemon(
            short_tmp / "state", [QUICK, FAILING], http_address="127.0.0.1:0", auth=token_auth()
        ) as rt:
            await _finish(rt, "QuickJob", "4")
            await _finish(rt, "FailingJob")
            async with aiohttp.ClientSession() as http:
                url = f"{rt.daemon.listening.http}/metrics"
                async with http.get(url) as response:
                    assert response.status == 401  # Prometheus brings a viewer's token
                viewer = {"Authorization": f"Bearer {VIEWER}"}
                async with http.get(url, headers=viewer) as response:
                    assert response.status == 200
                    text = await response.text()
                async with http.get(f"{rt.daemon.listening.http}/healthz") as response:
                    assert response.status == 200
            samples = {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
            }
            assert (
                samples[("syncd_job_runs_total", (("job", "QuickJob"), ("outcome", "success")))]
                == 1
            )
            assert (
                samples[("syncd_job_runs_total", (("job", "FailingJob"), ("outcome", "failed")))]
                == 1
            )
            assert samples[("syncd_job_rows_read_total", (("job", "QuickJob"),))] == 4
            assert samples[("syncd_job_failing", (("job", "FailingJob"),))] == 1
            assert samples[("syncd_job_running", (("job", "QuickJob"),))] == 0
            assert ("syncd_job_last_success_timestamp_seconds", (("job", "QuickJob"),)) in samples
            assert (
                "syncd_job_last_success_timestamp_seconds",
                (("job", "FailingJob"),),
            ) not in samples

    _run(main())


def test_health_is_503_while_draining(short_tmp: Path) -> None:
    """The HTTP health endpoint turns 503 when shutdown begins, for load balancers."""
    gates = Gates()

    async def main() -> None:
        async with running_daemon(
            short_tmp / "state", [gated_job(gates)], http_address="127.0.0.1:0"
        ) as rt:
            await rt.stub.Invoke(pb.InvokeRequest(bean="GatedJob", operation="run"))
            async with rt.daemon.coordinator.events.subscribe() as events:
                rt.daemon.request_stop()
                async with asyncio.timeout(BOUND):
                    while (await events.next())[0].kind != "daemon.draining":
                        pass
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"{rt.daemon.listening.http}/healthz") as response,
            ):
                assert response.status == 503
                assert (await response.json()) == {"status": "draining"}
            gates.release.set()

    _run(main())


class _Receiver:
    """A real local HTTP server that records webhook deliveries; it answers each post with the
    next of `statuses` (then `status` for good)."""

    def __init__(self, status: int = 200, statuses: Sequence[int] = ()) -> None:
        self.status = status
        self.statuses = list(statuses)
        self.bodies: list[dict[str, object]] = []
        self.answered: list[int] = []
        self.arrived = asyncio.Event()

    async def __aenter__(self) -> str:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}/hook"

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()

    async def _hook(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        status = self.statuses.pop(0) if self.statuses else self.status
        self.answered.append(status)
        self.arrived.set()
        return web.Response(status=status)


def test_a_failure_is_delivered_to_the_webhook(short_tmp: Path) -> None:
    """A failed run posts a Slack-compatible message to the configured webhook."""

    async def main() -> None:
        receiver = _Receiver()
        async with receiver as url:
            notify = NotifyConfig(webhook_url=url, on=("failed",), mention_on_failure=True)
            async with running_daemon(short_tmp / "state", [QUICK, FAILING], notify=notify) as rt:
                await _finish(rt, "QuickJob")
                await _finish(rt, "FailingJob")
                async with asyncio.timeout(BOUND):
                    await receiver.arrived.wait()
        (body,) = receiver.bodies
        text = str(body["text"])
        assert text.startswith("<!channel> Sync [FailingJob] failed: ")
        assert "bad input row 7" in text

    _run(main())


def test_a_failing_webhook_never_affects_jobs_and_is_logged_once(short_tmp: Path) -> None:
    """With the receiver answering 500, runs still succeed; the failure burst logs once."""
    from structlog.testing import capture_logs

    async def main() -> None:
        receiver = _Receiver(status=500)
        async with receiver as url:
            notify = NotifyConfig(webhook_url=url, on=("started", "success"), attempts=1)
            with capture_logs() as events:
                async with running_daemon(short_tmp / "state", [QUICK], notify=notify) as rt:
                    for _ in range(3):
                        assert (await _finish(rt, "QuickJob")).outcome == pb.RUN_OUTCOME_SUCCESS
            assert len(receiver.bodies) == 6
            assert [e["event"] for e in events].count("notify.failed") == 1

    _run(main())


def test_a_webhook_that_is_down_or_throttled_gets_the_message_on_a_retry(
    short_tmp: Path,
) -> None:
    """503 and 429 are retried with backoff: the message arrives once the webhook recovers, the
    failure is logged once and the recovery once."""
    from structlog.testing import capture_logs

    async def main() -> None:
        receiver = _Receiver(statuses=[503, 429])
        async with receiver as url:
            notify = NotifyConfig(webhook_url=url, on=("success",), retry_delay=0.01)
            with capture_logs() as events:
                async with running_daemon(short_tmp / "state", [QUICK], notify=notify) as rt:
                    await _finish(rt, "QuickJob")
                    async with asyncio.timeout(BOUND):
                        while True:
                            receiver.arrived.clear()  # before the check: no post is missed
                            if receiver.answered == [503, 429, 200]:
                                break
                            await receiver.arrived.wait()
        assert len({str(body["text"]) for body in receiver.bodies}) == 1
        names = [e["event"] for e in events]
        assert "notify.failed" not in names  # retries that end well are not a failure

    _run(main())


def test_a_webhook_that_refuses_the_message_is_not_retried(short_tmp: Path) -> None:
    """A 404 (wrong or revoked hook) fails the same way every time: one post, logged once."""
    from structlog.testing import capture_logs

    async def main() -> None:
        receiver = _Receiver(status=404)
        async with receiver as url:
            notify = NotifyConfig(webhook_url=url, on=("success",), retry_delay=0.01)
            with capture_logs() as events:
                async with running_daemon(short_tmp / "state", [QUICK], notify=notify) as rt:
                    await _finish(rt, "QuickJob")
                    async with asyncio.timeout(BOUND):
                        await receiver.arrived.wait()
            # The daemon has stopped, so its notifier has finished with the message.
            assert receiver.answered == [404]
            assert [e["event"] for e in events].count("notify.failed") == 1

    _run(main())


def test_shutdown_gives_up_a_message_waiting_to_be_retried(short_tmp: Path) -> None:
    """A webhook that keeps failing never holds the daemon's shutdown beyond one post's time."""
    from structlog.testing import capture_logs

    async def main() -> None:
        receiver = _Receiver(status=503)
        async with receiver as url:
            notify = NotifyConfig(
                webhook_url=url, on=("success",), retry_delay=3600.0, attempts=5, timeout=1.0
            )
            with capture_logs() as events:
                async with running_daemon(short_tmp / "state", [QUICK], notify=notify) as rt:
                    await _finish(rt, "QuickJob")
                    async with asyncio.timeout(BOUND):
                        await receiver.arrived.wait()
            assert receiver.answered == [503]
            assert "notify.abandoned" in [e["event"] for e in events]

    _run(main())


def test_streams_announce_that_they_are_attached(short_tmp: Path) -> None:
    """WatchEvents sends initial metadata once subscribed: an event after it is never lost."""

    async def main() -> None:
        async with running_daemon(short_tmp / "state", [QUICK]) as rt:
            stream = rt.stub.WatchEvents(pb.WatchEventsRequest())
            await following(stream)
            reply = await rt.stub.Invoke(pb.InvokeRequest(bean="QuickJob", operation="run"))
            async with asyncio.timeout(BOUND):
                async for event in stream:
                    if event.kind == "run.finished":
                        assert event.run_id == reply.run.run_id
                        assert (event.progress_done, event.progress_total) == (3, 3)
                        break
            stream.cancel()

    _run(main())
