"""The console's JSON API, the page and its assets, and the OpenAPI document, against a real
daemon: reads, run / cancel / run-all, bad input, roles and the CSRF token."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import grpc
from aiohttp import web

from syncd.config import HttpConfig, SchedulerConfig
from syncd.job import PackContext
from syncd.web.console import STATIC_DIR
from syncd_api.v1 import management_pb2 as pb
from syncd_api.v1 import management_pb2_grpc as pb_grpc
from syncd_tis import TisSettings
from syncd_tis.search.jobs import NO_BROKER, search_and_reval_jobs
from tests.harness import running_daemon
from tests.packs.sample import FAILING, QUICK, Gates, gated_job
from tests.web._support import (
    OPERATOR,
    VIEWER,
    bearer,
    call,
    console_daemon,
    console_session,
    console_url,
    csrf,
    finished,
    login_link,
    record_status_job,
    reval_job,
    run,
)

TOKENS = HttpConfig(address="127.0.0.1:0")


def test_session_tells_the_role_and_whether_it_may_run(short_tmp: Path) -> None:
    """The login link's cookie is the owner (admin); tokens their role; nothing is a 401."""

    async def main() -> None:
        async with (
            console_daemon(short_tmp / "s", [QUICK], http=TOKENS) as daemon,
            console_session(daemon) as http,
            console_session() as anonymous,
        ):
            url = console_url(daemon, "api/v1/session")
            roles = {}
            for headers in ({}, bearer(VIEWER), bearer(OPERATOR)):
                status, body = await call(http, "GET", url, headers=headers)
                assert status == 200
                roles[body["role"]] = body["canRun"]
                assert len(body["csrfToken"]) >= 32 and body["profile"] == "default"
            assert roles == {"admin": True, "viewer": False, "operator": True}
            status, body = await call(anonymous, "GET", url)
            assert status == 401 and "credential" in body["error"]

    run(main())


def test_the_login_link_works_once_and_sets_an_httponly_strict_cookie(short_tmp: Path) -> None:
    """The link's token is exchanged for a session cookie (HttpOnly, SameSite=Strict, scoped to
    the console) and a redirect to the clean URL; the same link again is a 401."""

    async def main() -> None:
        async with (
            console_daemon(short_tmp / "s", [QUICK]) as daemon,
            console_session() as http,
        ):
            link = login_link(daemon)
            async with http.get(link, allow_redirects=False) as response:
                assert response.status == 302
                assert response.headers["Location"] == "/sync/"
                cookie = response.headers["Set-Cookie"]
                assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
                assert "Path=/sync/" in cookie
            status, body = await call(http, "GET", console_url(daemon, "api/v1/session"))
            assert (status, body["role"]) == (200, "admin")
            async with console_session() as other:
                status, _ = await call(other, "GET", link)
                assert status == 401

    run(main())


def test_jobs_show_state_last_run_schedule_and_dependants(short_tmp: Path) -> None:
    """Timetable order; last outcome and error; next run in UTC; reval rows hidden on nimdta."""
    http_config = HttpConfig(address="127.0.0.1:0", profile="tis-nimdta")

    async def main() -> None:
        jobs = [FAILING, QUICK, reval_job()]
        async with (
            console_daemon(short_tmp / "s", jobs, http=http_config) as daemon,
            console_session(daemon) as http,
        ):
            token = {"X-CSRF-Token": await csrf(http, daemon)}
            status, body = await call(
                http, "POST", console_url(daemon, "api/v1/jobs/FailingJob/run"), headers=token
            )
            assert status == 202 and body["status"] == "Just started"
            assert (await finished(daemon, body["run"]["runId"]))["outcome"] == "failed"
            status, body = await call(http, "GET", console_url(daemon, "api/v1/jobs"))
            assert status == 200 and body["profile"] == "tis-nimdta"
            by_name = {j["name"]: j for j in body["jobs"]}
            assert list(by_name) == ["FailingJob", "QuickJob", "RevalCurrentPmSyncJob"]
            failing = by_name["FailingJob"]
            assert failing["state"] == "idle" and failing["current"] is None
            assert failing["last"]["outcome"] == "failed"
            assert failing["last"]["errorMessage"] == "bad input row 7"
            assert failing["last"]["startedAt"].endswith("Z")
            assert failing["needsRerun"] is True
            assert failing["health"] == "failing"
            assert failing["healthReason"] == "last run failed: ValueError: bad input row 7"
            assert failing["parameters"] == [
                {"name": "row", "type": "int", "description": "", "required": False, "default": 7}
            ]
            assert by_name["QuickJob"]["last"] is None
            assert [j["hidden"] for j in by_name.values()] == [False, False, True]
            status, one = await call(http, "GET", console_url(daemon, "api/v1/jobs/QuickJob"))
            assert status == 200 and one["name"] == "QuickJob"

    run(main())


