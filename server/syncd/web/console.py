"""The web console under `http.context_path` (default `/sync/`): the page, its static assets,
its JSON API and live streams, the old TIS-SYNC REST API, and the OpenAPI document.

API routes are declared with the action they do (the rule book in `syncd.security` says which
role that needs; see `_auth`), and each handler gets the checked caller. State changes and
refusals of them are written to the audit trail. The page, its assets, the OpenAPI document and
the old profile endpoint are open: the page must load to ask for a token. Opening the page with
`?token=<login token>` logs the browser in (a session cookie) and redirects to the clean URL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from syncd.ledger.audit import AuditEntry
from syncd.security import Action, Principal, changes_state, held_back_note
from syncd.web._api import JsonApi
from syncd.web._auth import SESSION_COOKIE, SESSION_LIFETIME, Access
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

WebAccess = Access  # for the daemon: the login link's token

Handler = Callable[[web.Request, Principal], Awaitable[web.StreamResponse]]


def install(app: web.Application, plane: WebPlane) -> Access:
    """Register the console's routes on the HTTP listener's application; the access rules
    (with the one-time login token) come back for the daemon to print the login link."""
    base = plane.config.context_path  # starts and ends with "/"
    access = Access(plane.config, plane.guard)
    stopping = asyncio.Event()
    api = JsonApi(plane, access)
    old = RestCompat(plane)
    streams = Streams(plane, stopping)

    async def audit(
        request: web.Request, action: Action, who: Principal | None, outcome: str, detail: str
    ) -> None:
        if plane.audit is None:
            return
        await plane.audit(
            AuditEntry(
                at=plane.clock.now(),
                actor=who.actor if who else "unknown",
                role=who.role.label if who else "none",
                address=who.address if who else (request.remote or "unknown"),
                action=action.value,
                target=request.match_info.get("name", "") or request.path,
                outcome=outcome,
                detail=detail,
            )
        )

    def guarded(
        action: Action, handler: Handler
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def checked(request: web.Request) -> web.StreamResponse:
            try:
                caller = access.check(request, action)
            except web.HTTPException as exc:
                # A refused write, or a refused credential; not a read without any (polling).
                sent = "Authorization" in request.headers
                if changes_state(action) or (exc.status == 401 and sent):
                    admitted, held_back = plane.guard.refusals.admit(request.remote or "unknown")
                    if admitted:
                        detail = held_back_note(exc.text or "", held_back)
                        await audit(request, action, None, f"HTTP {exc.status}", detail)
                raise
            if not changes_state(action):
                return await handler(request, caller)
            try:
                response = await handler(request, caller)
            except web.HTTPException as exc:
                await audit(request, action, caller, f"HTTP {exc.status}", exc.text or "")
                raise
            except Exception as exc:
                await audit(request, action, caller, "refused", str(exc)[:200])
                raise
            await audit(request, action, caller, "ok", "")
            return response

        return checked

    def add(method: str, path: str, action: Action, handler: Handler) -> None:
        app.router.add_route(method, base + path, guarded(action, handler))

    async def page(request: web.Request) -> web.StreamResponse:
        token = request.query.get("token")
        if token is not None:
            session = access.log_in(request, token)
            response = web.HTTPFound(base)
            response.set_cookie(
                SESSION_COOKIE,
                session,
                path=base,
                httponly=True,
                samesite="Strict",
                secure=request.secure,
                max_age=int(SESSION_LIFETIME),
            )
            raise response
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

    add("GET", "api/v1/session", Action.READ, api.session)
    add("GET", "api/v1/jobs", Action.READ, api.jobs)
    add("GET", "api/v1/jobs/{name}", Action.READ, api.job)
    add("GET", "api/v1/jobs/{name}/runs", Action.READ, api.history)
    add("POST", "api/v1/jobs/{name}/run", Action.RUN, api.start)
    add("POST", "api/v1/jobs/{name}/cancel", Action.CANCEL, api.cancel)
    add("POST", "api/v1/run-all", Action.RUN, api.run_all)
    add("GET", "api/v1/runs/{run_id}", Action.READ, api.run)
    add("GET", "api/v1/runs/{run_id}/logs", Action.READ, streams.logs)
    add("GET", "api/v1/events", Action.READ, streams.events)
    add("GET", "api/v1/replication", Action.READ, api.replication)

    # The old service's API, at the same paths under the context path (its page used
    # "api/jobs/" with a slash).
    add("GET", "api/jobs/status", Action.READ, old.status)
    add("PUT", "api/job/{name}", Action.RUN, old.run_job)
    add("PUT", "api/jobs", Action.RUN, old.run_all)
    add("PUT", "api/jobs/", Action.RUN, old.run_all)
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
    return access
