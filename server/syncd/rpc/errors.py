"""Domain errors to gRPC status codes: the one table, and the one place a call is answered with it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import quote

import grpc
import structlog

from syncd.errors import (
    INPUT_QUOTE_LIMIT,
    AlreadyRunningError,
    AttributeNotFoundError,
    BeanDisabledError,
    BeanNotFoundError,
    BundleError,
    ClockAheadError,
    ConfigError,
    CursorGapError,
    DrainingError,
    InvalidArgumentError,
    LedgerUnavailableError,
    NotAJobError,
    NotRunningError,
    OperationNotFoundError,
    PeerUnavailableError,
    PermissionDeniedError,
    ReplicationError,
    RunNotFoundError,
    SlotClaimedError,
    SyncdError,
    UnauthenticatedError,
    clip,
)

log = structlog.get_logger("syncd.rpc")

STATUS_CODES: dict[type[SyncdError], grpc.StatusCode] = {
    BeanNotFoundError: grpc.StatusCode.NOT_FOUND,
    OperationNotFoundError: grpc.StatusCode.NOT_FOUND,
    AttributeNotFoundError: grpc.StatusCode.NOT_FOUND,
    RunNotFoundError: grpc.StatusCode.NOT_FOUND,
    InvalidArgumentError: grpc.StatusCode.INVALID_ARGUMENT,
    NotAJobError: grpc.StatusCode.INVALID_ARGUMENT,
    AlreadyRunningError: grpc.StatusCode.FAILED_PRECONDITION,
    SlotClaimedError: grpc.StatusCode.FAILED_PRECONDITION,  # a slot runs once in a cluster
    BeanDisabledError: grpc.StatusCode.FAILED_PRECONDITION,
    NotRunningError: grpc.StatusCode.FAILED_PRECONDITION,
    DrainingError: grpc.StatusCode.UNAVAILABLE,
    LedgerUnavailableError: grpc.StatusCode.UNAVAILABLE,  # disk full, locked, database down
    ConfigError: grpc.StatusCode.FAILED_PRECONDITION,  # a reload found the file invalid
    UnauthenticatedError: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDeniedError: grpc.StatusCode.PERMISSION_DENIED,
    ReplicationError: grpc.StatusCode.FAILED_PRECONDITION,
    CursorGapError: grpc.StatusCode.FAILED_PRECONDITION,  # resume from syncd-gap-stored
    ClockAheadError: grpc.StatusCode.FAILED_PRECONDITION,
    PeerUnavailableError: grpc.StatusCode.UNAVAILABLE,
    BundleError: grpc.StatusCode.INVALID_ARGUMENT,
}

# Trailing metadata that carries identifiers a client acts on.
RUN_ID_KEY = "syncd-run-id"
REPLICA_KEY = "syncd-replica"  # cluster mode: the replica that holds the run
PARAMETER_KEY = "syncd-parameter"
DISABLED_KEY = "syncd-disabled"  # the disabled bean's name: "why" is in the message
GAP_STORED_KEY = "syncd-gap-stored"  # ApplyChanges: the cursor the sender resumes from


def status_code(exc: SyncdError) -> grpc.StatusCode:
    for cls in type(exc).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]
    return grpc.StatusCode.INTERNAL


# What a metadata value may hold as is: printable ASCII but "%", which escapes the rest.
_PLAIN = frozenset(chr(c) for c in range(0x20, 0x7F)) - {"%"}


def metadata_value(text: str, limit: int = INPUT_QUOTE_LIMIT) -> str:
    """`text` as a metadata value: gRPC carries only printable ASCII in a text header, so
    anything else is percent-encoded (UTF-8), and at most `limit` characters of it are sent."""
    cut = text[:limit]
    if all(ch in _PLAIN for ch in cut):
        return cut
    return "".join(ch if ch in _PLAIN else quote(ch, safe="", errors="replace") for ch in cut)


def trailing_metadata(exc: SyncdError) -> tuple[tuple[str, str], ...]:
    if isinstance(exc, AlreadyRunningError):
        if exc.replica:
            return (
                (RUN_ID_KEY, metadata_value(exc.run_id)),
                (REPLICA_KEY, metadata_value(exc.replica)),
            )
        return ((RUN_ID_KEY, metadata_value(exc.run_id)),)
    if isinstance(exc, InvalidArgumentError) and exc.parameter:
        return ((PARAMETER_KEY, metadata_value(exc.parameter)),)
    if isinstance(exc, BeanDisabledError):
        return ((DISABLED_KEY, metadata_value(exc.bean)),)
    if isinstance(exc, CursorGapError):
        return ((GAP_STORED_KEY, str(exc.stored)),)
    return ()


# A status message travels in a header: far below gRPC's 16 KiB metadata limit.
DETAILS_LIMIT = 2000


@asynccontextmanager
async def mapped_errors(
    context: grpc.aio.ServicerContext[object, object], method: str
) -> AsyncIterator[None]:
    """Answers a call's domain error with its status code and a bounded message; anything
    else is INTERNAL, logged with its traceback."""
    started = time.perf_counter()
    try:
        yield
    except SyncdError as exc:
        code = status_code(exc)
        # Messages quote input bounded already; the clip guards what a job pack composed.
        message = clip(str(exc), DETAILS_LIMIT)
        log.info("rpc.refused", method=method, code=code.name, error=message)
        context.set_trailing_metadata(trailing_metadata(exc))
        await context.abort(code, message)
    except (asyncio.CancelledError, grpc.aio.AbortError):
        raise
    except Exception as exc:
        log.exception("rpc.failed", method=method)
        await context.abort(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")
    else:
        log.debug("rpc.ok", method=method, ms=round((time.perf_counter() - started) * 1e3, 3))
