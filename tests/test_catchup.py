"""Start-up catch-up: the decisions, table-driven (inside the window, outside it, first start,
interrupted runs), and the daemon acting on them: the order that runs, the log line announcing
it and the README saying the same thing."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from syncd.app.instance import private_dir
from syncd.config import Config, JobConfig, SchedulerConfig
from syncd.enums import RunOutcome, Trigger
from syncd.execution.run import new_run_id
from syncd.job import JobSpec, PackContext
from syncd.ledger.model import RunRecord
from syncd.ledger.sql import SqlLedger
from syncd.observability.loghub import line_filter
from syncd.scheduling.plan import JobPlan, plan_jobs
from syncd.service.catchup import Interrupted, Missed, RunNow, catch_up, in_window, last_window
from syncd.service.orchestrator import LAST_SEEN_KEY
from syncd.values import Value
from syncd_tis import PACK, TisSettings
from syncd_tis.search.settings import RevalSettings
from tests.clocks import ManualClock
from tests.harness import BOUND, Running, running_daemon
from tests.packs.sample import Gates, chain_jobs, quick_body
from tests.web._support import logging_to_hub


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


INTERRUPTED_CASES = [
    pytest.param(
        dict(now=at(10, 0), last_seen=at(0, 6)),
        {"Owner": Interrupted(at(0, 5), at(0, 5))},
        [("Owner", at(0, 5))],
        id="cut off inside tonight's window, restarted after it: runs again",
    ),
    pytest.param(
        dict(now=at(3, 0), last_seen=at(0, 6)),
        {"Owner": Interrupted(at(0, 5), at(0, 5))},
        [("Owner", at(0, 5)), ("Trust", at(0, 9)), ("Index", at(1, 29)), ("Status", at(2, 0))],
        id="restarted inside the window: it runs once, with tonight's other due jobs",
    ),
    pytest.param(
        dict(now=at(23, 0), last_seen=at(1, 40)),
        {"Index": Interrupted(at(1, 35), None, {"rows": 9})},
        [("Index", at(1, 35), {"rows": 9})],
        id="a manual run cut off inside the window runs again, even late in the day",
    ),
    pytest.param(
        dict(now=at(12, 0), last_seen=at(8, 1)),
        {"Owner": Interrupted(at(8, 0), None)},
        [],
        id="cut off outside the window: not re-run",
    ),
    pytest.param(
        dict(now=at(10, 0, day=1), last_seen=at(10, 0)),
        {"Owner": Interrupted(at(0, 5), at(0, 5))},
        [],
        id="cut off in an earlier night's window: not re-run",
    ),
    pytest.param(
        dict(now=at(10, 0), last_seen=at(0, 6), successes={"Owner": [at(0, 30)]}),
        {"Owner": Interrupted(at(0, 5), at(0, 5))},
        [],
        id="succeeded since it was cut off: not re-run",
    ),
]


@pytest.mark.parametrize(("situation", "interrupted", "runs"), INTERRUPTED_CASES)
def test_a_run_a_crash_cut_off_inside_the_window_runs_again(
    situation: dict[str, object],
    interrupted: dict[str, Interrupted],
    runs: list[tuple[object, ...]],
) -> None:
    """What decides is the ledger: the job's last run started inside the most recent window
    and was recorded interrupted, and nothing of it succeeded since; not the restart's time."""
    situation = {"successes": {}, **situation}
    _, got = catch_up(
        _plans(),
        window=WINDOW,
        recorded_missed={},
        interrupted=interrupted,
        **situation,  # type: ignore[arg-type]
    )
    assert [(r.name, r.slot, *([r.arguments] if r.arguments else [])) for r in got] == runs
    assert all(r.trigger is Trigger.STARTUP for r in got)


def test_the_last_window_is_the_one_begun_most_recently() -> None:
    """Before a window opens, the last one is yesterday's; from its start on, today's."""
    window = (60, 300)  # 01:00-05:00
    assert last_window(at(0, 30), window) == (at(1, 0, day=-1), at(5, 0, day=-1))
    assert last_window(at(1, 0), window) == (at(1, 0), at(5, 0))
    assert last_window(at(22, 0), window) == (at(1, 0), at(5, 0))


