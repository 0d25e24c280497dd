"""Start-up catch-up: which of the night's jobs to run, and which slots to record as missed.

The operators' rule, tied to the ledger instead of the wall clock alone: started inside the
catch-up window, every job whose slot tonight is due and has not completed successfully runs,
in timetable order; jobs that completed tonight are not re-run. Outside the window, slots that
passed while the daemon was down are recorded `missed`, and each job's `on_missed` decides
whether it runs once now.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from syncd.enums import Trigger
from syncd.plan import JobPlan
from syncd.timetable import fires_between

# Never record more than this many missed slots per job after a long outage.
MAX_MISSED_RECORDS = 10


@dataclass(frozen=True, slots=True)
class RunNow:
    name: str
    slot: datetime
    trigger: Trigger


@dataclass(frozen=True, slots=True)
class Missed:
    name: str
    slot: datetime


def in_window(now: datetime, window: tuple[int, int]) -> bool:
    minute = now.hour * 60 + now.minute
    return window[0] <= minute < window[1]


def catch_up(
    plans: Mapping[str, JobPlan],
    *,
    now: datetime,
    window: tuple[int, int],
    last_seen: datetime | None,
    successes: Mapping[str, Sequence[datetime]],
    recorded_missed: Mapping[str, Sequence[datetime]],
) -> tuple[list[Missed], list[RunNow]]:
    """What to record and what to run at start-up. Pure: all inputs are given.

    `successes` holds, per job, the start times of its successful runs (recent ones suffice);
    `recorded_missed` the slots already recorded missed, so a restart does not repeat them.
    """
    missed: list[Missed] = []
    runs: list[RunNow] = []
    midnight = datetime.combine(now.date(), datetime.min.time(), tzinfo=UTC)
    inside = in_window(now, window)
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
            tonight = fires_between(plan.schedule, midnight - timedelta(microseconds=1), now)
            if tonight and not completed(tonight[-1]):
                runs.append(RunNow(plan.name, tonight[-1], Trigger.STARTUP))
        elif lost and plan.on_missed == "run_once":
            runs.append(RunNow(plan.name, lost[-1], Trigger.CATCH_UP))
    return missed, runs
