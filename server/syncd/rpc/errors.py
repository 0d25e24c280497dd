"""Domain errors to gRPC status codes: the one table."""

from __future__ import annotations

import grpc

from syncd.errors import (
    AlreadyRunningError,
    AttributeNotFoundError,
    BeanDisabledError,
    BeanNotFoundError,
    ConfigError,
    DrainingError,
    InvalidArgumentError,
    LedgerUnavailableError,
    NotRunningError,
    OperationNotFoundError,
    RunNotFoundError,
    SyncdError,
)

STATUS_CODES: dict[type[SyncdError], grpc.StatusCode] = {
    BeanNotFoundError: grpc.StatusCode.NOT_FOUND,
    OperationNotFoundError: grpc.StatusCode.NOT_FOUND,
    AttributeNotFoundError: grpc.StatusCode.NOT_FOUND,
    RunNotFoundError: grpc.StatusCode.NOT_FOUND,
    InvalidArgumentError: grpc.StatusCode.INVALID_ARGUMENT,
    AlreadyRunningError: grpc.StatusCode.FAILED_PRECONDITION,
    BeanDisabledError: grpc.StatusCode.FAILED_PRECONDITION,
    NotRunningError: grpc.StatusCode.FAILED_PRECONDITION,
    DrainingError: grpc.StatusCode.UNAVAILABLE,
    LedgerUnavailableError: grpc.StatusCode.UNAVAILABLE,  # disk full, locked, database down
    ConfigError: grpc.StatusCode.FAILED_PRECONDITION,  # a reload found the file invalid
}

# Trailing metadata that carries identifiers a client acts on.
RUN_ID_KEY = "syncd-run-id"
PARAMETER_KEY = "syncd-parameter"


def status_code(exc: SyncdError) -> grpc.StatusCode:
    for cls in type(exc).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]
    return grpc.StatusCode.INTERNAL


def trailing_metadata(exc: SyncdError) -> tuple[tuple[str, str], ...]:
    if isinstance(exc, AlreadyRunningError):
        return ((RUN_ID_KEY, exc.run_id),)
    if isinstance(exc, InvalidArgumentError) and exc.parameter:
        return ((PARAMETER_KEY, exc.parameter),)
    return ()
