"""The live streams: job state changes pushed as Server-Sent Events, a run's log lines as they
are written, and streams that end when the daemon stops."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from syncd.observability.events import Event, EventKind
from syncd.security import Principal, Role
from syncd.web._stream import Streams
from syncd.web.plane import WebPlane
from tests.packs.sample import QUICK, Gates, gated_job
from tests.web._support import (
    BOUND,
    VIEWER,
    bearer,
    call,
    console_daemon,
    console_session,
    console_url,
    csrf,
    logging_to_hub,
    run,
    sse_events,
)


async def _until(stream: Any, wanted: str, check: Any = lambda _d: True) -> Any:
    """The data of the first `wanted` event whose data passes `check`."""
    async with asyncio.timeout(BOUND):
        async for event, data in stream:
            if event == wanted:
                body = json.loads(data)
                if check(body):
                    return body
    raise AssertionError(f"the stream ended before a {wanted} event")


def test_job_state_changes_are_pushed(short_tmp: Path) -> None:
    """A snapshot first; then the job going running (with its run), progress, and its end."""
    gates = Gates()

    async def main() -> None:
        async with (
            console_daemon(short_tmp / "s", [gated_job(gates), QUICK]) as daemon,
            console_session(daemon) as http,
            http.get(console_url(daemon, "api/v1/events")) as response,
        ):
            assert response.status == 200
            assert response.content_type == "text/event-stream"
            events = sse_events(response)
            snapshot = await _until(events, "snapshot")
            assert [j["state"] for j in snapshot["jobs"]] == ["idle", "idle"]

            token = {"X-CSRF-Token": await csrf(http, daemon)}
            status, started = await call(
                http,
                "POST",
                console_url(daemon, "api/v1/jobs/GatedJob/run"),
                body={"arguments": {"rows": 3}},
                headers=token,
            )
            assert status == 202
            run_id = started["run"]["runId"]
            update = await _until(events, "job")
            assert update["event"] == {
                "kind": "run.started",
                "runId": run_id,
                "outcome": None,
                "message": "manual",
                "at": update["event"]["at"],
            }
            assert update["job"]["state"] == "running"
            assert update["job"]["current"]["runId"] == run_id
            progress = await _until(events, "progress", lambda b: b["current"]["progressDone"] == 3)
            assert progress["job"] == "GatedJob" and progress["current"]["progressTotal"] == 3

            gates.release.set()
            done = await _until(events, "job", lambda b: b["event"]["kind"] == "run.finished")
            assert done["event"]["outcome"] == "success"
            assert done["job"]["state"] == "idle" and done["job"]["current"] is None
            assert done["job"]["last"]["runId"] == run_id

            # A reloaded configuration may change any job's timetable: a new snapshot.
            daemon.coordinator.events.publish(
                Event(kind=EventKind.CONFIG_RELOADED, at=daemon.clock.now())
            )
            await _until(events, "snapshot")

    run(main())


def test_a_runs_log_is_followed_until_it_ends(short_tmp: Path) -> None:
    """The log stream sends the run's lines so far, then new ones as they are written, then
    `end` with the finished run; only that run's lines."""
    hub = logging_to_hub()
    gates = Gates()

    async def main() -> None:
        async with (
            console_daemon(short_tmp / "s", [gated_job(gates), QUICK], log_hub=hub) as daemon,
            console_session(daemon) as http,
        ):
            token = {"X-CSRF-Token": await csrf(http, daemon)}
            _, other = await call(
                http, "POST", console_url(daemon, "api/v1/jobs/QuickJob/run"), headers=token
            )
            _, started = await call(
                http, "POST", console_url(daemon, "api/v1/jobs/GatedJob/run"), headers=token
            )
            run_id = started["run"]["runId"]
            url = console_url(daemon, f"api/v1/runs/{run_id}/logs")
            async with http.get(url) as response:
                assert response.status == 200
                lines: list[dict[str, Any]] = []
                async with asyncio.timeout(BOUND):
                    async for event, data in sse_events(response):
                        if event == "line":
                            lines.append(json.loads(data))
                            if lines[-1]["event"] == "run.started":
                                gates.release.set()  # the rest must arrive live
                        elif event == "end":
                            end = json.loads(data)
                            break
            names = [line["event"] for line in lines]
            assert names[0] == "run.started" and names[-1] == "run.finished"
            assert "test.gated.released" in names
            assert {line["run_id"] for line in lines} == {run_id}
            assert len(names) == len(set(names))  # nothing sent twice
            assert end["runId"] == run_id and end["outcome"] == "success"

            # A finished run: its lines, then `end` at once.
            other_id = other["run"]["runId"]
            async with http.get(
                console_url(daemon, f"api/v1/runs/{other_id}/logs?lines=1")
            ) as response:
                got = [(e, json.loads(d)) async for e, d in sse_events(response)]
            assert [e for e, _ in got] == ["line", "end"]
            assert got[0][1]["event"] == "run.finished" and got[1][1]["outcome"] == "success"

    run(main())


