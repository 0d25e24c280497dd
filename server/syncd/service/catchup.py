"""Start-up catch-up: which of the night's jobs to run, and which slots to record as missed.

The operators' rule, tied to the ledger instead of the wall clock alone: started inside the
catch-up window, every job whose slot tonight is due and has not completed successfully runs;
jobs that completed tonight are not re-run. Whenever the daemon starts, a job whose last run
started inside the most recent window and was cut off by the daemon's stop (a crash: recorded
`interrupted`) runs again. Outside the window, slots that passed while the daemon was down are
recorded `missed`, and each job's `on_missed` decides whether it runs once now. The runs are
listed in timetable order; the orchestrator runs them in that order within the dependency
constraints (`plan.run_order`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from syncd.enums import Trigger
from syncd.scheduling.plan import JobPlan
from syncd.scheduling.timetable import fires_between, last_fire_between
from syncd.values import Value

# Never record more than this many missed slots per job after a long outage.
MAX_MISSED_RECORDS = 10


@dataclass(frozen=True, slots=True)
class RunNow:
    name: str
    slot: datetime
    trigger: Trigger
    arguments: Mapping[str, Value] | None = None  # None: the job's defaults


@dataclass(frozen=True, slots=True)
class Missed:
    name: str
    slot: datetime


@dataclass(frozen=True, slots=True)
class Interrupted:
    """A job's last executed run, which the daemon's stop cut off."""

    started_at: datetime
    slot: datetime | None
    arguments: Mapping[str, Value] = field(default_factory=dict)  # re-run with the same


def in_window(now: datetime, window: tuple[int, int]) -> bool:
    minute = now.hour * 60 + now.minute
    return window[0] <= minute < window[1]


def last_window(now: datetime, window: tuple[int, int]) -> tuple[datetime, datetime]:
    """The most recent catch-up window that has begun by `now` (the one under way, if any)."""
    midnight = datetime.combine(now.date(), datetime.min.time(), tzinfo=UTC)
    begins = midnight + timedelta(minutes=window[0])
    if begins > now:
        begins -= timedelta(days=1)
    return begins, begins + timedelta(minutes=window[1] - window[0])


def catch_up(
    plans: Mapping[str, JobPlan],
    *,
    now: datetime,
    window: tuple[int, int],
    last_seen: datetime | None,
    successes: Mapping[str, Sequence[datetime]],
    recorded_missed: Mapping[str, Sequence[datetime]],
    interrupted: Mapping[str, Interrupted] | None = None,
) -> tuple[list[Missed], list[RunNow]]:
    """What to record and what to run at start-up. Pure: all inputs are given.

    `successes` holds, per job, the start times of its successful runs (recent ones suffice);
    `recorded_missed` the slots already recorded missed, so a restart does not repeat them;
    `interrupted` the jobs whose last executed run was cut off by the daemon's stop.
    """
    missed: list[Missed] = []
    runs: list[RunNow] = []
    midnight = datetime.combine(now.date(), datetime.min.time(), tzinfo=UTC)
    inside = in_window(now, window)
    window_begins, window_ends = last_window(now, window)
    interrupted = interrupted or {}
    for plan in plans.values():  # timetable order
        if plan.schedule is None or not plan.enabled:
            continue
        done = successes.get(plan.name, ())

        def completed(slot: datetime, done: Sequence[datetime] = done) -> bool:
            return any(start >= slot for start in done)

        already = set(recorded_missed.get(plan.name, ()))
        if last_seen is not None:
            lost = [
                s
                for s in fires_between(plan.schedule, last_seen, now)
                if not completed(s) and s not in already
            ]
            if inside:  # tonight's slot is handled by the window rule below
                lost = [s for s in lost if s < midnight]
            missed.extend(Missed(plan.name, s) for s in lost[-MAX_MISSED_RECORDS:])
        else:
            lost = []
        if inside:
            tonight = last_fire_between(plan.schedule, midnight - timedelta(microseconds=1), now)
            if tonight is not None and not completed(tonight):
                runs.append(RunNow(plan.name, tonight, Trigger.STARTUP))
                continue
        cut = interrupted.get(plan.name)
        if (
            cut is not None
            and window_begins <= cut.started_at < window_ends
            and not completed(cut.started_at)
        ):  # a crash cut tonight's run short: whatever the time now, it runs again
            runs.append(
                RunNow(plan.name, cut.slot or cut.started_at, Trigger.STARTUP, cut.arguments)
            )
        elif not inside and lost and plan.on_missed == "run_once":
            runs.append(RunNow(plan.name, lost[-1], Trigger.CATCH_UP))
    return missed, runs