def test_dependants_come_from_the_dependency_graph(short_tmp: Path) -> None:
    """The record-status job feeds an index job: the index is the one to re-run after it."""
    from syncd.job import JobSpec
    from tests.packs.sample import quick_body

    index = JobSpec(
        name="PersonIndexJob",
        trigger_operation="personIndexJob",
        body=quick_body,
        description="index",
        default_after=("PersonRecordStatusJob",),
    )

    async def main() -> None:
        async with (
            console_daemon(short_tmp / "s", [record_status_job(), index]) as daemon,
            console_session(daemon) as http,
        ):
            _, job = await call(
                http, "GET", console_url(daemon, "api/v1/jobs/PersonRecordStatusJob")
            )
            assert job["dependants"] == ["PersonIndexJob"] and job["after"] == []
            _, job = await call(http, "GET", console_url(daemon, "api/v1/jobs/PersonIndexJob"))
            assert job["after"] == ["PersonRecordStatusJob"] and job["dependants"] == []
            token = {"X-CSRF-Token": await csrf(http, daemon)}
            status, body = await call(
                http,
                "POST",
                console_url(daemon, "api/v1/jobs/PersonRecordStatusJob/run"),
                body={"arguments": {"dateOverride": "ANY"}, "withDependants": True},
                headers=token,
            )
            assert status == 202 and body["then"] == ["PersonIndexJob"]
            assert body["run"]["arguments"] == {"dateOverride": "ANY"}

    run(main())


def test_unknown_jobs_and_runs_are_404(short_tmp: Path) -> None:
    async def main() -> None:
        async with (
            console_daemon(short_tmp / "s", [QUICK]) as daemon,
            console_session(daemon) as http,
        ):
            token = {"X-CSRF-Token": await csrf(http, daemon)}
            for method, path in [
                ("GET", "api/v1/jobs/QuikJob"),
                ("GET", "api/v1/jobs/QuikJob/runs"),
                ("POST", "api/v1/jobs/QuikJob/run"),
                ("POST", "api/v1/jobs/QuikJob/cancel"),
            ]:
                status, body = await call(http, method, console_url(daemon, path), headers=token)
                assert status == 404, path
                assert body["error"] == "no job named 'QuikJob'; did you mean QuickJob?"
            status, body = await call(http, "GET", console_url(daemon, "api/v1/runs/nope"))
            assert (status, body) == (404, {"error": "no run with id 'nope'"})
            status, _ = await call(http, "GET", console_url(daemon, "api/v1/no-such-thing"))
            assert status == 404

    run(main())


def test_bad_arguments_are_400_naming_the_parameter(short_tmp: Path) -> None:
    async def main() -> None:
        async with (
            console_daemon(short_tmp / "s", [record_status_job()]) as daemon,
            console_session(daemon) as http,
        ):
            url = console_url(daemon, "api/v1/jobs/PersonRecordStatusJob/run")
            token = {"X-CSRF-Token": await csrf(http, daemon)}
            status, body = await call(
                http, "POST", url, body={"arguments": {"dateOverride": "2026-13-01"}}, headers=token
            )
            assert status == 400 and body["parameter"] == "dateOverride"
            assert "dateOverride" in body["error"]
            for payload, expected in [
                ({"args": {}}, "unknown field 'args'"),
                ({"arguments": ["ANY"]}, "arguments must be a JSON object"),
                ({"withDependants": "yes"}, "withDependants must be true or false"),
                ({"arguments": {"date": "ANY"}}, "no parameter named 'date'"),
                ("[]", "must be a JSON object"),
            ]:
                status, body = await call(http, "POST", url, body=payload, headers=token)
                assert status == 400 and expected in body["error"], (payload, body)
            assert daemon.ledger.history(None, 5) == []

    run(main())


