"""Lateness of scheduled fires: syncd's event-driven loop against the canonical `schedule` loop
(`run_pending(); sleep(1)`), in the same run, on the real clock.

    python -m bench.scheduler_lateness [--seconds 20] [--jobs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime

import schedule

from bench._stats import row, summary
from syncd.clock import SystemClock
from syncd.config import Config, JobConfig
from syncd.job import JobSpec
from syncd.scheduling.plan import plan_jobs
from syncd.scheduling.scheduler import Scheduler


def _noop(_ctx: object) -> None:
    """Not run: the benchmark measures when fires happen."""


async def _syncd_lateness(seconds: float, jobs: int) -> list[float]:
    specs = [
        JobSpec(name=f"J{i}", trigger_operation="j", body=_noop, description="")
        for i in range(jobs)
    ]
    plans = plan_jobs(specs, Config(jobs={s.name: JobConfig(every="1s") for s in specs}), {})
    lateness: list[float] = []

    def fire(_name: str, slot: datetime) -> None:
        lateness.append((datetime.now(UTC) - slot).total_seconds() * 1000)

    scheduler = Scheduler(plans, SystemClock(), fire=fire, miss=lambda *_: None)
    loop = asyncio.create_task(scheduler.run())
    await asyncio.sleep(seconds)  # the benchmark's own duration, not a synchronisation
    scheduler.stop()
    await loop
    return lateness


def _schedule_lateness(seconds: float, jobs: int) -> list[float]:
    """Fixed-time jobs, as a timetable is: one `.at(":SS")` job per second of the minute.

    (`every(1).seconds` would hide lateness: it reschedules from its own late run, so the delay
    accumulates as drift instead of showing.)
    """
    runner = schedule.Scheduler()
    lateness: list[float] = []
    for second in range(60):
        for _ in range(jobs):
            job = runner.every().minute.at(f":{second:02d}")

            def measure(job: schedule.Job = job) -> None:
                assert job.next_run is not None
                lateness.append((datetime.now() - job.next_run).total_seconds() * 1000)

            job.do(measure)
    end = time.monotonic() + seconds
    while time.monotonic() < end:  # the canonical loop, as its README shows it
        runner.run_pending()
        time.sleep(1)
    return lateness


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--jobs", type=int, default=5)
    args = parser.parse_args(argv)
    print(
        f"scheduler lateness: {args.jobs} jobs due every whole second for {args.seconds:g}s each"
        " (syncd: every 1s on the epoch grid; schedule: .at(':SS') per second)"
    )
    ours = asyncio.run(_syncd_lateness(args.seconds, args.jobs))
    theirs = _schedule_lateness(args.seconds, args.jobs)
    print(row("syncd scheduler (event wait)", ours, "ms"))
    print(row("schedule: run_pending(); sleep(1)", theirs, "ms"))
    a, b = summary(ours), summary(theirs)
    print(
        f"  ratio schedule/syncd: p50 {b['p50'] / max(a['p50'], 1e-6):.0f}x, p99 {b['p99'] / max(a['p99'], 1e-6):.0f}x"
    )
    target = 10.0
    verdict = "meets" if a["p99"] <= target else "MISSES"
    print(f"  target p99 <= {target:g} ms: {verdict} ({a['p99']:.3f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
