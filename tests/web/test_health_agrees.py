"""Failing / stuck / needs-re-run is one verdict: after a success, a failure, a cancel, a timeout
and a run stuck cancelling, `syncctl status`, /metrics, the console's JSON and the page's row
say the same of every job (issue 12: a cancel used to exit 0 with `syncd_job_failing` 1)."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from syncctl import cli
from syncctl._exit import ExitCode
from syncd.app.daemon import Daemon
from syncd.config import JobConfig
from syncd.job import JobSpec
from syncd.service import StartRequest
from syncd.values import Value
from syncd_api.v1 import management_pb2 as pb
from tests.clocks import ManualClock
from tests.harness import running_daemon
from tests.packs.sample import FAILING, QUICK, Gates, gated_job, stubborn_job
from tests.security.support import VIEWER, token_auth
from tests.waiting import within
from tests.web._support import console_session, console_url, login_link, run
from tests.web.test_browser import CHROMIUM_ARGS, WAIT_MS, _chromium

CANCEL_GATES, TIMEOUT_GATES, STUCK_GATES = Gates(), Gates(), Gates()
CANCELLED = dataclasses.replace(gated_job(CANCEL_GATES, "CancelledJob"), job_key="cancelledJob")
TIMED_OUT = dataclasses.replace(gated_job(TIMEOUT_GATES, "TimedOutJob"), job_key="timedOutJob")
STUCK = stubborn_job(STUCK_GATES)
TABLES = {
    "TimedOutJob": JobConfig(timeout=0.2),
    # Long enough that the stubborn run is still cancelling whenever the test looks.
    "StubbornJob": JobConfig(cancel_grace=120.0),
}

# job -> (health, reason, needs re-run); the stuck reason names the run, filled in below.
EXPECTED: dict[str, tuple[str, str | None, bool]] = {
    "QuickJob": ("ok", None, False),
    "FailingJob": ("failing", "last run failed: ValueError: bad input row 7", True),
    "CancelledJob": ("ok", None, True),  # an operator's choice; its data is stale, though
    "TimedOutJob": (
        "failing",
        "last run timed_out: TimedOut: the run exceeded its timeout of 0.2s",
        True,
    ),
    "StubbornJob": ("stuck", "run {run_id} is cancelling", False),
}


def syncctl(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.run(list(argv), stdout=out, stderr=err, stdin=io.StringIO(), environ={}, tty=False)
    return code, out.getvalue(), err.getvalue()


async def start(daemon: Daemon, spec: JobSpec) -> str:
    started = await daemon.service.start(StartRequest(bean=spec.name, actor="test", arguments={}))
    return started.run.run_id


async def finish(daemon: Daemon, spec: JobSpec, **arguments: Value) -> None:
    request = StartRequest(bean=spec.name, actor="test", arguments=arguments)
    started = await daemon.service.start(request)
    await within(started.run.finished.wait(), f"{spec.name}'s run to end")


async def metrics(http: aiohttp.ClientSession, daemon: Daemon) -> dict[tuple[str, str], float]:
    viewer = {"Authorization": f"Bearer {VIEWER}"}  # as Prometheus scrapes it
    async with http.get(f"{daemon.listening.http}/metrics", headers=viewer) as response:
        assert response.status == 200
        text = await response.text()
    return {
        (s.name, s.labels["job"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name in ("syncd_job_failing", "syncd_job_stuck", "syncd_job_needs_rerun")
    }


def test_status_metrics_json_and_page_agree(short_tmp: Path) -> None:
    chromium = _chromium()
    from playwright.async_api import async_playwright, expect

    jobs = [QUICK, FAILING, CANCELLED, TIMED_OUT, STUCK]

    async def main() -> None:
        async with (
            running_daemon(
                short_tmp / "s",
                jobs,
                job_tables=TABLES,
                http_address="127.0.0.1:0",
                auth=token_auth(),
            ) as rt,
            console_session(rt.daemon) as http,
            async_playwright() as pw,
        ):
            daemon, address = rt.daemon, rt.address
            try:
                await finish(daemon, QUICK)
                await finish(daemon, FAILING, row=7)
                await finish(daemon, TIMED_OUT)  # its body waits; the 0.2s timeout ends it

                await start(daemon, CANCELLED)
                await asyncio.to_thread(CANCEL_GATES.started.wait, 10)
                code, _, err = await asyncio.to_thread(
                    syncctl, "cancel", "CancelledJob", "--wait", "--address", address
                )
                assert code in (ExitCode.OK, ExitCode.FAILED), err

                stuck_id = await start(daemon, STUCK)
                await asyncio.to_thread(STUCK_GATES.started.wait, 10)
                code, _, err = await asyncio.to_thread(
                    syncctl, "cancel", "StubbornJob", "--address", address
                )
                assert code == 0, err
                expected = dict(EXPECTED)
                health, reason, rerun = expected["StubbornJob"]
                expected["StubbornJob"] = (health, (reason or "").format(run_id=stuck_id), rerun)

                # syncctl status: exit 8, one stderr line per problem, the verdict in --json.
                code, out, err = await asyncio.to_thread(
                    syncctl, "status", "--json", "--address", address
                )
                assert code == ExitCode.BEAN_FAILING
                beans = {b["name"]: b for b in json.loads(out)["beans"]}
                assert {
                    name: (b["health"], b["health_reason"], b["needs_rerun"])
                    for name, b in beans.items()
                } == expected
                for name, (health, reason, _) in expected.items():
                    problem = beans[name]["problem"]
                    if health == "ok":
                        assert problem is None
                        assert f"syncctl: {name} is" not in err
                    else:
                        assert problem == {"kind": health, "detail": reason}
                        assert f"syncctl: {name} is {health}: {reason}\n" in err

                # /metrics: the same verdict, one gauge per kind.
                samples = await metrics(http, daemon)
                for name, (health, _, rerun) in expected.items():
                    assert samples[("syncd_job_failing", name)] == (health == "failing"), name
                    assert samples[("syncd_job_stuck", name)] == (health == "stuck"), name
                    assert samples[("syncd_job_needs_rerun", name)] == rerun, name

                # The console's JSON.
                async with http.get(console_url(daemon, "api/v1/jobs")) as response:
                    views = {j["name"]: j for j in (await response.json())["jobs"]}
                assert {
                    name: (v["health"], v["healthReason"], v["needsRerun"])
                    for name, v in views.items()
                } == expected

                # The page's rows render that verdict and nothing else.
                browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
                try:
                    page = await browser.new_page(viewport={"width": 1280, "height": 900})
                    await page.goto(login_link(daemon))  # a second login: the browser's own
                    for name, (health, reason, _) in expected.items():
                        badge = page.locator(f'tr[data-job="{name}"] [data-field="health"]')
                        if health == "ok":
                            await expect(badge).to_be_hidden(timeout=WAIT_MS)
                        else:
                            await expect(badge).to_be_visible(timeout=WAIT_MS)
                            await expect(badge).to_have_text(health)
                            await expect(badge).to_have_attribute("title", reason or "")
                    # Re-run advice follows needs-re-run: shown after a cancel, not after a success.
                    for name, advised in (("CancelledJob", True), ("QuickJob", False)):
                        await page.locator(f'tr[data-job="{name}"] [data-action="select"]').click()
                        rerun_box = page.locator("#rerun")
                        if advised:
                            await expect(rerun_box).to_contain_text(
                                "ended cancelled", timeout=WAIT_MS
                            )
                        else:
                            await expect(rerun_box).to_be_hidden(timeout=WAIT_MS)
                finally:
                    await browser.close()
            finally:
                STUCK_GATES.release.set()
                CANCEL_GATES.release.set()
                TIMEOUT_GATES.release.set()

    run(main(), bound=90)


@pytest.mark.parametrize("seconds", [-5, 0])
def test_a_bad_stuck_after_is_invalid_argument(short_tmp: Path, seconds: int) -> None:
    """GetStatus with a threshold that is not positive: INVALID_ARGUMENT, not INTERNAL."""
    import grpc

    async def main() -> None:
        async with running_daemon(short_tmp / "s", [QUICK]) as rt:
            request = pb.GetStatusRequest()
            request.stuck_after.FromSeconds(seconds)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await rt.stub.GetStatus(request)
            assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert "stuck_after must be a positive duration" in (caught.value.details() or "")

    run(main())


def test_without_stuck_after_a_run_past_its_timeout_and_grace_is_stuck(short_tmp: Path) -> None:
    """The default threshold is the job's timeout plus its cancel grace: by then the daemon has
    ended the run itself, so one still under way is stuck. An explicit threshold wins."""
    gates = Gates()
    spec = gated_job(gates, "SlowJob")
    clock = ManualClock(datetime(2026, 3, 1, 1, 0, tzinfo=UTC))
    tables = {"SlowJob": JobConfig(timeout=3600.0, cancel_grace=60.0)}

    async def health(stub: Any, stuck_after: int | None = None) -> tuple[int, str]:
        request = pb.GetStatusRequest()
        if stuck_after is not None:
            request.stuck_after.FromSeconds(stuck_after)
        (bean,) = (await stub.GetStatus(request)).beans
        return bean.health, bean.health_reason

    async def main() -> None:
        async with running_daemon(short_tmp / "s", [spec], clock=clock, job_tables=tables) as rt:
            try:
                run_id = await start(rt.daemon, spec)
                await asyncio.to_thread(gates.started.wait, 10)
                clock.advance(timedelta(seconds=3660))  # exactly timeout + grace: not yet
                assert await health(rt.stub) == (pb.HEALTH_OK, "")
                clock.advance(timedelta(seconds=1))
                assert (await health(rt.stub))[0] == pb.HEALTH_STUCK
                clock.advance(timedelta(seconds=59))
                assert await health(rt.stub) == (
                    pb.HEALTH_STUCK,
                    f"run {run_id} has been running for 1h02m (over 1h01m)",
                )
                assert await health(rt.stub, stuck_after=7200) == (pb.HEALTH_OK, "")
            finally:
                gates.release.set()

    run(main())
