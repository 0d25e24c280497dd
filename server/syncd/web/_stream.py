"""Live updates as Server-Sent Events: job state changes, and the log lines of one run.

SSE rather than a WebSocket: the traffic is one-way, it is plain HTTP (proxies, curl and the
auth checks of every other endpoint apply unchanged), and the page reads it with `fetch`, which
can send a bearer token (EventSource cannot). A comment line every `heartbeat` seconds keeps
proxies from timing the stream out and lets the server notice a client that went away.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from syncd.execution.run import Run
from syncd.observability.events import Event, EventKind
from syncd.observability.loghub import Follower, LogLine, line_filter
from syncd.security import Principal
from syncd.web._api import find_run, snapshot
from syncd.web._http import instant, query_int, sse_frame
from syncd.web._model import job_view, live_run_view, progress_view
from syncd.web.plane import WebPlane

LOG_LINES_DEFAULT = 500
LOG_LINES_MAX = 5000
_KEEP_ALIVE = b": keep-alive\n\n"


class _Closed(Exception):
    """The stream ends: the listener is shutting down."""


class Streams:
    def __init__(self, plane: WebPlane, stopping: asyncio.Event, heartbeat: float = 15.0) -> None:
        self._plane = plane
        self._stopping = stopping
        self._heartbeat = heartbeat

    async def _open(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",  # a buffering reverse proxy would hold events back
            }
        )
        await response.prepare(request)
        return response

    async def _wait_any(
        self, futures: set[asyncio.Future[Any]], response: web.StreamResponse
    ) -> set[asyncio.Future[Any]]:
        """The futures that are done, writing keep-alives while none is; _Closed on shutdown."""
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            while True:
                done, _ = await asyncio.wait(
                    {*futures, stop}, timeout=self._heartbeat, return_when=asyncio.FIRST_COMPLETED
                )
                if stop in done:
                    raise _Closed
                if done:
                    return done
                await response.write(_KEEP_ALIVE)
        finally:
            stop.cancel()

    # --- job states ----------------------------------------------------------------------

    async def events(self, request: web.Request, _caller: Principal) -> web.StreamResponse:
        """`snapshot` (every job) first and after any loss; then `job`, `progress`, `daemon`."""
        plane = self._plane
        # Subscribe before the snapshot, so nothing happens between the two unseen.
        async with plane.events.subscribe() as sub:
            response = await self._open(request)
            pending: asyncio.Future[tuple[Event, int]] | None = None
            try:
                await response.write(sse_frame("snapshot", snapshot(plane)))
                while True:
                    pending = asyncio.ensure_future(sub.next())
                    await self._wait_any({pending}, response)
                    event, lost = pending.result()
                    frame = self._frame(event, lost)
                    if frame is not None:
                        await response.write(frame)
            except (_Closed, ConnectionResetError):
                pass
            finally:
                if pending is not None:
                    pending.cancel()
        return response

    def _frame(self, event: Event, lost: int) -> bytes | None:
        plane = self._plane
        if lost:
            return sse_frame("snapshot", snapshot(plane))
        if event.kind is EventKind.DAEMON_DRAINING:
            return sse_frame("daemon", {"draining": True, "message": event.message})
        spec = plane.jobs.spec(event.bean) if event.bean else None
        if spec is None:  # a reloaded config, the whole daemon paused ("*"): all may change
            return sse_frame("snapshot", snapshot(plane))
        if event.kind is EventKind.RUN_PROGRESS:
            run = plane.service.active(spec.name)
            if run is None or run.run_id != event.run_id:
                return None  # the run ended since: its run.finished follows
            return sse_frame("progress", progress_view(plane, run))
        return sse_frame(
            "job",
            {
                "job": job_view(plane, spec),
                "event": {
                    "kind": event.kind.value,
                    "runId": event.run_id or None,
                    "outcome": event.outcome or None,
                    "message": event.message or None,
                    "at": instant(event.at),
                },
            },
        )

    # --- one run's log -------------------------------------------------------------------

    async def logs(self, request: web.Request, _caller: Principal) -> web.StreamResponse:
        """The run's last `lines` log lines (`line` events, each one JSON log line), then —
        while the run is under way — its new lines as they come; `end` when it has finished."""
        plane = self._plane
        run_id = request.match_info["run_id"]
        target = await find_run(plane, run_id)  # refusals: the HTTP table's 404 or 503
        lines = query_int(request, "lines", LOG_LINES_DEFAULT, 0, LOG_LINES_MAX)
        keep = line_filter(run_id=run_id)
        async with plane.log_hub.follow(keep) as follower:
            seen = 0
            response = await self._open(request)
            try:
                for line in plane.log_hub.last(lines, keep):
                    await response.write(sse_frame("line", line.text))
                    seen = line.seq
                if isinstance(target, Run):
                    await self._follow(target, follower, seen, response)
                await response.write(sse_frame("end", live_run_view(plane, target)))
            except (_Closed, ConnectionResetError):
                pass
        return response

    async def _follow(
        self, run: Run, follower: Follower, seen: int, response: web.StreamResponse
    ) -> None:
        """Send the run's new lines (after sequence `seen`) until the run has finished."""

        async def send(line: LogLine, lost: int) -> None:
            nonlocal seen
            if lost:
                await response.write(sse_frame("lost", {"lines": lost}))
            if line.seq > seen:
                await response.write(sse_frame("line", line.text))
                seen = line.seq

        finished = asyncio.ensure_future(run.finished.wait())
        pending: asyncio.Future[tuple[LogLine, int]] | None = None
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(follower.next())
                done = await self._wait_any({pending, finished}, response)
                if pending in done:
                    await send(*pending.result())
                    pending = None
                elif finished in done:
                    break
            assert pending is not None
            if pending.done():
                await send(*pending.result())
            else:
                pending.cancel()  # a cancelled get leaves its line in the queue
            pending = None
            # The canonical run.finished line is queued before the run is marked finished.
            for line, lost in follower.drain(follower.queue.qsize()):
                await send(line, lost)
        finally:
            finished.cancel()
            if pending is not None:
                pending.cancel()
