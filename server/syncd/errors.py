"""The daemon's exception hierarchy, rooted at SyncdError.

Messages are built from identifiers so that an operator reading one knows what to type next.
The mapping to gRPC status codes lives in one table (`syncd.rpc.errors`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(name: str, candidates: Iterable[str], limit: int = 3) -> list[str]:
    """The existing names nearest to `name`, for "did you mean" messages."""
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
        self.name = name
        self.suggestions = suggestions
        super().__init__(f"no bean named {name!r}{_did_you_mean(suggestions)}")


class OperationNotFoundError(SyncdError, LookupError):
    """Raised when a bean has no operation of the given name."""

    def __init__(self, bean: str, operation: str, suggestions: list[str]) -> None:
        self.bean = bean
        self.operation = operation
        self.suggestions = suggestions
        super().__init__(f"bean {bean} has no operation {operation!r}{_did_you_mean(suggestions)}")


class AttributeNotFoundError(SyncdError, LookupError):
    """Raised when a bean has no attribute of the given name."""

    def __init__(self, bean: str, attribute: str, suggestions: list[str]) -> None:
        self.bean = bean
        self.attribute = attribute
        self.suggestions = suggestions
        super().__init__(f"bean {bean} has no attribute {attribute!r}{_did_you_mean(suggestions)}")


class RunNotFoundError(SyncdError, LookupError):
    """Raised when no run has the given id."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run with id {run_id!r}")


class InvalidArgumentError(SyncdError, ValueError):
    """Raised when an operation's arguments are wrong; names the parameter when there is one."""

    def __init__(self, operation: str, problem: str, parameter: str | None = None) -> None:
        self.operation = operation
        self.parameter = parameter
        self.problem = problem
        where = f"parameter {parameter!r} of {operation}" if parameter else operation
        super().__init__(f"{where}: {problem}")


class AlreadyRunningError(SyncdError):
    """Raised when a run is asked for while the bean already has one; carries that run's id."""

    def __init__(self, bean: str, run_id: str) -> None:
        self.bean = bean
        self.run_id = run_id
        super().__init__(f"Already running: {bean} has run {run_id} under way")


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


class LedgerUnavailableError(SyncdError):
    """Raised when the run ledger cannot be opened, written or read: disk full, read-only,
    locked by another writer, its file deleted or replaced, its database unreachable.

    `problem` is the short reason an operator acts on ("disk full"); the message is one line.
    """

    def __init__(self, problem: str, *, action: str = "written") -> None:
        self.problem = problem
        super().__init__(f"the run ledger cannot be {action}: {problem}")
