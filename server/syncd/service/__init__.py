"""The run service: the one way anything starts, cancels, pauses, resumes or reads runs (typed
requests and results), and the scheduling policy over it: scheduler callbacks, start-up
catch-up, dependency chains, pauses. The run claim it takes lives with the coordinator
(`syncd.execution.claim`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from syncd._exports import public_names

if TYPE_CHECKING:
    from syncd.service.catchup import catch_up
    from syncd.service.orchestrator import Orchestrator
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
    from syncd.service.runservice import RunService

__all__ = [
    "CancelRequest",
    "Cancelled",
    "HoldRequest",
    "Holds",
    "Orchestrator",
    "RunAllRequest",
    "RunAllStarted",
    "RunService",
    "StartRequest",
    "Started",
    "catch_up",
]

__getattr__ = public_names(
    __name__,
    {
        "orchestrator": ("Orchestrator",),
        "catchup": ("catch_up",),
        "runservice": ("RunService",),
        "requests": (
            "CancelRequest",
            "Cancelled",
            "HoldRequest",
            "Holds",
            "RunAllRequest",
            "RunAllStarted",
            "StartRequest",
            "Started",
        ),
    },
)