def test_run_cancel_history_and_run_lookup(short_tmp: Path) -> None:
    """Run → 202; again → 409 naming the run; cancel → 202 and the run ends cancelled; cancel
    with nothing running → 409; the history and the run itself show the outcome."""
    gates = Gates()

    async def main() -> None:
        async with (
            console_daemon(short_tmp / "s", [gated_job(gates)], http=TOKENS) as daemon,
            aiohttp.ClientSession(headers=bearer(OPERATOR)) as http,
        ):
            url = console_url(daemon, "api/v1/jobs/GatedJob/")
            status, body = await call(http, "POST", url + "run", body={"arguments": {"rows": 2}})
            assert status == 202
            run_id = body["run"]["runId"]
            assert body["run"]["state"] == "running" and body["run"]["actor"] == "token ci"
            status, body = await call(http, "POST", url + "run")
            assert (status, body) == (409, {"error": "Already running", "runId": run_id})
            status, body = await call(http, "POST", url + "cancel")
            assert status == 202 and body["run"]["runId"] == run_id
            assert (await finished(daemon, run_id))["outcome"] == "cancelled"
            status, body = await call(http, "POST", url + "cancel")
            assert status == 409 and "no run under way" in body["error"]
            status, body = await call(http, "GET", url + "runs?limit=5")
            assert status == 200
            (only,) = body["runs"]
            assert only["runId"] == run_id and only["outcome"] == "cancelled"
            assert only["arguments"] == {"rows": 2} and only["durationSeconds"] >= 0
            for bad in ("0", "201", "x"):
                status, body = await call(http, "GET", url + f"runs?limit={bad}")
                assert status == 400 and "limit" in body["error"]
            status, body = await call(http, "GET", console_url(daemon, f"api/v1/runs/{run_id}"))
            assert status == 200 and body["outcome"] == "cancelled"

    run(main())


def test_run_all_starts_every_job(short_tmp: Path) -> None:
    async def main() -> None:
        async with (
            console_daemon(short_tmp / "s", [QUICK, FAILING]) as daemon,
            console_session(daemon) as http,
        ):
            token = {"X-CSRF-Token": await csrf(http, daemon)}
            status, body = await call(
                http, "POST", console_url(daemon, "api/v1/run-all"), headers=token
            )
            assert status == 202 and sorted(body["jobs"]) == ["FailingJob", "QuickJob"]

    run(main())


def test_the_owner_mints_a_fresh_login_link_over_the_socket(short_tmp: Path) -> None:
    """Daemon.consoleLoginLink (admin): a new one-time link; the one printed at start stops
    working; the new one works once."""

    async def main() -> None:
        async with (
            console_daemon(short_tmp / "s", [QUICK]) as daemon,
            grpc.aio.insecure_channel(daemon.listening.addresses[0]) as channel,
            console_session() as http,
        ):
            printed = login_link(daemon)
            stub: pb_grpc.ManagementAsyncStub = pb_grpc.ManagementStub(channel)
            reply = await stub.Invoke(pb.InvokeRequest(bean="Daemon", operation="consoleLoginLink"))
            fresh = reply.result.string_value
            assert fresh.startswith(console_url(daemon, "?token=")) and fresh != printed
            assert (await call(http, "GET", printed))[0] == 401
            async with http.get(fresh, allow_redirects=False) as response:
                assert response.status == 302
            assert (await call(http, "GET", console_url(daemon, "api/v1/session")))[0] == 200
            async with console_session() as other:
                assert (await call(other, "GET", fresh))[0] == 401

    run(main())


