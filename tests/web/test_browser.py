"""The console in a real browser: Debian's chromium, headless, driven by Playwright, against a
daemon in this process. Screenshots go to tests/artifacts/ (desktop and phone width)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import NoReturn

import pytest

from syncd.config import HttpConfig
from syncd.job import JobSpec, RunContext
from syncd.service import StartRequest
from tests.packs.sample import ROWS, Gates, gated_job, quick_body
from tests.services import services_required
from tests.web._support import (
    VIEWER,
    console_daemon,
    console_url,
    logging_to_hub,
    login_link,
    run,
)

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"]
WAIT_MS = 10_000


def unreachable_source(ctx: RunContext) -> None:
    ctx.log.info("owner.connecting")
    raise ConnectionError("source database unreachable: connection refused")


# A failing job with a dependant, so the page has re-run advice to show.
OWNER = JobSpec(
    name="OwnerRebuildJob",
    trigger_operation="ownerRebuildJob",
    body=unreachable_source,
    description="Fails, so its dependants need a re-run.",
    job_key="ownerRebuildJob",
    default_at="00:05",
)
INDEX = JobSpec(
    name="PersonIndexJob",
    trigger_operation="personIndexJob",
    body=quick_body,
    description="Depends on OwnerRebuildJob.",
    parameters=(ROWS,),
    job_key="personIndexJob",
    default_at="01:30",
    default_after=("OwnerRebuildJob",),
)


def _unavailable(reason: str) -> NoReturn:
    if services_required():
        pytest.fail(f"SYNCD_REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


def _chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        _unavailable(
            "Debian's chromium is not on PATH (install it: bash scripts/install-browser.sh)"
        )
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        _unavailable("the playwright package is not installed")
    return path


def test_run_a_job_and_follow_it_live(short_tmp: Path) -> None:
    """Run → the row goes running and then success without a reload; the log pane shows the
    run's lines as they come; a failed job names the jobs to re-run after it."""
    chromium = _chromium()
    from playwright.async_api import async_playwright, expect

    hub = logging_to_hub()
    gates = Gates()
    ARTIFACTS.mkdir(exist_ok=True)

    async def main() -> None:
        jobs = [OWNER, INDEX, gated_job(gates)]
        async with (
            console_daemon(short_tmp / "state", jobs, log_hub=hub) as daemon,
            async_playwright() as pw,
        ):
            # History for the page: one failed run.
            failed = await daemon.service.start(StartRequest(bean=OWNER.name, actor="test"))
            await failed.run.finished.wait()
            browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                problems: list[str] = []
                page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
                page.on(
                    "console",
                    lambda msg: (
                        problems.append(f"console: {msg.text}") if msg.type == "error" else None
                    ),
                )
                await page.goto(login_link(daemon))  # as `syncd serve` prints it
                await page.evaluate("window.notReloaded = true")

                row = page.locator('tr[data-job="GatedJob"]')
                state = row.locator('[data-field="state"]')
                await expect(state).to_have_text("idle", timeout=WAIT_MS)
                await row.locator('[data-action="run"]').click()
                await expect(state).to_have_text("running", timeout=WAIT_MS)
                await expect(row.locator('[data-action="run"]')).to_be_disabled()
                await expect(row.locator('[data-action="cancel"]')).to_be_enabled()

                await row.locator('[data-action="select"]').click()
                log = page.locator("#log")
                await expect(log).to_contain_text("run.started", timeout=WAIT_MS)
                await page.screenshot(path=str(ARTIFACTS / "console-running.png"), full_page=True)

                gates.release.set()
                await expect(state).to_have_text("idle", timeout=WAIT_MS)
                await expect(row.locator('[data-field="outcome"]')).to_have_text(
                    "success", timeout=WAIT_MS
                )
                await expect(log).to_contain_text("test.gated.released", timeout=WAIT_MS)
                await expect(log).to_contain_text("run.finished", timeout=WAIT_MS)
                await expect(page.locator("#history-rows tr").first).to_contain_text(
                    "success", timeout=WAIT_MS
                )
                assert await page.evaluate("window.notReloaded") is True
                await page.screenshot(path=str(ARTIFACTS / "console.png"), full_page=True)

                owner = page.locator('tr[data-job="OwnerRebuildJob"]')
                await expect(owner.locator('[data-field="outcome"]')).to_have_text("failed")
                await owner.locator('[data-action="select"]').click()
                await expect(page.locator("#rerun")).to_contain_text(
                    "PersonIndexJob", timeout=WAIT_MS
                )
                await page.set_viewport_size({"width": 390, "height": 844})
                await page.screenshot(path=str(ARTIFACTS / "console-phone.png"), full_page=True)
                assert problems == []
            finally:
                await browser.close()

    run(main(), bound=90)


