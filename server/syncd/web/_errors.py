"""JSON error answers for the API routes, whatever raised them.

Domain refusals (`syncd.errors`, raised by the run service) become HTTP answers through the one
table below, as `rpc.errors` maps them to gRPC codes. Handlers raise `_http.error(...)` for
what only HTTP knows, whose body is JSON already. What aiohttp raises on its own —
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

from syncd.errors import (
    AlreadyRunningError,
    AttributeNotFoundError,
    BeanDisabledError,
    BeanNotFoundError,
    ConfigError,
    DrainingError,
    InvalidArgumentError,
    LedgerUnavailableError,
    NotAJobError,
    NotRunningError,
    OperationNotFoundError,
    PermissionDeniedError,
    RunNotFoundError,
    SlotClaimedError,
    SyncdError,
    UnauthenticatedError,
    quote_input,
)
from syncd.web._http import JSON_TYPE, error, reply

log = structlog.get_logger("syncd.web")

HTTP_STATUS: dict[type[SyncdError], int] = {
    BeanNotFoundError: 404,
    OperationNotFoundError: 404,
    AttributeNotFoundError: 404,
    RunNotFoundError: 404,
    InvalidArgumentError: 400,
    NotAJobError: 400,
    AlreadyRunningError: 409,
    SlotClaimedError: 409,  # a slot runs once in a cluster
    BeanDisabledError: 409,
    NotRunningError: 409,
    ConfigError: 409,  # a reload found the file invalid
    DrainingError: 503,
    LedgerUnavailableError: 503,  # disk full, locked, database down
    UnauthenticatedError: 401,
    PermissionDeniedError: 403,
}


def domain_error(exc: SyncdError) -> web.HTTPException | None:
    """The HTTP answer to a domain refusal; None when the table has no row for it (a bug)."""
    status = next((HTTP_STATUS[c] for c in type(exc).__mro__ if c in HTTP_STATUS), None)
    if status is None:
        return None
    if isinstance(exc, AlreadyRunningError):
        if exc.replica:
            return error(status, "Already running", runId=exc.run_id, replica=exc.replica)
        return error(status, "Already running", runId=exc.run_id)
    if isinstance(exc, InvalidArgumentError):
        return error(status, str(exc), parameter=exc.parameter)
    return error(status, str(exc))


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
        except SyncdError as exc:
            refusal = domain_error(exc)
            if refusal is None:
                log.exception("web.unmapped_error", method=request.method, path=request.path)
                return reply({"error": f"internal error: {type(exc).__name__}"}, 500)
            raise refusal from None
        except Exception as exc:
            log.exception("web.failed", method=request.method, path=request.path)
            return reply({"error": f"internal error: {type(exc).__name__}"}, 500)

    return middleware
