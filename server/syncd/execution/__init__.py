"""Running job bodies: the run coordinator (one run per bean, cancel, the run's events) and
the executors (thread or child process per run, with its process tree).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from syncd._exports import public_names

if TYPE_CHECKING:
    from syncd.execution.executors import Executor, ProcessExecutor, ThreadExecutor
    from syncd.execution.runs import JobOptions, Run, RunCoordinator, new_run_id

__all__ = [
    "Executor",
    "JobOptions",
    "ProcessExecutor",
    "Run",
    "RunCoordinator",
    "ThreadExecutor",
    "new_run_id",
]

__getattr__ = public_names(
    __name__,
    {
        "runs": ("JobOptions", "Run", "RunCoordinator", "new_run_id"),
        "executors": ("Executor", "ProcessExecutor", "ThreadExecutor"),
    },
)