# ---- the daemon at start-up, with a manual clock and a prepared ledger ---------------------


def _ledger_at(state_dir: Path) -> SqlLedger:
    private_dir(state_dir)
    return SqlLedger(f"sqlite:///{state_dir / 'ledger.sqlite3'}")


def _cut_off_run(
    state_dir: Path,
    bean: str,
    started: datetime,
    slot: datetime | None,
    arguments: dict[str, Value] | None = None,
) -> str:
    """A ledger as a killed daemon leaves it: the run still "running", the last fire seen."""
    ledger = _ledger_at(state_dir)
    try:
        run_id = new_run_id(started)
        trigger = Trigger.SCHEDULE if slot else Trigger.MANUAL
        ledger.record_start(
            RunRecord(
                run_id=run_id,
                bean=bean,
                operation=bean[0].lower() + bean[1:],
                arguments=arguments or {},
                trigger=trigger,
                actor="scheduler",
                slot_time=slot,
                started_at=started,
            )
        )
        ledger.set_meta(LAST_SEEN_KEY, started.isoformat())
    finally:
        ledger.close()
    return run_id


async def _settled(rt: Running, beans: int) -> list[RunRecord]:
    """Every run of the start-up, once `beans` of them have ended."""
    async with rt.daemon.coordinator.events.subscribe() as events, asyncio.timeout(BOUND):
        while True:
            history = rt.daemon.ledger.history(limit=50)
            if len([r for r in history if r.outcome is not None]) >= beans:
                return history
            await events.next()


def test_a_run_cut_off_by_a_crash_inside_the_window_reruns_after_it(short_tmp: Path) -> None:
    """Killed at 00:06 while Owner ran its 00:05 slot; started again at 10:00, outside the
    window: the interrupted run is finished as such and Owner runs again (trigger startup,
    tonight's slot); the slots passed while down are recorded missed, not run."""
    state = short_tmp / "state"
    night = datetime(2026, 11, 22, tzinfo=UTC)
    slot = night + timedelta(minutes=5)
    cut = _cut_off_run(state, "Owner", slot, slot, {"rows": 4})
    clock = ManualClock(night + timedelta(hours=10))

    async def main() -> None:
        async with running_daemon(
            state, chain_jobs(Gates()), clock=clock, scheduler=SchedulerConfig(catch_up=True)
        ) as rt:
            history = await _settled(rt, 5)
            owner = [r for r in history if r.bean == "Owner"]
            assert [(r.run_id == cut, r.outcome) for r in owner] == [
                (False, RunOutcome.SUCCESS),
                (True, RunOutcome.INTERRUPTED),
            ]
            again = owner[0]
            assert (again.trigger, again.slot_time) == (Trigger.STARTUP, slot)
            assert (again.arguments, again.rows_read) == ({"rows": 4}, 4)  # the same run again
            others = {r.bean: r.outcome for r in history if r.bean != "Owner"}
            assert others == {n: RunOutcome.MISSED for n in ("Emp", "Train", "Index")}

    asyncio.run(main())


def test_a_run_cut_off_outside_the_window_is_not_rerun(short_tmp: Path) -> None:
    """Emp was killed at 00:09 inside the window, a manual Owner run at 08:00 outside it; at
    a 10:00 start only Emp runs again, Owner's run is only recorded interrupted."""
    state = short_tmp / "state"
    night = datetime(2026, 11, 22, tzinfo=UTC)
    _cut_off_run(state, "Emp", night + timedelta(minutes=9), night + timedelta(minutes=9))
    cut = _cut_off_run(state, "Owner", night + timedelta(hours=8), None)
    clock = ManualClock(night + timedelta(hours=10))

    async def main() -> None:
        async with running_daemon(
            state, chain_jobs(Gates()), clock=clock, scheduler=SchedulerConfig(catch_up=True)
        ) as rt:
            history = await _settled(rt, 3)  # both interrupted records and Emp's new run
            newest = rt.daemon.ledger.history("Emp")[0]
            assert (newest.trigger, newest.outcome) == (Trigger.STARTUP, RunOutcome.SUCCESS)
            owner = [(r.run_id, r.outcome) for r in history if r.bean == "Owner"]
            assert owner == [(cut, RunOutcome.INTERRUPTED)]

    asyncio.run(main())


