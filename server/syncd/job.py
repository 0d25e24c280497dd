"""The contract between the daemon and job packs.

A job pack is a `JobPack`: a name, optional settings (a `syncd.config.Settings` struct read
from the config table `[packs.<name>]`), and a `build` function returning `JobSpec`s. The daemon turns each
`JobSpec` into a managed bean with the job's trigger operation, the alias `run`,
`isCurrentlyRunning`, `elapsedTime` and `cancel`.

A job body is a plain function `body(ctx: RunContext) -> None` defined at module level. It runs
on a worker, never on the event loop; it reports progress and row counts through `ctx`, checks
`ctx.raise_if_cancelled()` at safe points, and raises to fail the run.

Packs are found through the entry-point group `syncd.jobs` (each entry point names a `JobPack`)
or through `module:attr` strings in the config's `daemon.packs` list. Nothing registers itself
at import time.

This module is the whole contract: a pack imports from `syncd` only what `__all__` lists here
(the import-rule test holds packs to it), so the daemon's packages can change behind it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from syncd.beans.model import Invocation, Operation, Parameter, Result
from syncd.configvalues import (
    Count,
    Duration,
    DurationAtLeast1s,
    PositiveCount,
    Settings,
    parse_duration,
)
from syncd.enums import Impact, Trigger
from syncd.errors import ConfigError, InvalidArgumentError, RunCancelled, SyncdError
from syncd.retry import Backoff, RetryNote, retrying, sleep_uncancelled
from syncd.values import Value, ValueType

__all__ = [
    "Backoff",
    "ConfigError",
    "Count",
    "Duration",
    "DurationAtLeast1s",
    "Impact",
    "InvalidArgumentError",
    "Invocation",
    "JobBody",
    "JobPack",
    "JobSpec",
    "Operation",
    "PackContext",
    "Parameter",
    "PositiveCount",
    "Result",
    "RetryNote",
    "RunCancelled",
    "RunContext",
    "Settings",
    "SyncdError",
    "Trigger",
    "Value",
    "ValueType",
    "parse_duration",
    "retrying",
    "sleep_uncancelled",
]


class RunContext(Protocol):
    """What a job body sees of its run."""

    @property
    def run_id(self) -> str: ...
    @property
    def fencing_token(self) -> int | None:
        """Cluster mode: this run's fencing token, larger than every earlier claim's of the
        same job on any replica. Record it where the run publishes its result, in the same
        transaction, and refuse to publish when a larger one is recorded already: a run that
        lost its lease then cannot overwrite a newer run's result. None on a single daemon."""
        ...

    @property
    def bean(self) -> str: ...
    @property
    def trigger(self) -> Trigger: ...
    @property
    def args(self) -> Mapping[str, Value]:
        """The trigger operation's arguments, typed and validated, by parameter name."""
        ...

    @property
    def settings(self) -> Any:
        """The pack's settings object (from `[packs.<name>]`), or None."""
        ...

    @property
    def log(self) -> Any:
        """A structlog logger bound to this run (job, run_id, trigger)."""
        ...

    def is_cancelled(self) -> bool: ...
    def raise_if_cancelled(self) -> None:
        """Raises `syncd.errors.RunCancelled` once cancellation was asked for."""
        ...

    def wait_cancelled(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds (a retry back-off, say); True as soon as cancelled."""
        ...

    def report_progress(self, done: int, total: int | None = None) -> None: ...
    def add_rows(self, *, read: int = 0, written: int = 0) -> None: ...


JobBody = Callable[[RunContext], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSpec:
    """One job, as a pack declares it."""

    name: str  # the bean's short name, e.g. "PersonOwnerRebuildJob"
    # Other names the bean answers to wherever a bean is named (old runbooks' and timetables'
    # names, e.g. "PersonElasticSearchSyncJob"); listed with the bean, never a bean of their own.
    aliases: tuple[str, ...] = ()
    trigger_operation: str  # the old service's operation name, e.g. "personOwnerRebuildJob"
    body: JobBody
    description: str
    parameters: tuple[Parameter, ...] = ()  # parameters of the trigger operation
    extra_operations: tuple[Operation, ...] = ()
    job_key: str | None = None  # the key of the old REST API (`GET /api/jobs/status`)
    settings: Any = None  # handed to the body as ctx.settings
    disabled_reason: str | None = None  # set when the job cannot run here (no broker, …)
    # The default timetable entry and dependencies; `[jobs.<name>]` overrides them.
    default_at: str | None = None  # "HH:MM", daily, UTC
    default_after: tuple[str, ...] = ()
    # The old service's environment variable holding a 6-field cron for this job.
    cron_env: str | None = None
    # Modules the body imports when it runs, imported once by the fork server that starts the
    # job processes and never by the daemon: a pack keeps its job-only imports (SQL dialects,
    # the job modules) out of the daemon's memory without each run importing them afresh.
    preload: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class PackContext:
    """What a pack's build function gets from the daemon."""

    state_dir: Path
    settings: Any  # an instance of the pack's settings_type, or None


@dataclass(frozen=True, slots=True, kw_only=True)
class JobPack:
    """A set of jobs that ship together."""

    name: str
    build: Callable[[PackContext], Sequence[JobSpec]]
    settings_type: type[Any] | None = None
    description: str = ""
    # Called by `syncd serve --seed-demo` (and `make run`): create demo data if none exists yet.
    seed_demo: Callable[[PackContext], None] | None = None
    # Adds the pack's own `syncd` subcommands to an argparse subparsers object; each subcommand
    # sets `func(args, ctx: PackContext) -> int` as its default.
    commands: Callable[[Any], None] | None = None
