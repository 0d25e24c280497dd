"""The web console under `http.context_path` (default `/sync/`): the page, its static assets,
its JSON API and live streams, the old TIS-SYNC REST API, and the OpenAPI document.

API routes are declared with who may call them — `read` or `write` (see `_auth`) — and each
handler gets the checked caller. The page, its assets, the OpenAPI document and the old
profile endpoint are open: the page must load to ask for a token.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Literal

from aiohttp import web

from syncd.web._api import JsonApi
from syncd.web._auth import Access, Caller
from syncd.web._errors import json_errors
from syncd.web._openapi import document
from syncd.web._rest_compat import RestCompat
from syncd.web._stream import Streams
from syncd.web.plane import WebPlane

STATIC_DIR = Path(__file__).resolve().parent / "static"

# The page loads only its own files; it may not be framed (clickjacking on the Run buttons).
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

Level = Literal["read", "write"]
Handler = Callable[[web.Request, Caller], Awaitable[web.StreamResponse]]


def install(app: web.Application, plane: WebPlane) -> None:
    """Register the console's routes on the HTTP listener's application."""
    base = plane.config.context_path  # starts and ends with "/"
    access = Access(plane.config)
    stopping = asyncio.Event()
    api = JsonApi(plane, access)
    old = RestCompat(plane)
    streams = Streams(plane, stopping)

    def guarded(
        level: Level, handler: Handler, via: str
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def checked(request: web.Request) -> web.StreamResponse:
            caller = (
                access.writer(request, via) if level == "write" else access.reader(request, via)
            )
            return await handler(request, caller)

        return checked

    def add(method: str, path: str, level: Level, handler: Handler, via: str = "web") -> None:
        app.router.add_route(method, base + path, guarded(level, handler, via))

    async def page(_request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC_DIR / "index.html", headers=_PAGE_HEADERS)

    async def openapi(_request: web.Request) -> web.Response:
        return web.json_response(document(base))

    async def to_page(_request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(base)

    # Under api/ (the JSON API and the old REST API) every error, aiohttp's own too, is JSON.
    app.middlewares.append(json_errors(base + "api/"))
    router = app.router
    router.add_get(base, page)
    if base != "/":
        # Without the slash the page's relative URLs would miss the context path.
        router.add_get(base.rstrip("/"), to_page)
    router.add_static(base + "static", STATIC_DIR, append_version=False)
    router.add_get(base + "api/openapi.json", openapi)

    add("GET", "api/v1/session", "read", api.session)
    add("GET", "api/v1/jobs", "read", api.jobs)
    add("GET", "api/v1/jobs/{name}", "read", api.job)
    add("GET", "api/v1/jobs/{name}/runs", "read", api.history)
    add("POST", "api/v1/jobs/{name}/run", "write", api.start)
    add("POST", "api/v1/jobs/{name}/cancel", "write", api.cancel)
    add("POST", "api/v1/run-all", "write", api.run_all)
    add("GET", "api/v1/runs/{run_id}", "read", api.run)
    add("GET", "api/v1/runs/{run_id}/logs", "read", streams.logs)
    add("GET", "api/v1/events", "read", streams.events)
    add("GET", "api/v1/replication", "read", api.replication)

    # The old service's API, at the same paths under the context path (its page used
    # "api/jobs/" with a slash).
    add("GET", "api/jobs/status", "read", old.status, via="rest")
    add("PUT", "api/job/{name}", "write", old.run_job, via="rest")
    add("PUT", "api/jobs", "write", old.run_all, via="rest")
    add("PUT", "api/jobs/", "write", old.run_all, via="rest")
    router.add_get(base + "api/sys/profile", old.profile)  # the old one asked no permission

    async def on_response_prepare(request: web.Request, response: web.StreamResponse) -> None:
        # Static files: revalidate every time, so an upgraded daemon serves its new page.
        if request.path.startswith(base + "static/"):
            response.headers["Cache-Control"] = "no-cache"
            response.headers["X-Content-Type-Options"] = "nosniff"

    async def on_shutdown(_app: web.Application) -> None:
        # Open streams end now; otherwise the listener would wait for them at shutdown.
        stopping.set()

    app.on_response_prepare.append(on_response_prepare)
    app.on_shutdown.append(on_shutdown)
