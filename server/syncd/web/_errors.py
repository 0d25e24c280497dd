"""JSON error answers for the API routes, whatever raised them.

Handlers raise `_http.error(...)`, whose body is JSON already. What aiohttp raises on its own —
no route (404), wrong method (405), a body over `client_max_size` (413) — is plain text; under
the API prefix it becomes `{"error": ...}` with the same status and headers, so a script reading
the API always gets JSON. An unexpected exception is logged and answered as a JSON 500: a bug,
never an answer to input (input is refused with a 4xx where it is parsed).
"""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from syncd.errors import quote_input
from syncd.web._http import JSON_TYPE, reply

log = structlog.get_logger("syncd.web")

# Headers of aiohttp's own answer that the JSON answer keeps (405 names the allowed methods).
_KEPT_HEADERS = ("Allow", "WWW-Authenticate")


def _message(request: web.Request, exc: web.HTTPException) -> str:
    if exc.status == 404:
        return f"no API route {quote_input(request.path)}"
    if exc.status == 405:
        allowed = exc.headers.get("Allow", "")
        return f"method {quote_input(request.method)} is not allowed here (allowed: {allowed})"
    if exc.status == 413:
        return f"the body is too large (at most {request.client_max_size} bytes)"
    return exc.reason


def json_errors(prefix: str) -> Middleware:
    """A middleware answering every error under `prefix` with a JSON body."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(prefix):
            return await handler(request)
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400 or exc.content_type == JSON_TYPE:
                raise
            answer = reply({"error": _message(request, exc)}, exc.status)
            for name in _KEPT_HEADERS:
                if name in exc.headers:
                    answer.headers[name] = exc.headers[name]
            return answer
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception as exc:
            log.exception("web.failed", method=request.method, path=request.path)
            return reply({"error": f"internal error: {type(exc).__name__}"}, 500)

    return middleware