def test_roles_and_csrf_guard_the_actions(short_tmp: Path) -> None:
    """By default nothing but a credential gets anything: anonymous is a 401; a viewer gets 403
    for writes; an operator token needs no CSRF token; the login cookie needs it. With the
    single-user settings (open_read, open_write) anonymous callers run with the CSRF token."""

    async def main() -> None:
        async with (
            console_daemon(short_tmp / "a", [QUICK], http=TOKENS) as daemon,
            console_session() as anonymous,
            console_session(daemon) as logged_in,
        ):
            run_url = console_url(daemon, "api/v1/jobs/QuickJob/run")
            status, _ = await call(anonymous, "GET", console_url(daemon, "api/v1/jobs"))
            assert status == 401
            status, body = await call(anonymous, "POST", run_url)
            assert status == 401 and "credential" in body["error"]
            status, body = await call(anonymous, "POST", run_url, headers=bearer(VIEWER))
            assert status == 403 and "viewer" in body["error"]
            status, body = await call(
                anonymous, "POST", console_url(daemon, "api/v1/run-all"), headers=bearer(VIEWER)
            )
            assert status == 403
            status, body = await call(anonymous, "POST", run_url, headers=bearer("nope"))
            assert status == 401
            status, body = await call(logged_in, "POST", run_url)
            assert status == 403 and "CSRF" in body["error"]
            assert daemon.ledger.history(None, 5) == []
            status, body = await call(anonymous, "POST", run_url, headers=bearer(OPERATOR))
            assert status == 202
            await finished(daemon, body["run"]["runId"])
            token = {"X-CSRF-Token": await csrf(logged_in, daemon)}
            status, body = await call(logged_in, "POST", run_url, headers=token)
            assert status == 202 and body["run"]["actor"].startswith("console login (uid ")

        single_user = HttpConfig(address="127.0.0.1:0", open_read=True, open_write=True)
        async with (
            console_daemon(short_tmp / "b", [QUICK], http=single_user) as daemon,
            console_session() as http,
        ):
            run_url = console_url(daemon, "api/v1/jobs/QuickJob/run")
            status, body = await call(http, "POST", run_url)
            assert status == 403 and "CSRF" in body["error"]
            status, body = await call(http, "POST", console_url(daemon, "api/v1/run-all"))
            assert status == 403
            status, body = await call(
                http, "POST", run_url, headers={"X-CSRF-Token": await csrf(http, daemon)}
            )
            assert status == 202 and body["run"]["actor"] == "anonymous"

    run(main())


def test_reads_need_a_credential_by_default_but_the_page_loads(short_tmp: Path) -> None:
    """Every read of the API needs a viewer or operator token (or the login cookie); the page
    and its assets still load (the page asks for a token)."""

    async def main() -> None:
        async with (
            console_daemon(short_tmp / "s", [QUICK]) as daemon,
            console_session() as http,
        ):
            for path in (
                "api/v1/session",
                "api/v1/jobs",
                "api/v1/jobs/QuickJob",
                "api/v1/events",
                "api/jobs/status",
            ):
                status, body = await call(http, "GET", console_url(daemon, path))
                assert status == 401 and "credential" in body["error"], path
            async with http.get(console_url(daemon, "api/v1/jobs")) as response:
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
            status, _ = await call(
                http, "GET", console_url(daemon, "api/v1/jobs"), headers=bearer(VIEWER)
            )
            assert status == 200
            for path in ("", "static/app.js", "static/style.css", "api/openapi.json"):
                status, _ = await call(http, "GET", console_url(daemon, path))
                assert status == 200, path

    run(main())


def test_the_page_and_its_assets(short_tmp: Path) -> None:
    """The page under a configured context path, with a strict CSP; no reference to any
    other host in the assets; the path without its slash redirects."""
    config = HttpConfig(address="127.0.0.1:0", context_path="/ops/sync/")

    async def main() -> None:
        async with (
            console_daemon(short_tmp / "s", [QUICK], http=config) as daemon,
            console_session(daemon) as http,
        ):
            async with http.get(console_url(daemon)) as response:
                assert response.status == 200 and response.content_type == "text/html"
                csp = response.headers["Content-Security-Policy"]
                assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
                assert 'src="static/app.js"' in await response.text()
            async with http.get(console_url(daemon, "static/app.js")) as response:
                assert response.status == 200 and response.headers["Cache-Control"] == "no-cache"
            async with http.get(
                f"{daemon.listening.http}/ops/sync", allow_redirects=False
            ) as response:
                assert response.status == 302 and response.headers["Location"] == "/ops/sync/"
            status, _ = await call(http, "GET", console_url(daemon, "static/../console.py"))
            assert status in (403, 404)
            status, body = await call(http, "GET", console_url(daemon, "api/jobs/status"))
            assert status == 200 and body == {}
        for asset in STATIC_DIR.iterdir():
            text = asset.read_text()
            assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
            assert "https://" not in text, asset.name

    run(main())


