"""The run service: the one way anything starts, cancels, pauses, resumes or reads runs, and
the run claim behind it.

`RunService` is loaded on first use: the run coordinator imports the claim from this package,
and the service imports the coordinator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from syncd.service.claim import Claim, InMemoryRunClaim, RunClaim
from syncd.service.requests import (
    Cancelled,
    CancelRequest,
    HoldRequest,
    Holds,
    RunAllRequest,
    RunAllStarted,
    Started,
    StartRequest,
)

if TYPE_CHECKING:
    from syncd.service.runservice import RunService

__all__ = [
    "CancelRequest",
    "Cancelled",
    "Claim",
    "HoldRequest",
    "Holds",
    "InMemoryRunClaim",
    "RunAllRequest",
    "RunAllStarted",
    "RunClaim",
    "RunService",
    "StartRequest",
    "Started",
]


def __getattr__(name: str) -> Any:
    if name == "RunService":
        from syncd.service.runservice import RunService

        return RunService
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