def test_a_closed_console_asks_for_a_token(short_tmp: Path) -> None:
    """Opened without the login link: the page asks for a token; with a viewer's it shows the
    jobs but offers no Run."""
    chromium = _chromium()
    from playwright.async_api import async_playwright, expect

    config = HttpConfig(address="127.0.0.1:0")

    async def main() -> None:
        async with (
            console_daemon(short_tmp / "state", [INDEX], http=config) as daemon,
            async_playwright() as pw,
        ):
            browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page()
                await page.goto(console_url(daemon))
                await expect(page.locator("#token-form")).to_be_visible(timeout=WAIT_MS)
                await expect(page.locator("#conn")).to_have_text("needs a token")
                await page.fill("#token-input", VIEWER)
                await page.click("#token-form button[type=submit]")
                row = page.locator('tr[data-job="PersonIndexJob"]')
                await expect(row.locator('[data-field="state"]')).to_have_text(
                    "idle", timeout=WAIT_MS
                )
                await expect(row.locator('[data-action="run"]')).to_be_disabled()
                await expect(page.locator("#run-all")).to_be_disabled()
                await expect(page.locator("#conn")).to_have_text("live")
            finally:
                await browser.close()

    run(main(), bound=60)


NO_BROKER = "no AMQP broker configured: set [packs.tis.reval] amqp_url or RABBITMQ_*"
REVAL = JobSpec(
    name="RevalJob",
    aliases=("RevalSyncJob",),
    trigger_operation="revalJob",
    body=quick_body,
    description="Cannot run here: no broker.",
    parameters=(ROWS,),
    job_key="revalJob",
    disabled_reason=NO_BROKER,
)

# No timetable: a scheduled run at the test's wall-clock time would add a row to its history.
UNSCHEDULED_INDEX = dataclasses.replace(INDEX, default_at=None)


def test_a_disabled_job_says_why_and_runs_show_their_arguments(short_tmp: Path) -> None:
    """A disabled job's row says why, and nothing in its details can start it; the recent
    runs of a job show the arguments each run had, including one started from the form."""
    chromium = _chromium()
    from playwright.async_api import async_playwright, expect

    async def main() -> None:
        async with (
            console_daemon(short_tmp / "state", [UNSCHEDULED_INDEX, REVAL]) as daemon,
            async_playwright() as pw,
        ):
            for rows in (5, 2):
                done = await daemon.service.start(
                    StartRequest(
                        bean=UNSCHEDULED_INDEX.name, actor="test", arguments={"rows": rows}
                    )
                )
                await done.run.finished.wait()
            browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                problems: list[str] = []
                page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
                await page.goto(login_link(daemon))  # as `syncd serve` prints it

                reval = page.locator('tr[data-job="RevalJob"]')
                await expect(reval.locator('[data-field="state"]')).to_have_text(
                    "disabled", timeout=WAIT_MS
                )
                await expect(reval.locator('[data-field="reason"]')).to_have_text(NO_BROKER)
                await expect(reval.locator('[data-action="run"]')).to_be_disabled()
                index = page.locator('tr[data-job="PersonIndexJob"]')
                await expect(index.locator('[data-field="reason"]')).to_be_hidden()

                await reval.locator('[data-action="select"]').click()
                detail = page.locator("#detail")
                await expect(detail.locator("#detail-name")).to_have_text("RevalJob")
                await expect(detail).to_contain_text(NO_BROKER)
                await expect(page.locator("#detail-facts")).to_contain_text("RevalSyncJob")
                submit = page.locator("#args-form button[type=submit]")
                await expect(submit).to_be_visible()
                await expect(submit).to_be_disabled()
                await expect(submit).to_have_attribute("title", NO_BROKER)
                runs = detail.locator("button:visible", has_text="Run")
                for i in range(await runs.count()):
                    await expect(runs.nth(i)).to_be_disabled()

                await index.locator('[data-action="select"]').click()
                args = page.locator('#history-rows [data-field="arguments"]')
                await expect(args).to_have_text(["rows=2", "rows=5"], timeout=WAIT_MS)
                await page.fill("#arg-rows", "3")
                await expect(submit).to_be_enabled()
                await submit.click()
                await expect(args).to_have_text(["rows=3", "rows=2", "rows=5"], timeout=WAIT_MS)
                await page.screenshot(path=str(ARTIFACTS / "console-disabled.png"), full_page=True)
                assert problems == []
            finally:
                await browser.close()

    ARTIFACTS.mkdir(exist_ok=True)
    run(main(), bound=60)
