"""Running job bodies: the run coordinator (one run per bean, cancel, the run's events) and
the executors (thread or child process per run, with its process tree).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from syncd._exports import public_names

if TYPE_CHECKING:
    from syncd.execution.claim import Claim, InMemoryRunClaim, RunClaim
    from syncd.execution.executors import Executor, ProcessExecutor, ThreadExecutor
    from syncd.execution.run import JobOptions, Run, new_run_id
    from syncd.execution.runs import RunCoordinator

__all__ = [
    "Claim",
    "Executor",
    "InMemoryRunClaim",
    "JobOptions",
    "ProcessExecutor",
    "Run",
    "RunClaim",
    "RunCoordinator",
    "ThreadExecutor",
    "new_run_id",
]

__getattr__ = public_names(
    __name__,
    {
        "claim": ("Claim", "InMemoryRunClaim", "RunClaim"),
        "run": ("JobOptions", "Run", "new_run_id"),
        "runs": ("RunCoordinator",),
        "executors": ("Executor", "ProcessExecutor", "ThreadExecutor"),
    },
)
