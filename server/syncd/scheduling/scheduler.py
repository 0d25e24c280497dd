"""The scheduler loop: sleeps until the next due fire on an event, never polls.

It wakes early on pause/resume, reload and shutdown, and after each wake compares the wall
clock with the monotonic clock: a jump is logged and the timetable recomputed, without firing
a slot twice (a jump back) and recording skipped slots as missed (a jump forward).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

import structlog

from syncd.clock import Clock
from syncd.scheduling.plan import JobPlan
from syncd.scheduling.timetable import fires_between

log = structlog.get_logger("syncd.scheduler")

ALL = "*"
# A fire later than this (suspend, clock jump, a blocked loop) is a missed slot instead.
MISFIRE_GRACE = timedelta(minutes=5)
JUMP_TOLERANCE = 2.0  # seconds of wall/monotonic disagreement taken as a clock jump

Fire = Callable[[str, datetime], None]
Miss = Callable[[str, datetime, bool], None]  # (job, slot, run it once now?)


class Scheduler:
    """Fires each scheduled, enabled, unpaused job at its slots, in UTC."""

    def __init__(
        self,
        plans: Mapping[str, JobPlan],
        clock: Clock,
        fire: Fire,
        miss: Miss,
        holds: Mapping[str, datetime] | None = None,
        observe_lateness: Callable[[float], None] | None = None,
    ) -> None:
        self._observe = observe_lateness
        self._plans = {n: p for n, p in plans.items() if p.schedule is not None and p.enabled}
        self._clock = clock
        self._fire = fire
        self._miss = miss
        self._holds: dict[str, datetime] = dict(holds or {})
        self._next: dict[str, datetime] = {}
        self._last_fired: dict[str, datetime] = {}
        self._wake = asyncio.Event()
        self._stopped = False
        self.lateness_ms: deque[float] = deque(maxlen=10_000)
        self.last_seen: datetime | None = None
        self._recompute(clock.now())

    def _recompute(self, now: datetime) -> None:
        for name, plan in self._plans.items():
            assert plan.schedule is not None
            after = max(now, self._last_fired.get(name, now))
            self._next[name] = plan.schedule.next_after(after)

    # --- queries -------------------------------------------------------------------------

    def paused(self, name: str) -> bool:
        return name in self._holds or ALL in self._holds

    def holds(self) -> dict[str, datetime]:
        return dict(self._holds)

    def next_run(self, name: str) -> datetime | None:
        if name not in self._plans or self.paused(name):
            return None
        return self._next.get(name)

    def upcoming(self, now: datetime, days: float) -> list[tuple[datetime, str]]:
        """Every fire in the next `days` days, of jobs that are not paused."""
        end = now + timedelta(days=days)
        fires: list[tuple[datetime, int, str]] = []
        for position, (name, plan) in enumerate(self._plans.items()):
            if self.paused(name):
                continue
            assert plan.schedule is not None
            fires.extend(
                (moment, position, name) for moment in fires_between(plan.schedule, now, end)
            )
        # Fires at one instant keep timetable order (the plans' order), as `status` lists jobs.
        return [(moment, name) for moment, _, name in sorted(fires)]

    # --- control -------------------------------------------------------------------------

    def pause(self, name: str, at: datetime) -> None:
        self._holds.setdefault(name, at)
        self._wake.set()

    def resume(self, name: str, at: datetime) -> None:
        """Lift a pause; the next fire is computed from now, so no burst of missed fires."""
        self._holds.pop(name, None)
        for job in self._plans if name == ALL else [name]:
            if job in self._plans and not self.paused(job):
                plan = self._plans[job]
                assert plan.schedule is not None
                self._next[job] = plan.schedule.next_after(max(at, self._last_fired.get(job, at)))
        self._wake.set()

    def replace_plans(self, plans: Mapping[str, JobPlan], now: datetime) -> None:
        """A reloaded timetable: recompute every next fire from now; never re-fire a slot."""
        self._plans = {n: p for n, p in plans.items() if p.schedule is not None and p.enabled}
        self._next = {}
        self._recompute(now)
        self._wake.set()

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    # --- the loop ------------------------------------------------------------------------

    def _due(self, now: datetime) -> None:
        for name in sorted(self._next, key=self._next.__getitem__):
            due = self._next[name]
            if due > now:
                break
            plan = self._plans[name]
            assert plan.schedule is not None
            slots = [due, *fires_between(plan.schedule, due, now)]
            self._next[name] = plan.schedule.next_after(now)
            if self.paused(name):
                log.info("scheduler.skipped_paused", job=name, slot=slots[-1].isoformat())
                continue
            for lost in slots[:-1]:  # several slots passed at once: only the newest can run
                self._miss(name, lost, False)
            newest = slots[-1]
            late = now - newest
            self._last_fired[name] = newest
            if late > MISFIRE_GRACE:
                log.warning(
                    "scheduler.misfire",
                    job=name,
                    slot=newest.isoformat(),
                    late_s=late.total_seconds(),
                )
                self._miss(name, newest, plan.on_missed == "run_once")
                continue
            self.lateness_ms.append(late.total_seconds() * 1000)
            if self._observe is not None:
                self._observe(late.total_seconds())
            self._fire(name, newest)

    async def run(self) -> None:
        log.info(
            "scheduler.started",
            jobs={
                n: self._next[n].isoformat() for n in sorted(self._next, key=self._next.__getitem__)
            },
        )
        while not self._stopped:
            now = self._clock.now()
            self.last_seen = now
            self._due(now)
            waiting = [t for n, t in self._next.items() if not self.paused(n)]
            timeout = (min(waiting) - now).total_seconds() if waiting else None
            before_wall, before_mono = self._clock.now(), self._clock.monotonic()
            await self._clock.wait(self._wake, timeout)
            self._wake.clear()
            drift = (self._clock.now() - before_wall).total_seconds() - (
                self._clock.monotonic() - before_mono
            )
            if abs(drift) > JUMP_TOLERANCE:
                log.warning("scheduler.clock_jump", seconds=round(drift, 3))
                if drift < 0:  # jumped back: recompute so nothing waits for the lost hours
                    self._recompute(self._clock.now())
        log.info("scheduler.stopped")
