"""Job definitions from the parent: what a parent publishes (only what changed, tombstones for
removed tables), and a child's plan overlaid by them, refusing what does not fit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.config import Config, JobConfig, ReplicationConfig
from syncd.job import JobSpec
from syncd.ledger.sql import SqlLedger
from syncd.replication import jobdefs
from syncd.replication.model import JOB
from syncd.replication.store import SqlRepository
from syncd.scheduling.timetable import Every, parse_at

OWN = frozenset({"SynchronizeJobData"})


def _noop(_ctx: object) -> None:
    """Never runs: plans only."""


SPECS = [
    JobSpec(name="Nightly", trigger_operation="nightly", body=_noop, description=""),
    JobSpec(
        name="Rebuild",
        aliases=("OldRebuild",),
        trigger_operation="rebuild",
        body=_noop,
        description="",
    ),
    JobSpec(name="SynchronizeJobData", trigger_operation="sync", body=_noop, description=""),
]


def text(**fields: object) -> str:
    return json.dumps(fields, sort_keys=True)


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[SqlRepository]:
    ledger = SqlLedger(f"sqlite:///{tmp_path / 'state.sqlite3'}")
    yield ledger.repository
    ledger.close()


def parent_config(**jobs: JobConfig) -> Config:
    return Config(
        replication=ReplicationConfig(name="hq", children=("ohio true grpc://o:1",)),
        jobs=jobs,
    )


def test_only_a_repository_that_lists_children_is_a_parent() -> None:
    assert jobdefs.is_parent(parent_config())
    assert not jobdefs.is_parent(Config(replication=ReplicationConfig(name="ohio")))
    assert not jobdefs.is_parent(Config(replication=ReplicationConfig(children=("a true u",))))


def test_a_parent_publishes_its_tables_under_canonical_names_but_not_its_own_beans() -> None:
    config = parent_config(
        OldRebuild=JobConfig(every="15m", after=("Nightly",)),
        Nightly=JobConfig(at="02:00", enabled=False, execution="thread"),
        SynchronizeJobData=JobConfig(every="15m"),
    )
    out = jobdefs.published(config, SPECS, OWN)
    assert set(out) == {"Rebuild", "Nightly"}
    assert json.loads(out["Nightly"]) == {
        "at": "02:00",
        "enabled": False,
        "timeout": 0.0,
        "on_missed": "skip",
    }  # how the parent's host runs it (execution) is not published
    assert json.loads(out["Rebuild"])["after"] == ["Nightly"]


def test_publishing_writes_only_what_changed_and_tombstones_removed_tables(
    repo: SqlRepository,
) -> None:
    first = {"Nightly": text(at="02:00"), "Rebuild": text(every="1h")}
    assert jobdefs.publish(repo, first) == (["Nightly", "Rebuild"], [])
    watermark = repo.info().stable_watermark
    assert jobdefs.publish(repo, first) == ([], [])  # unchanged: nothing written, nothing logged
    assert repo.info().stable_watermark == watermark

    assert jobdefs.publish(repo, {"Nightly": text(at="03:00")}) == (["Nightly"], ["Rebuild"])
    stored = {c.id: c for c in repo.records_of(JOB)}
    assert stored["Rebuild"].deleted and not stored["Nightly"].deleted
    assert jobdefs.received(repo.records_of(JOB)) == {"Nightly": text(at="03:00")}
    # A table put back after its removal is written again over the tombstone.
    assert jobdefs.publish(repo, {"Nightly": text(at="03:00"), "Rebuild": text(every="1h")}) == (
        ["Rebuild"],
        [],
    )


def child_config(**jobs: JobConfig) -> Config:
    return Config(replication=ReplicationConfig(name="ohio"), jobs=jobs)


def test_a_parents_definition_replaces_the_childs_timetable_and_keeps_its_host_settings() -> None:
    config = child_config(
        Nightly=JobConfig(at="01:00", execution="thread", cancel_grace=5.0),
        OldRebuild=JobConfig(at="04:00", enabled=False),
    )
    result = jobdefs.overlay(
        config,
        SPECS,
        {"Nightly": text(every="30m", timeout=60.0), "Rebuild": text(enabled=True)},
        own=OWN,
        env={},
    )
    assert result.refused == {}
    nightly = result.plans["Nightly"]
    assert nightly.schedule == Every(1800.0)  # at 01:00 is replaced, not added to
    assert nightly.schedule_source == "parent: jobs.Nightly.every"
    assert (nightly.timeout, nightly.execution, nightly.cancel_grace) == (60.0, "thread", 5.0)
    rebuild = result.plans["Rebuild"]  # the child's table under an old name is the one overlaid
    assert rebuild.enabled and rebuild.schedule is None  # no timetable key: none at the parent
    assert set(result.accepted) == {"Nightly", "Rebuild"}


def test_a_definition_for_a_job_the_child_lacks_or_its_own_bean_is_refused() -> None:
    config = child_config(Nightly=JobConfig(at="01:00"))
    result = jobdefs.overlay(
        config,
        SPECS,
        {
            "Nowhere": text(at="02:00"),
            "SynchronizeJobData": text(every="1m"),
            "Nightly": text(at="05:00"),
        },
        own=OWN,
        env={},
    )
    assert result.refused == {
        "Nowhere": "no job named 'Nowhere' here",
        "SynchronizeJobData": "SynchronizeJobData is scheduled by each repository itself",
    }
    assert result.plans["Nightly"].schedule == parse_at("05:00")  # the others still apply


@pytest.mark.parametrize(
    ("definition", "problem"),
    [
        (text(at="25:00"), "jobs.Nightly.at: hour 25 is not 0-23"),
        (text(at="01:00", every="1h"), "give only one of at, every and cron"),
        (text(after=["Nightly"]), "a job cannot depend on itself"),
        (text(color="red"), "jobs.Nightly (from the parent).color: not a key a parent decides"),
        ("[1, 2]", "not a JSON object"),
        (text(enabled="yes"), "jobs.Nightly (from the parent).enabled"),
    ],
)
def test_a_definition_that_does_not_validate_is_refused_keeping_the_previous_one(
    definition: str, problem: str
) -> None:
    config = child_config(Nightly=JobConfig(at="01:00"))
    before = jobdefs.overlay(config, SPECS, {"Nightly": text(at="06:00")}, own=OWN, env={})
    assert before.plans["Nightly"].schedule == parse_at("06:00")
    after = jobdefs.overlay(
        config, SPECS, {"Nightly": definition}, previous=before.accepted, own=OWN, env={}
    )
    assert problem in after.refused["Nightly"]
    assert after.plans["Nightly"].schedule == parse_at("06:00")  # the previous plan stays
    # With nothing accepted before, the job keeps the child's own table.
    fresh = jobdefs.overlay(config, SPECS, {"Nightly": definition}, own=OWN, env={})
    assert fresh.plans["Nightly"].schedule == parse_at("01:00")


def test_a_definition_closing_a_dependency_cycle_is_refused() -> None:
    config = child_config(Nightly=JobConfig(at="01:00", after=("Rebuild",)))
    result = jobdefs.overlay(config, SPECS, {"Rebuild": text(after=["Nightly"])}, own=OWN, env={})
    assert "dependency cycle" in result.refused["Rebuild"]
    assert result.plans["Rebuild"].after == ()