def test_openapi_describes_every_api_route(short_tmp: Path) -> None:
    """The document is OpenAPI 3.1 JSON, and lists every API route the console registers,
    with its method."""

    async def main() -> None:
        async with (
            console_daemon(short_tmp / "s", [QUICK]) as daemon,
            console_session(daemon) as http,
        ):
            status, doc = await call(http, "GET", console_url(daemon, "api/openapi.json"))
            assert status == 200 and doc["openapi"] == "3.1.0"
            assert doc["servers"] == [{"url": "/sync"}]
            app = web.Application()
            daemon._web_routes(app)
            registered = {
                (route.method.lower(), route.resource.canonical.removeprefix("/sync"))
                for route in app.router.routes()
                if route.resource is not None
                and route.resource.canonical.startswith("/sync/api/")
                and route.method != "HEAD"
            }
            registered.discard(("put", "/api/jobs/"))  # the old page's spelling of /api/jobs
            documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
            assert registered == documented
            for path, ops in doc["paths"].items():
                for method, op in ops.items():
                    assert op["summary"] and op["responses"], (method, path)
                    for response in op["responses"].values():
                        ref = (
                            response.get("content", {})
                            .get("application/json", {})
                            .get("schema", {})
                            .get("$ref")
                        )
                        if ref:
                            assert (
                                ref.removeprefix("#/components/schemas/")
                                in doc["components"]["schemas"]
                            )

    run(main())


def test_a_foreign_host_name_is_refused_to_anonymous_callers(short_tmp: Path) -> None:
    """DNS rebinding: a page whose name re-resolves to 127.0.0.1 still sends its own Host (and
    the browser its cookie); it gets neither the CSRF token nor a run. Listed hosts and bearer
    tokens are served."""
    config = HttpConfig(address="127.0.0.1:0", allowed_hosts=("sync.example.org",))

    async def main() -> None:
        async with (
            console_daemon(short_tmp / "h", [QUICK], http=config) as daemon,
            console_session(daemon) as http,
        ):
            session = console_url(daemon, "api/v1/session")
            evil = {"Host": "evil.example.com:8101"}
            status, body = await call(http, "GET", session, headers=evil)
            assert status == 403 and "http.allowed_hosts" in body["error"]
            status, _ = await call(http, "GET", session, headers={"Host": "sync.example.org"})
            assert status == 200
            status, _ = await call(http, "GET", session, headers={"Host": "[::1]:8101"})
            assert status == 200
            status, _ = await call(http, "GET", session, headers={**evil, **bearer(OPERATOR)})
            assert status == 200

    run(main())


def test_a_pack_disabled_job_says_why_everywhere(short_tmp: Path) -> None:
    """The revalidation beans without a broker: gRPC status, the console's JSON and the old
    REST API's 409 all give the pack's reason, not a configuration switch nobody set."""
    specs = search_and_reval_jobs(
        PackContext(state_dir=short_tmp / "s", settings=None), TisSettings(), env={}
    )

    async def main() -> None:
        async with (
            running_daemon(
                short_tmp / "s",
                specs,
                http=HttpConfig(address="127.0.0.1:0"),
                scheduler=SchedulerConfig(enabled=False, catch_up=False),
            ) as running,
            console_session(running.daemon) as http,
        ):
            daemon = running.daemon
            reply = await running.stub.GetStatus(pb.GetStatusRequest())
            reval = {b.ref.name: b for b in reply.beans if b.ref.name.startswith("Reval")}
            assert set(reval) == {"RevalCurrentPmSyncJob", "RevalCurrentPlacementSyncJob"}
            for bean in reval.values():
                assert bean.state == pb.BEAN_STATE_DISABLED
                assert bean.last_error == f"disabled: {NO_BROKER}"
            status, body = await call(
                http, "GET", console_url(daemon, "api/v1/jobs/RevalCurrentPmSyncJob")
            )
            assert status == 200
            assert (body["state"], body["disabledReason"]) == ("disabled", NO_BROKER)
            token = {"X-CSRF-Token": await csrf(http, daemon)}
            status, body = await call(
                http, "PUT", console_url(daemon, "api/job/revalCurrentPmJob"), headers=token
            )
            assert status == 409
            assert body["error"] == f"RevalCurrentPmSyncJob is disabled: {NO_BROKER}"
            status, body = await call(
                http,
                "POST",
                console_url(daemon, "api/v1/jobs/RevalCurrentPlacementSyncJob/run"),
                body={},
                headers=token,
            )
            assert status == 409 and NO_BROKER in body["error"]
            assert "configuration" not in body["error"]

    run(main())
