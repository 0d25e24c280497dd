"""The scheduler loop under a manual clock: exact fires, no polling, pauses, clock jumps."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from syncd.config import Config, JobConfig
from syncd.job import JobSpec
from syncd.scheduling.plan import plan_jobs
from syncd.scheduling.scheduler import ALL, Scheduler
from tests.clocks import ManualClock

START = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)


def _noop(_ctx: object) -> None:
    """Never runs: plans only."""


def _plans(**tables: JobConfig) -> dict[str, object]:
    specs = [JobSpec(name=n, trigger_operation="x", body=_noop, description="") for n in tables]
    return plan_jobs(specs, Config(jobs=tables), {})  # type: ignore[return-value]


class Harness:
    def __init__(self, **tables: JobConfig) -> None:
        self.clock = ManualClock(START)
        self.fired: list[tuple[str, datetime, datetime]] = []
        self.missed: list[tuple[str, datetime, bool]] = []
        self.scheduler = Scheduler(
            _plans(**tables),  # type: ignore[arg-type]
            self.clock,
            fire=lambda n, s: self.fired.append((n, s, self.clock.now())),
            miss=lambda n, s, once: self.missed.append((n, s, once)),
        )

    async def advance(self, delta: timedelta) -> None:
        await self.clock.until_parked()
        self.clock.advance(delta)
        await self.clock.until_parked()


def _run(scenario: Callable[[Harness], Awaitable[None]], **tables: JobConfig) -> Harness:
    h = Harness(**tables)

    async def main() -> None:
        loop = asyncio.create_task(h.scheduler.run())
        try:
            async with asyncio.timeout(10):
                await scenario(h)
        finally:
            h.scheduler.stop()
            async with asyncio.timeout(10):
                await loop

    asyncio.run(main())
    return h


def test_fires_exactly_at_the_slot() -> None:
    """At 00:05 UTC the 00:05 job fires, with no lateness on the injected clock."""

    async def scenario(h: Harness) -> None:
        await h.advance(timedelta(minutes=5))

    h = _run(scenario, Owner=JobConfig(at="00:05"))
    assert h.fired == [("Owner", START + timedelta(minutes=5), START + timedelta(minutes=5))]
    assert list(h.scheduler.lateness_ms) == [0.0]


def test_sleeps_until_the_next_fire_instead_of_polling() -> None:
    """Each wait lasts until the next due fire: one wait per fire, never a one-second tick."""

    async def scenario(h: Harness) -> None:
        await h.advance(timedelta(minutes=5))
        await h.advance(timedelta(minutes=4))

    h = _run(scenario, Owner=JobConfig(at="00:05"), Trust=JobConfig(at="00:09"))
    assert h.clock.timeouts[:3] == [300.0, 240.0, 86160.0]
    assert [f[0] for f in h.fired] == ["Owner", "Trust"]


def test_a_paused_job_does_not_fire_and_resumes_without_a_burst() -> None:
    """Paused through three slots, a resumed job fires at the next slot only."""

    async def scenario(h: Harness) -> None:
        await h.clock.until_parked()
        h.scheduler.pause("Poll", START)
        await h.clock.settle()
        await h.advance(timedelta(minutes=45))
        assert h.scheduler.next_run("Poll") is None
        h.scheduler.resume("Poll", h.clock.now())
        await h.clock.settle()
        assert h.fired == []
        assert h.scheduler.next_run("Poll") == START + timedelta(minutes=60)
        await h.advance(timedelta(minutes=15))

    h = _run(scenario, Poll=JobConfig(every="15m"))
    assert [(n, s) for n, s, _ in h.fired] == [("Poll", START + timedelta(hours=1))]
    assert h.missed == []


def test_pausing_everything_stops_every_job() -> None:
    """The daemon-wide hold stops every fire."""

    async def scenario(h: Harness) -> None:
        await h.clock.until_parked()
        h.scheduler.pause(ALL, START)
        await h.clock.settle()
        await h.advance(timedelta(hours=1))

    h = _run(scenario, Poll=JobConfig(every="15m"), Owner=JobConfig(at="00:05"))
    assert h.fired == []


def test_a_forward_clock_jump_records_skipped_slots_missed() -> None:
    """The wall clock set forward 46 min: at the next wake the skipped slots are recorded
    missed and only the newest fires."""

    async def scenario(h: Harness) -> None:
        await h.clock.until_parked()
        h.clock.jump_wall(timedelta(minutes=46))
        await h.clock.until_parked()
        assert h.fired == []  # the loop's wait runs on monotonic time, as asyncio's does
        await h.advance(timedelta(minutes=15))

    h = _run(scenario, Poll=JobConfig(every="15m"))
    assert [(n, s) for n, s, _ in h.missed] == [
        ("Poll", START + timedelta(minutes=15)),
        ("Poll", START + timedelta(minutes=30)),
        ("Poll", START + timedelta(minutes=45)),
    ]
    assert [(n, s) for n, s, _ in h.fired] == [("Poll", START + timedelta(hours=1))]


def test_a_backward_clock_jump_never_fires_a_slot_twice() -> None:
    """After firing 00:05, the clock set back an hour: 00:05 today does not fire again."""

    async def scenario(h: Harness) -> None:
        await h.advance(timedelta(minutes=5))
        h.clock.jump_wall(timedelta(hours=-1))
        await h.clock.until_parked()
        assert h.scheduler.next_run("Owner") == START + timedelta(days=1, minutes=5)
        await h.advance(timedelta(hours=1, minutes=10))

    h = _run(scenario, Owner=JobConfig(at="00:05"))
    assert [s for _, s, _ in h.fired] == [START + timedelta(minutes=5)]


def test_a_fire_far_too_late_is_missed_and_run_once_decides() -> None:
    """A slot noticed long after it passed (suspend) is recorded missed; run_once says so."""

    async def scenario(h: Harness) -> None:
        await h.clock.until_parked()
        h.clock.advance(timedelta(hours=1))  # the loop sleeps through: as after a suspend
        await h.clock.until_parked()

    h = _run(scenario, Owner=JobConfig(at="00:05", on_missed="run_once"))
    assert h.fired == []
    assert h.missed == [("Owner", START + timedelta(minutes=5), True)]


def test_upcoming_lists_fires_in_utc_order() -> None:
    """next --days 1 lists every fire of the coming day in order."""
    h = Harness(Owner=JobConfig(at="00:05"), Poll=JobConfig(every="6h"))
    fires = h.scheduler.upcoming(START, days=1)
    assert fires == [
        (START + timedelta(minutes=5), "Owner"),
        (START + timedelta(hours=6), "Poll"),
        (START + timedelta(hours=12), "Poll"),
        (START + timedelta(hours=18), "Poll"),
        (START + timedelta(hours=24), "Poll"),
    ]


@pytest.mark.parametrize(
    ("tables", "key", "message"),
    [
        ({"A": JobConfig(at="25:00")}, "jobs.A.at", "hour 25 is not 0-23"),
        (
            {"A": JobConfig(cron="0 0 0 * * FUNDAY")},
            "jobs.A.cron",
            "day of week: 'FUNDAY' is not acceptable",
        ),
        ({"A": JobConfig(after=("Nope",))}, "jobs.A.after", "unknown job 'Nope'"),
        (
            {"A": JobConfig(after=("B",)), "B": JobConfig(after=("A",))},
            "jobs.A.after",
            "cycle: A → B → A",
        ),
    ],
)
def test_bad_timetable_entries_are_refused_with_the_key(
    tables: dict[str, JobConfig], key: str, message: str
) -> None:
    """Start-up refuses 25:00, bad crons, unknown and cyclic dependencies, naming the key."""
    from syncd.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        _plans(**tables)
    assert info.value.key_path == key
    assert message in str(info.value)


def test_unknown_job_tables_are_refused() -> None:
    """A [jobs.X] table for a job no pack provides names the known jobs."""
    from syncd.errors import ConfigError

    specs = [JobSpec(name="A", trigger_operation="a", body=_noop, description="")]
    with pytest.raises(ConfigError, match=r"jobs.Typo: no job named 'Typo' is loaded \(known: A\)"):
        plan_jobs(specs, Config(jobs={"Typo": JobConfig()}), {})


def test_the_old_cron_environment_variables_win() -> None:
    """APPLICATION_CRON_<JOB> sets the job's schedule, as in the old deployment."""
    spec = JobSpec(
        name="A",
        trigger_operation="a",
        body=_noop,
        description="",
        default_at="00:05",
        cron_env="APPLICATION_CRON_A",
    )
    plans = plan_jobs([spec], Config(), {"APPLICATION_CRON_A": "0 30 3 * * *"})
    schedule = plans["A"].schedule
    assert schedule is not None and plans["A"].schedule_source == "env APPLICATION_CRON_A"
    assert schedule.next_after(START) == START + timedelta(hours=3, minutes=30)
