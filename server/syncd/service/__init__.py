"""The run service: scheduler callbacks, start-up catch-up, dependency chains, pauses and
the outcomes of runs that did not start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from syncd._exports import public_names

if TYPE_CHECKING:
    from syncd.service.catchup import catch_up
    from syncd.service.orchestrator import Orchestrator

__all__ = [
    "Orchestrator",
    "catch_up",
]

__getattr__ = public_names(
    __name__,
    {
        "orchestrator": ("Orchestrator",),
        "catchup": ("catch_up",),
    },
)
