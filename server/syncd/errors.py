"""The daemon's exception hierarchy, rooted at SyncdError.

Messages are built from identifiers so that an operator reading one knows what to type next.
The mapping to gRPC status codes lives in one table (`syncd.rpc.errors`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# Error messages and trailers quote at most this many characters of what a caller sent: a 100 KB
# name must not become a 100 KB message, trailer or log line.
INPUT_QUOTE_LIMIT = 200
# A message composed elsewhere (a job's validator) from input is cut to about this length.
MESSAGE_LIMIT = 300


def quote_input(value: object, limit: int = INPUT_QUOTE_LIMIT) -> str:
    """`repr` of at most `limit` characters of an input, saying how long it was when cut."""
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value)
        return f"{value[:limit]!r}… ({len(value)} characters)"
    try:
        text = repr(value)
    except (RecursionError, ValueError):  # a nested or huge value: its type says enough
        return f"<{type(value).__name__}>"
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def bounded(text: str, limit: int = INPUT_QUOTE_LIMIT) -> str:
    """An identifier taken from input, kept on an error: itself, or its first `limit` chars."""
    return text if len(text) <= limit else text[:limit] + "…"


def clip(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """A message that may embed input, at most about `limit` characters: head and tail are
    kept, so "'<input>' is not a date" still says what is wrong after a long input."""
    if len(text) <= limit:
        return text
    tail = limit // 4
    return f"{text[: limit - tail]}…[{len(text) - limit} characters cut]…{text[-tail:]}"


def closest(name: str, candidates: Iterable[str], limit: int = 3) -> list[str]:
    """The existing names nearest to `name`, for "did you mean" messages."""
    if len(name) > INPUT_QUOTE_LIMIT:
        return []  # nothing is named that long, and matching it would cost O(len²)
    pool = list(candidates)
    by_lower = {c.lower(): c for c in pool}
    hits = difflib.get_close_matches(name.lower(), list(by_lower), n=limit, cutoff=0.5)
    return [by_lower[h] for h in hits]


def _did_you_mean(suggestions: list[str]) -> str:
    return f"; did you mean {', '.join(suggestions)}?" if suggestions else ""


class SyncdError(Exception):
    """Root of every error the daemon raises on purpose."""


class ConfigError(SyncdError, ValueError):
    """Raised by the config loader: a bad key or value, named by its key path."""

    def __init__(self, key_path: str, problem: str) -> None:
        self.key_path = key_path
        self.problem = problem
        super().__init__(f"config: {key_path}: {problem}")


class BeanNotFoundError(SyncdError, LookupError):
    """Raised by the registry when no bean has the given name."""

    def __init__(self, name: str, suggestions: list[str]) -> None:
        self.name = bounded(name)
        self.suggestions = suggestions
        super().__init__(f"no bean named {quote_input(name)}{_did_you_mean(suggestions)}")


class OperationNotFoundError(SyncdError, LookupError):
    """Raised when a bean has no operation of the given name."""

    def __init__(self, bean: str, operation: str, suggestions: list[str]) -> None:
        self.bean = bean
        self.operation = bounded(operation)
        self.suggestions = suggestions
        super().__init__(
            f"bean {bean} has no operation {quote_input(operation)}{_did_you_mean(suggestions)}"
        )


class AttributeNotFoundError(SyncdError, LookupError):
    """Raised when a bean has no attribute of the given name."""

    def __init__(self, bean: str, attribute: str, suggestions: list[str]) -> None:
        self.bean = bean
        self.attribute = bounded(attribute)
        self.suggestions = suggestions
        super().__init__(
            f"bean {bean} has no attribute {quote_input(attribute)}{_did_you_mean(suggestions)}"
        )


class RunNotFoundError(SyncdError, LookupError):
    """Raised when no run has the given id."""

    def __init__(self, run_id: str) -> None:
        self.run_id = bounded(run_id)
        super().__init__(f"no run with id {quote_input(run_id)}")


class InvalidArgumentError(SyncdError, ValueError):
    """Raised when an operation's arguments are wrong; names the parameter when there is one.

    `problem` may embed the input (a validator's "'<value>' is not a date"): it is clipped.
    """

    def __init__(self, operation: str, problem: str, parameter: str | None = None) -> None:
        self.operation = operation
        self.parameter = bounded(parameter) if parameter is not None else None
        self.problem = clip(problem)
        where = f"parameter {quote_input(parameter)} of {operation}" if parameter else operation
        super().__init__(f"{where}: {self.problem}")


class NotAJobError(InvalidArgumentError):
    """Raised when a run operation (start, cancel, pause) names a bean that is not a job."""

    def __init__(self, operation: str, bean: str) -> None:
        self.bean = bounded(bean)
        super().__init__(operation, f"{self.bean} is not a job", "bean")


class AlreadyRunningError(SyncdError):
    """Raised when a run is asked for while the bean already has one; carries that run's id
    and, in cluster mode, the replica that runs it."""

    def __init__(self, bean: str, run_id: str, replica: str = "") -> None:
        self.bean = bean
        self.run_id = run_id
        self.replica = replica
        where = f" on replica {replica}" if replica else ""
        super().__init__(f"Already running: {bean} has run {run_id} under way{where}")


class SlotClaimedError(SyncdError):
    """Raised (cluster mode) when a scheduled slot of a job was claimed already, by this or
    another replica: each (job, nominal slot time) runs once, whoever fires it."""

    def __init__(self, bean: str, slot: str, run_id: str, replica: str) -> None:
        self.bean = bean
        self.slot = slot
        self.run_id = run_id
        self.replica = replica
        super().__init__(f"{bean}'s slot {slot} was claimed by run {run_id} on replica {replica}")


class DrainingError(SyncdError):
    """Raised when a new run is asked for while the daemon is shutting down."""

    def __init__(self) -> None:
        super().__init__("the daemon is shutting down and starts no new runs")


class NotRunningError(SyncdError):
    """Raised when an operation needs a run under way (cancel) and there is none."""

    def __init__(self, bean: str) -> None:
        self.bean = bean
        super().__init__(f"{bean} has no run under way")


class DuplicateBeanError(SyncdError, KeyError):
    """Raised by the registry when a second bean claims a name."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"a bean named {name!r} is registered already")

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class PackLoadError(SyncdError, ImportError):
    """Raised when a job pack named in config or by an entry point cannot be loaded."""

    def __init__(self, ref: str, problem: str) -> None:
        self.ref = ref
        super().__init__(f"job pack {ref!r}: {problem}")


class InstanceLockedError(SyncdError):
    """Raised at start-up when another daemon holds the state directory's lock."""

    def __init__(self, lock_path: str, holder: str) -> None:
        self.lock_path = lock_path
        super().__init__(
            f"another syncd is running on this state directory (lock {lock_path} held by"
            f" {holder}); stop it first or use another state directory"
        )


class RunCancelled(BaseException):
    """Raised inside a job body by `RunContext.raise_if_cancelled()`.

    It derives from BaseException on purpose so that a job's `except Exception` cannot
    swallow a cancellation.
    """


class BeanDisabledError(SyncdError):
    """Raised when a run is asked of a job that cannot run here (no broker configured, …)."""

    def __init__(self, bean: str, reason: str) -> None:
        self.bean = bean
        self.reason = reason
        super().__init__(f"{bean} is disabled: {reason}")


class StartupEnvironmentError(SyncdError):
    """Raised at start-up when this machine cannot host the daemon as configured: a path that
    is not a usable directory or file, a port in use, a ledger that cannot be opened or written.
    Names the config key or path first, so the operator knows what to fix."""

    def __init__(self, subject: str, problem: str) -> None:
        self.subject = subject
        self.problem = problem
        super().__init__(f"{subject}: {problem}")


class LedgerUnavailableError(SyncdError):
    """Raised when the run ledger cannot be opened, written or read: disk full, read-only,
    locked by another writer, its file deleted or replaced, its database unreachable.

    `problem` is the short reason an operator acts on ("disk full"); the message is one line.
    """

    def __init__(self, problem: str, *, action: str = "written") -> None:
        self.problem = problem
        super().__init__(f"the run ledger cannot be {action}: {problem}")


class UnauthenticatedError(SyncdError):
    """Raised by the security guard when a caller brings no credential, or one it does not
    know. The message never quotes the credential."""


class PermissionDeniedError(SyncdError):
    """Raised by the security guard when the caller's role is below what the action needs."""

    def __init__(self, actor: str, role: str, action: str, needed: str) -> None:
        self.actor = actor
        self.role = role
        self.action = action
        self.needed = needed
        super().__init__(f"{actor} ({role}) may not {action}: that needs the {needed} role")


class ReplicationError(SyncdError):
    """A replication request that cannot be served as asked (raised by `syncd.replication`)."""


class CursorGapError(ReplicationError):
    """ApplyChanges found its stored cursor below the batch's start: earlier changes are
    missing. `stored` is where the sender must resume from."""

    def __init__(self, stream: str, stored: int, from_cursor: int) -> None:
        self.stream = stream
        self.stored = stored
        self.from_cursor = from_cursor
        super().__init__(
            f"gap in stream {stream}: this repository holds changes up to {stored}, the batch"
            f" starts after {from_cursor}; send the earlier changes first"
        )


class ClockAheadError(ReplicationError):
    """A batch carries a version from a clock further ahead than `max_drift` allows."""

    def __init__(self, origin: str, ahead_ms: int, max_drift_ms: int) -> None:
        self.origin = origin
        self.ahead_ms = ahead_ms
        super().__init__(
            f"clock_ahead: a change from {bounded(origin)} is {ahead_ms / 1000:.1f}s ahead of"
            f" this repository's clock (at most {max_drift_ms / 1000:.0f}s is accepted)"
        )


class PeerUnavailableError(ReplicationError):
    """A peer repository could not be reached, or did not answer in time."""

    def __init__(self, peer: str, problem: str) -> None:
        self.peer = peer
        self.problem = problem
        super().__init__(f"repository {bounded(peer)} is unavailable: {clip(problem)}")


class BundleError(ReplicationError, ValueError):
    """A bundle file that cannot be imported (corrupt, for another repository, out of order)."""

    def __init__(self, path: str, problem: str) -> None:
        self.problem = problem
        super().__init__(f"bundle {bounded(path)}: {problem}")
