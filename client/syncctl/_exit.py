"""syncctl's exit codes, and the one table that maps gRPC outcomes onto them.

Kept free of grpc imports so usage errors and `--help` stay fast; RPC errors are read through the
small `RpcErrorLike` surface that `grpc.RpcError` (a `grpc.Call`) provides.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Protocol


class ExitCode(enum.IntEnum):
    """What syncctl's exit status means. Scripts rely on these numbers: never renumber."""

    OK = 0
    FAILED = 1  # the request was fine but the thing failed: a `--wait` run that did not succeed
    USAGE = 2  # bad command line (argparse's own code)
    NOT_FOUND = 3  # no such bean, operation, attribute or run
    ALREADY_RUNNING = 4  # the bean already has a run under way
    INVALID_ARGUMENT = 5  # the daemon refused an argument's count, name or value
    UNAVAILABLE = 6  # the daemon answered but will not serve: draining, or no answer in time
    UNREACHABLE = 7  # no daemon at the address (LSB's "program is not running")
    BEAN_FAILING = 8  # `status` found a bean failing or stuck, or the ledger unhealthy
    DISABLED = 9  # the job cannot run here: disabled, or a setting it needs is missing
    UNAUTHENTICATED = 10  # no credential, or one the daemon does not know
    PERMISSION_DENIED = 11  # the credential's role is below what the request needs
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)


DESCRIPTIONS: dict[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.FAILED: "the request failed (e.g. a `run --wait` whose run did not succeed)",
    ExitCode.USAGE: "usage error: unknown command or option, missing argument",
    ExitCode.NOT_FOUND: "no such bean, operation, attribute or run",
    ExitCode.ALREADY_RUNNING: "the bean is already running (the message names the run id)",
    ExitCode.INVALID_ARGUMENT: "the daemon refused an argument (the message names the parameter)",
    ExitCode.UNAVAILABLE: "the daemon is up but not serving: draining for shutdown, or timed out",
    ExitCode.UNREACHABLE: "the daemon is not reachable (the message names the socket)",
    ExitCode.BEAN_FAILING: (
        "`status`: a bean is failing or stuck, or the run ledger is unhealthy"
        " (usable as a monitoring check); `replicas`: a replica is lost"
    ),
    ExitCode.DISABLED: "the job is disabled and cannot run (the message says why)",
    ExitCode.UNAUTHENTICATED: (
        "the daemon does not know the caller: no token or client certificate, or an unknown one"
    ),
    ExitCode.PERMISSION_DENIED: (
        "the caller's role is below what the request needs (the message names both)"
    ),
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
}

# The table: gRPC status code name -> exit code. Two codes are refined by `classify` below:
# FAILED_PRECONDITION is "already running" or "disabled" only when the daemon says so (its
# trailer), and UNAVAILABLE raised by the channel itself (nothing listening) is UNREACHABLE
# rather than "up but unavailable".
BY_STATUS: dict[str, ExitCode] = {
    "OK": ExitCode.OK,
    "NOT_FOUND": ExitCode.NOT_FOUND,
    "INVALID_ARGUMENT": ExitCode.INVALID_ARGUMENT,
    "OUT_OF_RANGE": ExitCode.INVALID_ARGUMENT,
    "FAILED_PRECONDITION": ExitCode.FAILED,
    "ALREADY_EXISTS": ExitCode.ALREADY_RUNNING,
    "UNAVAILABLE": ExitCode.UNAVAILABLE,
    "DEADLINE_EXCEEDED": ExitCode.UNAVAILABLE,
    "CANCELLED": ExitCode.INTERRUPTED,
    "UNAUTHENTICATED": ExitCode.UNAUTHENTICATED,
    "PERMISSION_DENIED": ExitCode.PERMISSION_DENIED,
}

RUN_ID_METADATA = "syncd-run-id"
DISABLED_METADATA = "syncd-disabled"

# What gRPC core says when it never reached a server, or lost it; a draining daemon's own
# UNAVAILABLE carries its message instead. (Substrings, not a regex: compiling one costs start-up.)
_TRANSPORT_FAILURES = (
    "failed to connect to all addresses",
    "connect failed",
    "connection refused",
    "no such file or directory",
    "socket closed",
    "connection reset",
    "broken pipe",
    "permission denied",
)


class SyncctlError(Exception):
    """A failure syncctl reports on stderr and turns into an exit code."""

    def __init__(self, code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _StatusCodeLike(Protocol):
    @property
    def name(self) -> str: ...


class RpcErrorLike(Protocol):
    """The part of `grpc.RpcError` (which is also a `grpc.Call`) this module reads."""

    def code(self) -> _StatusCodeLike: ...

    def details(self) -> str | None: ...

    def trailing_metadata(self) -> Sequence[tuple[str, str | bytes]] | None: ...


def _trailer(error: RpcErrorLike, wanted: str) -> str | None:
    for key, value in error.trailing_metadata() or ():
        if key == wanted:
            return value.decode() if isinstance(value, bytes) else value
    return None


def run_id_of(error: RpcErrorLike) -> str | None:
    """The active run's id the daemon attaches to an "already running" refusal."""
    return _trailer(error, RUN_ID_METADATA)


def classify(error: RpcErrorLike) -> ExitCode:
    """The exit code for a failed RPC."""
    name = error.code().name
    details = error.details() or ""
    if name == "UNAVAILABLE" and any(f in details.lower() for f in _TRANSPORT_FAILURES):
        return ExitCode.UNREACHABLE
    if name == "FAILED_PRECONDITION" and (
        run_id_of(error) is not None or details.lower().startswith("already running")
    ):
        return ExitCode.ALREADY_RUNNING
    if name == "FAILED_PRECONDITION" and _trailer(error, DISABLED_METADATA) is not None:
        return ExitCode.DISABLED
    return BY_STATUS.get(name, ExitCode.FAILED)


def _transport_reason(details: str) -> str:
    """ "No such file or directory" out of gRPC core's long connect-failure text."""
    # gRPC core ends it with the OS error: "... connect failed: addr: unix:/x error: <reason>".
    return details.rsplit(": ", 1)[-1] if "failed to connect" in details else details


def error_from_rpc(error: RpcErrorLike, *, address: str, timeout: float | None) -> SyncctlError:
    """A SyncctlError whose message says what went wrong in the operator's terms."""
    code = classify(error)
    details = (error.details() or "").strip()
    status = error.code().name
    if code is ExitCode.UNREACHABLE:
        where = address.removeprefix("unix:") if address.startswith("unix:") else address
        noun = "socket" if address.startswith("unix:") else "address"
        message = (
            f"cannot reach syncd at {noun} {where}: {_transport_reason(details)} "
            "(is the daemon running? see --address and SYNCD_ADDRESS)"
        )
    elif status == "DEADLINE_EXCEEDED":
        limit = f" within {timeout:g}s" if timeout else ""
        message = f"syncd at {address} did not answer{limit} (raise --timeout?)"
    elif code is ExitCode.ALREADY_RUNNING:
        run_id = run_id_of(error)
        message = details or "already running"
        if run_id and run_id not in message:
            message = f"{message} (run {run_id})"
    elif code is ExitCode.UNAVAILABLE:
        message = f"syncd is unavailable: {details}" if details else "syncd is unavailable"
    elif details:
        message = details
    else:
        message = f"request failed: {status}"
    return SyncctlError(code, message)
