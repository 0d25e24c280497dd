"""The old TIS-SYNC REST API, answer for answer, against a real daemon: status by the old job
keys, PUT one job (with the record-status date override) or all, the profile, and its auth."""

from __future__ import annotations

import asyncio
from pathlib import Path

from syncd.config import HttpConfig, JobConfig
from syncd.observability.events import EventKind
from tests.packs.sample import QUICK, Gates, gated_job
from tests.web._support import (
    BOUND,
    OPERATOR,
    VIEWER,
    bearer,
    call,
    console_daemon,
    console_session,
    console_url,
    csrf,
    finished,
    record_status_job,
    reval_job,
    run,
)

TOKENS = HttpConfig(address="127.0.0.1:0", profile="prod")


def test_status_lists_the_old_keys_and_whether_each_runs(short_tmp: Path) -> None:
    """Only jobs with an old key appear; a running job is true, the others false."""
    gates = Gates()

    async def main() -> None:
        jobs = [gated_job(gates), record_status_job(), QUICK]
        async with console_daemon(short_tmp / "s", jobs) as daemon, console_session(daemon) as http:
            status, body = await call(http, "GET", console_url(daemon, "api/jobs/status"))
            assert (status, body) == (200, {"gatedJob": False, "personRecordStatusJob": False})
            headers = {"X-CSRF-Token": await csrf(http, daemon)}
            status, body = await call(
                http, "PUT", console_url(daemon, "api/job/gatedJob"), headers=headers
            )
            assert (status, body) == (200, {"status": "Just started"})
            _, body = await call(http, "GET", console_url(daemon, "api/jobs/status"))
            assert body == {"gatedJob": True, "personRecordStatusJob": False}
            gates.release.set()

    run(main())


def test_put_a_job_starts_it_once_then_says_already_running(short_tmp: Path) -> None:
    """The exact old bodies: Just started, then Already running (both 200)."""
    gates = Gates()

    async def main() -> None:
        async with (
            console_daemon(short_tmp / "s", [gated_job(gates)], http=TOKENS) as daemon,
            console_session(daemon) as http,
        ):
            url = console_url(daemon, "api/job/gatedJob")
            assert await call(http, "PUT", url, headers=bearer(OPERATOR)) == (
                200,
                {"status": "Just started"},
            )
            assert await call(http, "PUT", url, headers=bearer(OPERATOR)) == (
                200,
                {"status": "Already running"},
            )
            active = daemon.service.active("GatedJob")
            assert active is not None and active.record.actor == "token ci"
            gates.release.set()
            assert (await finished(daemon, active.run_id))["outcome"] == "success"

    run(main())


def test_unknown_job_is_400_job_not_found(short_tmp: Path) -> None:
    """The old API answers 400 (not 404) with {"error": "Job not found"}; besides the old
    keys it takes the names the registry knows (bean names and aliases), as every edge does."""

    async def main() -> None:
        async with (
            console_daemon(short_tmp / "s", [QUICK, record_status_job()], http=TOKENS) as daemon,
            console_session(daemon) as http,
        ):
            for name in ("noSuchJob", "personRecordStatus", "Daemon"):
                status, body = await call(
                    http, "PUT", console_url(daemon, f"api/job/{name}"), headers=bearer(OPERATOR)
                )
                assert (status, body) == (400, {"error": "Job not found"}), name
            status, body = await call(
                http,
                "PUT",
                console_url(daemon, "api/job/sync.mbean:name=PersonRecordStatusJob"),
                headers=bearer(OPERATOR),
            )
            assert (status, body) == (200, {"status": "Just started"})

    run(main())


def test_the_date_override_body_reaches_the_job(short_tmp: Path) -> None:
    """{"dateOverride": "2026-01-31"} becomes the run's argument."""

    async def main() -> None:
        async with (
            console_daemon(short_tmp / "s", [record_status_job()], http=TOKENS) as daemon,
            console_session(daemon) as http,
        ):
            status, body = await call(
                http,
                "PUT",
                console_url(daemon, "api/job/personRecordStatusJob"),
                body={"dateOverride": "2026-01-31"},
                headers=bearer(OPERATOR),
            )
            assert (status, body) == (200, {"status": "Just started"})
            (record,) = daemon.ledger.history("PersonRecordStatusJob", 5)
            done = await finished(daemon, record.run_id)
            assert done == {"outcome": "success", "arguments": {"dateOverride": "2026-01-31"}}

    run(main())


def test_bad_bodies_are_400_and_start_nothing(short_tmp: Path) -> None:
    """A bad date, an unknown key, a non-object and broken JSON: 400 {"error": ...}, no run."""

    async def main() -> None:
        async with (
            console_daemon(short_tmp / "s", [record_status_job()], http=TOKENS) as daemon,
            console_session(daemon) as http,
        ):
            url = console_url(daemon, "api/job/personRecordStatusJob")
            cases = [
                ({"dateOverride": "2026-02-30"}, "dateOverride"),
                ({"dateOverride": "yesterday"}, "dateOverride"),
                ({"dateOveride": "2026-01-31"}, "did you mean dateOverride"),
                (["2026-01-31"], "JSON object"),
                ("{not json", "not valid JSON"),
            ]
            for payload, expected in cases:
                status, body = await call(http, "PUT", url, body=payload, headers=bearer(OPERATOR))
                assert status == 400, payload
                assert set(body) == {"error"} and expected in body["error"], body
            assert daemon.ledger.history("PersonRecordStatusJob", 5) == []
            _, body = await call(http, "GET", console_url(daemon, "api/jobs/status"))
            assert body == {"personRecordStatusJob": False}

    run(main())


