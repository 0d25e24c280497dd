"""The job graph: run order within the dependency constraints, dependants, cycles named by key."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.config import Config, JobConfig
from syncd.errors import ConfigError
from syncd.job import JobSpec
from syncd.scheduling.plan import JobPlan, dependants, plan_jobs, run_order


def _noop(_ctx: object) -> None:
    """Never runs: plans only."""


def _plans(tables: dict[str, JobConfig]) -> dict[str, JobPlan]:
    specs = [JobSpec(name=n, trigger_operation="x", body=_noop, description="") for n in tables]
    return plan_jobs(specs, Config(jobs=tables), {})


def test_timetable_order_within_the_dependency_constraints() -> None:
    """C waits for A; B fires before C; D (01:00) waits for nothing and comes after B and C."""
    plans = _plans(
        {
            "A": JobConfig(at="00:30"),
            "B": JobConfig(at="00:10"),
            "C": JobConfig(at="00:05", after=("A",)),
            "D": JobConfig(at="01:00"),
        }
    )
    assert list(plans) == ["C", "B", "A", "D"]  # timetable order
    assert run_order(plans, plans) == ["B", "A", "C", "D"]
    assert run_order(plans, ["C", "D"]) == ["C", "D"]  # A is not wanted: no constraint
    assert dependants(plans, "A") == ["C"]
    assert dependants(plans, "D") == []


def test_dependants_are_transitive_and_ordered() -> None:
    """A's dependants are B (after A) and C (after B), prerequisites first."""
    plans = _plans(
        {
            "C": JobConfig(at="00:01", after=("B",)),
            "B": JobConfig(at="00:02", after=("A",)),
            "A": JobConfig(at="00:03"),
        }
    )
    assert dependants(plans, "A") == ["B", "C"]


@pytest.mark.parametrize(
    ("tables", "key", "message"),
    [
        (
            {"A": ("C",), "B": ("A",), "C": ("B",)},
            "jobs.A.after",
            "dependency cycle: A → C → B → A",
        ),
        (
            {"X": (), "B": ("C",), "C": ("B",)},
            "jobs.B.after",
            "dependency cycle: B → C → B",
        ),
    ],
)
def test_cycles_are_refused_with_the_key_path(
    tables: dict[str, tuple[str, ...]], key: str, message: str
) -> None:
    """A cycle is named from its first job in plan order, each job followed by one it waits for."""
    with pytest.raises(ConfigError) as caught:
        _plans({n: JobConfig(at="00:00", after=after) for n, after in tables.items()})
    assert caught.value.key_path == key
    assert message in str(caught.value)


@st.composite
def _graphs(draw: st.DrawFn) -> dict[str, JobConfig]:
    """Up to 8 jobs with random times; each may wait for any earlier-named job (so no cycles)."""
    count = draw(st.integers(min_value=1, max_value=8))
    names = [f"J{i}" for i in range(count)]
    tables = {}
    for i, name in enumerate(names):
        after = draw(st.lists(st.sampled_from(names[:i]), unique=True)) if i else []
        minute = draw(st.integers(min_value=0, max_value=59))
        tables[name] = JobConfig(at=f"00:{minute:02d}", after=tuple(after))
    return tables


@given(_graphs(), st.data())
def test_run_order_is_the_earliest_ready_job_each_time(
    tables: dict[str, JobConfig], data: st.DataObject
) -> None:
    """Every wanted job once, each after its wanted prerequisites, and at each step the earliest
    job in the timetable among those whose prerequisites are placed."""
    plans = _plans(tables)
    wanted = set(data.draw(st.lists(st.sampled_from(list(plans)), min_size=1)))
    order = run_order(plans, wanted)
    assert sorted(order) == sorted(wanted)
    timetable = list(plans)
    for step, name in enumerate(order):
        placed = set(order[:step])
        ready = [
            n
            for n in wanted - placed
            if all(d in placed or d not in wanted for d in plans[n].after)
        ]
        assert name == min(ready, key=timetable.index)


def _aliased_specs() -> list[JobSpec]:
    return [
        JobSpec(
            name="PersonIndexJob",
            trigger_operation="x",
            body=_noop,
            description="",
            aliases=("PersonElasticSearchSyncJob",),
        ),
        JobSpec(name="OwnerJob", trigger_operation="x", body=_noop, description=""),
    ]


def test_a_job_table_and_after_may_use_the_old_name() -> None:
    """`[jobs.PersonElasticSearchSyncJob]` configures PersonIndexJob, as every command accepts
    the old name; `after` may name it too."""
    tables = {
        "PersonElasticSearchSyncJob": JobConfig(at="03:00", timeout=60.0),
        "OwnerJob": JobConfig(at="04:00", after=("PersonElasticSearchSyncJob",)),
    }
    plans = plan_jobs(_aliased_specs(), Config(jobs=tables), {})
    index = plans["PersonIndexJob"]
    assert (index.schedule_source, index.timeout) == ("jobs.PersonElasticSearchSyncJob.at", 60.0)
    assert plans["OwnerJob"].after == ("PersonIndexJob",)


@pytest.mark.parametrize(
    ("tables", "key", "message"),
    [
        (
            {"PersonIndexJob": JobConfig(), "PersonElasticSearchSyncJob": JobConfig()},
            "jobs.PersonElasticSearchSyncJob",
            "names the same job as jobs.PersonIndexJob (PersonIndexJob); keep one table",
        ),
        (
            {"PersonElasticSearchSyncJob": JobConfig(after=("PersonIndexJob",))},
            "jobs.PersonElasticSearchSyncJob.after",
            "a job cannot depend on itself",
        ),
        (
            {"PersonElasticSearchSyncJob": JobConfig(after=("Nope",))},
            "jobs.PersonElasticSearchSyncJob.after",
            "unknown job 'Nope'",
        ),
    ],
)
def test_old_names_in_job_tables_are_checked_like_new_ones(
    tables: dict[str, JobConfig], key: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        plan_jobs(_aliased_specs(), Config(jobs=tables), {})
    assert (caught.value.key_path, caught.value.problem) == (key, message)