def test_log_stream_bad_input(short_tmp: Path) -> None:
    async def main() -> None:
        async with (
            console_daemon(short_tmp / "s", [QUICK]) as daemon,
            console_session(daemon) as http,
        ):
            status, body = await call(http, "GET", console_url(daemon, "api/v1/runs/nope/logs"))
            assert (status, body) == (404, {"error": "no run with id 'nope'"})
            token = {"X-CSRF-Token": await csrf(http, daemon)}
            _, started = await call(
                http, "POST", console_url(daemon, "api/v1/jobs/QuickJob/run"), headers=token
            )
            url = console_url(daemon, f"api/v1/runs/{started['run']['runId']}/logs?lines=")
            for bad in ("-1", "x", "5001"):
                status, body = await call(http, "GET", url + bad)
                assert status == 400 and "lines" in body["error"]

    run(main())


def test_open_streams_end_when_the_daemon_stops(short_tmp: Path) -> None:
    """Stopping the daemon ends the event stream at once, instead of waiting for the client."""
    gates = Gates()

    async def main() -> None:
        async with console_session() as http:
            async with console_daemon(short_tmp / "s", [gated_job(gates)]) as daemon:
                response = await http.get(
                    console_url(daemon, "api/v1/events"), headers=bearer(VIEWER)
                )
                events = sse_events(response)
                await _until(events, "snapshot")
                stopping = asyncio.get_running_loop().time()
            # The context's exit stopped the daemon: the stream has ended, well within bounds.
            async with asyncio.timeout(BOUND):
                rest = [event async for event, _ in events]
            assert "snapshot" not in rest
            assert asyncio.get_running_loop().time() - stopping < BOUND
            response.release()

    run(main())


def test_an_idle_stream_sends_keep_alives(short_tmp: Path) -> None:
    """With nothing happening, the stream still writes (a comment line each heartbeat), so
    proxies keep it open and a vanished client is noticed."""

    async def main() -> None:
        async with console_daemon(short_tmp / "s", [QUICK]) as daemon:
            plane = WebPlane(
                config=daemon.config.http,
                registry=daemon.registry,
                jobs=daemon.jobs,
                service=daemon.service,
                ledger=daemon.ledger,
                log_hub=daemon.log_hub,
                events=daemon.coordinator.events,
                clock=daemon.clock,
                started_at=daemon.started_at,
                guard=daemon.guard,
            )
            stopping = asyncio.Event()
            streams = Streams(plane, stopping, heartbeat=0.01)
            caller = Principal("test", Role.VIEWER, "local", "http")

            async def events(request: web.Request) -> web.StreamResponse:
                return await streams.events(request, caller)

            app = web.Application()
            app.router.add_get("/events", events)
            async with TestClient(TestServer(app)) as client:
                response = await client.get("/events")
                async with asyncio.timeout(BOUND):
                    lines = [await response.content.readline() for _ in range(8)]
                assert b": keep-alive\n" in lines
                stopping.set()
                async with asyncio.timeout(BOUND):  # the stream ends once stopping is set
                    await response.content.read()
                assert response.content.at_eof()

    run(main())
