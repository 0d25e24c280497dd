"""Start-up catch-up decisions, table-driven: inside the window, outside it, first start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from syncd.catchup import Missed, RunNow, catch_up, in_window
from syncd.config import Config, JobConfig
from syncd.enums import Trigger
from syncd.job import JobSpec
from syncd.plan import JobPlan, plan_jobs


def _noop(_ctx: object) -> None:
    """Never runs: plans only."""


def _plans(on_missed: str = "skip") -> dict[str, JobPlan]:
    specs = [
        JobSpec(name=n, trigger_operation="x", body=_noop, description="", default_at=at)
        for n, at in [
            ("Owner", "00:05"),
            ("Trust", "00:09"),
            ("Status", "02:00"),
            ("Index", "01:29"),
        ]
    ]
    jobs = {s.name: JobConfig(on_missed=on_missed) for s in specs}
    return plan_jobs(specs, Config(jobs=jobs), {})


WINDOW = (0, 7 * 60)
NIGHT = datetime(2026, 11, 22, tzinfo=UTC)


def at(hh: int, mm: int, day: int = 0) -> datetime:
    return NIGHT + timedelta(days=day, hours=hh, minutes=mm)


CASES = [
    pytest.param(
        dict(now=at(3, 0), last_seen=None, successes={}),
        [],
        [("Owner", at(0, 5)), ("Trust", at(0, 9)), ("Index", at(1, 29)), ("Status", at(2, 0))],
        id="first start in the window runs every due job in timetable order",
    ),
    pytest.param(
        dict(
            now=at(1, 0), last_seen=at(0, 20), successes={"Owner": [at(0, 5)], "Trust": [at(0, 9)]}
        ),
        [],
        [],
        id="jobs completed tonight are not re-run; jobs not yet due are left to the scheduler",
    ),
    pytest.param(
        dict(now=at(1, 40), last_seen=at(0, 20), successes={"Owner": [at(0, 5)]}),
        [],
        [("Trust", at(0, 9)), ("Index", at(1, 29))],
        id="a failed or unfinished job and the ones due since run; completed ones do not",
    ),
    pytest.param(
        dict(
            now=at(1, 40),
            last_seen=at(0, 20),
            successes={"Trust": [at(0, 30)], "Owner": [at(0, 6)]},
        ),
        [],
        [("Index", at(1, 29))],
        id="a manual success after the slot counts as completed",
    ),
    pytest.param(
        dict(now=at(10, 0), last_seen=at(0, 1), successes={}),
        [("Owner", at(0, 5)), ("Trust", at(0, 9)), ("Index", at(1, 29)), ("Status", at(2, 0))],
        [],
        id="outside the window missed slots are recorded and, with skip, not run",
    ),
    pytest.param(
        dict(now=at(10, 0), last_seen=None, successes={}),
        [],
        [],
        id="outside the window a first start records nothing",
    ),
    pytest.param(
        dict(now=at(2, 30), last_seen=at(23, 0, day=-2), successes={}),
        [
            ("Owner", at(0, 5, -1)),
            ("Trust", at(0, 9, -1)),
            ("Index", at(1, 29, -1)),
            ("Status", at(2, 0, -1)),
        ],
        [("Owner", at(0, 5)), ("Trust", at(0, 9)), ("Index", at(1, 29)), ("Status", at(2, 0))],
        id="inside the window after days down: earlier nights are missed, tonight runs",
    ),
]


@pytest.mark.parametrize(("situation", "missed", "runs"), CASES)
def test_catch_up_decisions(
    situation: dict[str, object],
    missed: list[tuple[str, datetime]],
    runs: list[tuple[str, datetime]],
) -> None:
    """What is recorded missed and what runs, for each start-up situation."""
    got_missed, got_runs = catch_up(_plans(), window=WINDOW, recorded_missed={}, **situation)  # type: ignore[arg-type]
    assert [(m.name, m.slot) for m in got_missed] == missed
    assert [(r.name, r.slot) for r in got_runs] == runs
    expected_trigger = Trigger.STARTUP
    assert all(r.trigger is expected_trigger for r in got_runs)


def test_run_once_catches_up_outside_the_window() -> None:
    """With on_missed = run_once, a missed slot outside the window runs once, as catch-up."""
    missed, runs = catch_up(
        _plans("run_once"),
        now=at(10, 0),
        window=WINDOW,
        last_seen=at(0, 1, day=-1),
        successes={},
        recorded_missed={},
    )
    assert len(missed) == 8  # two nights of four jobs
    assert runs == [
        RunNow("Owner", at(0, 5), Trigger.CATCH_UP),
        RunNow("Trust", at(0, 9), Trigger.CATCH_UP),
        RunNow("Index", at(1, 29), Trigger.CATCH_UP),
        RunNow("Status", at(2, 0), Trigger.CATCH_UP),
    ]


def test_missed_slots_are_not_recorded_twice() -> None:
    """A restart does not record again a slot already recorded missed."""
    missed, _ = catch_up(
        _plans(),
        now=at(10, 0),
        window=WINDOW,
        last_seen=at(0, 1),
        successes={},
        recorded_missed={"Owner": [at(0, 5)]},
    )
    assert Missed("Owner", at(0, 5)) not in missed


@pytest.mark.parametrize(
    ("now", "inside"), [(at(0, 0), True), (at(6, 59), True), (at(7, 0), False), (at(23, 59), False)]
)
def test_the_window_is_half_open(now: datetime, inside: bool) -> None:
    """00:00 is inside the default window, 07:00 is not."""
    assert in_window(now, WINDOW) is inside
