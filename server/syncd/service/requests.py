"""What the run service is asked and what it answers: typed, frozen, edge-neutral."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from syncd.enums import Trigger
from syncd.values import Value

if TYPE_CHECKING:  # a Run is the coordinator's; imported for the annotations only
    from syncd.execution.run import Run
    from syncd.ledger.model import RunRecord


@dataclass(frozen=True, slots=True, kw_only=True)
class StartRequest:
    """Start a run of job `bean` (its resolved name). `arguments` are bound already (by the
    job's trigger operation, see `RunService.bind`); None means the job's defaults."""

    bean: str
    actor: str
    arguments: Mapping[str, Value] | None = None
    trigger: Trigger = Trigger.MANUAL
    slot_time: datetime | None = None
    with_dependants: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Started:
    """The run that started, and the jobs that follow it when dependants were asked for."""

    run: Run
    chain: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelRequest:
    bean: str
    actor: str
    reason: str = "request"


@dataclass(frozen=True, slots=True, kw_only=True)
class Cancelled:
    """The run asked to stop; None when the job had no run under way here. In cluster mode a
    run under way on another replica is `elsewhere` (its record as last read), `replica` the
    one asked to stop it."""

    run: Run | None
    elsewhere: RunRecord | None = None
    replica: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class HoldRequest:
    """Pause or resume one job, or every job when `bean` is None."""

    bean: str | None
    actor: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Holds:
    """The holds in force after a pause or resume: job (or "*") → since when."""

    holds: Mapping[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunAllRequest:
    actor: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RunAllStarted:
    """The enabled jobs, in the order they run one after another."""

    jobs: tuple[str, ...]