def test_put_jobs_runs_all_with_an_empty_200(short_tmp: Path) -> None:
    """PUT api/jobs (and api/jobs/, as the old page sent it) starts every job in order."""

    async def main() -> None:
        async with (
            console_daemon(short_tmp / "s", [QUICK, record_status_job()], http=TOKENS) as daemon,
            console_session(daemon) as http,
            daemon.coordinator.events.subscribe() as sub,
        ):
            status, body = await call(
                http, "PUT", console_url(daemon, "api/jobs"), headers=bearer(OPERATOR)
            )
            assert (status, body) == (200, "")
            ended: dict[str, str] = {}
            async with asyncio.timeout(BOUND):
                while len(ended) < 2:
                    event, _ = await sub.next()
                    if event.kind is EventKind.RUN_FINISHED:
                        ended[event.bean] = event.outcome
            assert ended == {"QuickJob": "success", "PersonRecordStatusJob": "success"}
            status, body = await call(
                http, "PUT", console_url(daemon, "api/jobs/"), headers=bearer(OPERATOR)
            )
            assert (status, body) == (200, "")

    run(main())


def test_profile_is_plain_text_without_a_token(short_tmp: Path) -> None:
    """GET api/sys/profile asked no permission in the old service, and still does not."""
    config = HttpConfig(address="127.0.0.1:0", profile="nimdta")

    async def main() -> None:
        async with (
            console_daemon(short_tmp / "s", [QUICK], http=config) as daemon,
            console_session() as http,
            http.get(console_url(daemon, "api/sys/profile")) as response,
        ):
            assert response.status == 200
            assert response.content_type == "text/plain"
            assert await response.text() == "nimdta"

    run(main())


def test_tokens_and_csrf_guard_the_old_api(short_tmp: Path) -> None:
    """No credential: reads and PUTs are 401; a viewer token reads but gets 403 on a PUT; an
    unknown token is 401; the page's CSRF token alone replaces no credential."""

    async def main() -> None:
        jobs = [record_status_job(), reval_job()]
        async with (
            console_daemon(short_tmp / "s", jobs) as daemon,
            console_session() as http,
        ):
            status_url = console_url(daemon, "api/jobs/status")
            put_url = console_url(daemon, "api/job/revalCurrentPmJob")
            status, body = await call(http, "GET", status_url)
            assert status == 401 and "credential" in body["error"]
            status, body = await call(http, "GET", status_url, headers=bearer("wrong"))
            assert (status, body) == (
                401,
                {"error": "the token is not valid (unknown, or revoked)"},
            )
            status, body = await call(http, "GET", status_url, headers={"Authorization": "Basic x"})
            assert status == 401
            status, body = await call(http, "GET", status_url, headers=bearer(VIEWER))
            assert (status, body) == (
                200,
                {"personRecordStatusJob": False, "revalCurrentPmJob": False},
            )
            status, body = await call(http, "PUT", put_url, headers=bearer(VIEWER))
            assert status == 403 and "viewer" in body["error"]
            status, body = await call(http, "PUT", put_url)
            assert status == 401 and "credential" in body["error"]
            token = await csrf(http, daemon, bearer(VIEWER))
            status, body = await call(http, "PUT", put_url, headers={"X-CSRF-Token": token})
            assert status == 401
            assert daemon.ledger.history(None, 5) == []

    run(main())


def test_with_the_login_cookie_a_put_needs_the_csrf_token(short_tmp: Path) -> None:
    """The console's session cookie (a browser sends it on its own): a PUT without the page's
    CSRF token is 403; a wrong one too; a cross-origin one too; with it, the job starts."""

    async def main() -> None:
        async with (
            console_daemon(short_tmp / "s", [QUICK, reval_job()]) as daemon,
            console_session(daemon) as http,
        ):
            url = console_url(daemon, "api/job/revalCurrentPmJob")
            status, body = await call(http, "PUT", url)
            assert status == 403 and "CSRF" in body["error"]
            status, body = await call(http, "PUT", url, headers={"X-CSRF-Token": "guess"})
            assert status == 403 and "CSRF" in body["error"]
            token = await csrf(http, daemon)
            foreign = {"X-CSRF-Token": token, "Origin": "http://evil.example"}
            status, body = await call(http, "PUT", url, headers=foreign)
            assert status == 403 and "cross-origin" in body["error"]
            assert daemon.ledger.history(None, 5) == []
            status, body = await call(http, "PUT", url, headers={"X-CSRF-Token": token})
            assert (status, body) == (200, {"status": "Just started"})

    run(main())


def test_a_disabled_job_is_refused_with_its_reason(short_tmp: Path) -> None:
    async def main() -> None:
        async with (
            console_daemon(
                short_tmp / "s",
                [reval_job()],
                http=TOKENS,
                job_tables={"RevalCurrentPmSyncJob": JobConfig(enabled=False)},
            ) as daemon,
            console_session(daemon) as http,
        ):
            status, body = await call(
                http,
                "PUT",
                console_url(daemon, "api/job/revalCurrentPmJob"),
                headers=bearer(OPERATOR),
            )
            assert status == 409 and "disabled" in body["error"]

    run(main())