# ---- the order: what runs, what the log line says, what the README says --------------------

README = Path(__file__).resolve().parents[1] / "README.md"
BROKER = RevalSettings(amqp_url="amqp://guest:guest@127.0.0.1:5672/%2F")


def _tis_specs(state_dir: Path, *, broker: bool) -> list[JobSpec]:
    """The tis pack's jobs as declared (names, timetable, dependencies, disabled reasons),
    each with a body that finishes at once."""
    settings = TisSettings(reval=BROKER) if broker else TisSettings()
    specs = PACK.build(PackContext(state_dir=state_dir, settings=settings))
    return [dataclasses.replace(s, body=quick_body, settings=None) for s in specs]


def _readme_order() -> list[str]:
    lines = README.read_text().splitlines()
    line = lines[lines.index("timetable and nothing completed yet, that order is:") + 1]
    return line.split(" → ")


def _readme_timetable() -> list[tuple[str, str, tuple[str, ...]]]:
    lines = README.read_text().splitlines()
    start = lines.index("| UTC | job | after (prerequisites) |") + 2
    rows = []
    for line in itertools.takewhile(lambda x: x.startswith("|"), lines[start:]):
        at_cell, job_cell, after_cell = (c.strip() for c in line.strip("|").split("|"))
        rows.append(
            (at_cell, job_cell, tuple(a.strip() for a in after_cell.split(",") if a.strip()))
        )
    return rows


def test_the_readme_timetable_is_the_packs(tmp_path: Path) -> None:
    """Each row: the default time, the bean (its alias in brackets) and its prerequisites, in
    timetable order."""
    specs = _tis_specs(tmp_path, broker=True)
    plans = plan_jobs(specs, Config(), {})
    by_name = {s.name: s for s in specs}
    expected = []
    for name, plan in plans.items():
        spec = by_name[name]
        shown = f"{name} ({', '.join(spec.aliases)})" if spec.aliases else name
        expected.append((spec.default_at, shown, plan.after))
    assert _readme_timetable() == expected


@pytest.mark.parametrize("broker", [True, False], ids=["with a broker", "without a broker"])
def test_catch_up_runs_in_the_order_its_log_line_and_the_readme_give(
    short_tmp: Path, broker: bool
) -> None:
    """A first start at 03:00 runs every due job once, one after another, in timetable order
    within the dependencies; `scheduler.catch_up` announces exactly that order, and it is the
    README's (less the disabled revalidation jobs without a broker)."""
    hub = logging_to_hub()
    specs = _tis_specs(short_tmp / "state", broker=broker)
    expected = [n for n in _readme_order() if broker or not n.startswith("Reval")]
    clock = ManualClock(datetime(2026, 11, 22, 3, 0, tzinfo=UTC))

    async def main() -> None:
        async with running_daemon(
            short_tmp / "state",
            specs,
            clock=clock,
            scheduler=SchedulerConfig(catch_up=True),
            log_hub=hub,
        ) as rt:
            history = await _settled(rt, len(expected))
            assert all(r.outcome is RunOutcome.SUCCESS for r in history)
            # The log, in the order things happened (the manual clock gives every run the
            # same start time): one announcement, then each run starts after the last ended.
            lines = [json.loads(line.text) for line in hub.last(10_000, line_filter())]
            steps = [
                (x["event"], x.get("job"))
                for x in lines
                if x["event"] in ("scheduler.catch_up", "run.started", "run.finished")
            ]
            announced = [x["jobs"] for x in lines if x["event"] == "scheduler.catch_up"]
            assert announced == [expected]
            assert steps == [
                ("scheduler.catch_up", None),
                *[(e, job) for job in expected for e in ("run.started", "run.finished")],
            ]

    asyncio.run(main())
