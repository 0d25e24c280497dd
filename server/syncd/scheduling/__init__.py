"""When jobs run: the timetable (daily times, intervals, cron), the job plan built from the
packs and the config, and the scheduler loop that waits for the next due run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from syncd._exports import public_names

if TYPE_CHECKING:
    from syncd.scheduling.plan import JobPlan, dependants, plan_jobs, run_order
    from syncd.scheduling.scheduler import ALL, Scheduler
    from syncd.scheduling.timetable import (
        Cron,
        Every,
        ScheduleError,
        fires_between,
        parse_at,
        parse_every,
    )

__all__ = [
    "ALL",
    "Cron",
    "Every",
    "JobPlan",
    "ScheduleError",
    "Scheduler",
    "dependants",
    "fires_between",
    "parse_at",
    "parse_every",
    "plan_jobs",
    "run_order",
]

__getattr__ = public_names(
    __name__,
    {
        "timetable": ("Cron", "Every", "ScheduleError", "fires_between", "parse_at", "parse_every"),
        "plan": ("JobPlan", "dependants", "plan_jobs", "run_order"),
        "scheduler": ("ALL", "Scheduler"),
    },
)
