"""Fencing in the tis jobs: a run records its cluster fencing token in the source database in
the transaction that publishes its result, and a run whose token is older than the recorded
one publishes nothing (it lost its lease while it ran; a newer run has published)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from syncd_tis import _owner
from syncd_tis._db import RetryPolicy
from syncd_tis._fencing import FencedOffError, fencing
from syncd_tis._funding import recompute
from tests.tis.conftest import Db, RecordingRunContext
from tests.tis.search_fixtures import add_person
from tests.tis.test_search_embedded import smiths, specs

TODAY = date(2026, 3, 10)
POLICY = RetryPolicy(attempts=1, initial_delay=0.0, max_delay=0.0)


def fenced(db: Db, token: int | None, bean: str = "PersonOwnerRebuildJob") -> RecordingRunContext:
    return RecordingRunContext(db.settings(), None, bean=bean, fencing_token=token)


def recorded(db: Db) -> dict[str, tuple[int, str]]:
    with db.engine.connect() as conn:
        rows = conn.execute(select(fencing.c.job, fencing.c.token, fencing.c.run_id))
        return {job: (token, run_id) for job, token, run_id in rows}


def test_a_switch_records_its_token_and_an_older_run_switches_nothing(db: Db) -> None:
    """Token 7 switches PersonOwner in and is recorded; then a run with token 6 (it lost its
    lease to run 7) finds 7 recorded and leaves the table as run 7 made it."""
    p = db.person()
    db.membership(p, db.programme("London"), TODAY - timedelta(days=10), TODAY + timedelta(10))
    newer = fenced(db, 7)
    _owner.rebuild(db.engine, newer, today=TODAY, settings=db.settings())
    assert recorded(db) == {"PersonOwnerRebuildJob": (7, newer.run_id)}
    owners = db.owners()

    q = db.person()  # a change the late run would publish
    db.membership(q, db.programme("Wessex"), TODAY - timedelta(days=1), TODAY + timedelta(9))
    with pytest.raises(FencedOffError, match="token 7"):
        _owner.rebuild(db.engine, fenced(db, 6), today=TODAY, settings=db.settings())
    assert db.owners() == owners
    assert recorded(db) == {"PersonOwnerRebuildJob": (7, newer.run_id)}

    later = fenced(db, 8)
    _owner.rebuild(db.engine, later, today=TODAY, settings=db.settings())
    assert q in db.owners()
    assert recorded(db)["PersonOwnerRebuildJob"] == (8, later.run_id)


def test_a_paged_job_checks_its_token_on_every_page(db: Db) -> None:
    """PostFundingStatusSyncJob writes page by page; a run older than the recorded token
    writes no page."""
    post = db.post(funding_status="INACTIVE")
    db.funding(post, TODAY - timedelta(days=30), None)
    job = "PostFundingStatusSyncJob"
    recompute(db.engine, fenced(db, 3, job), today=TODAY, page_size=2, policy=POLICY)
    before = db.funding_statuses()
    other = db.post(funding_status="INACTIVE")
    db.funding(other, TODAY - timedelta(days=30), None)
    with pytest.raises(FencedOffError):
        recompute(db.engine, fenced(db, 2, job), today=TODAY, page_size=2, policy=POLICY)
    assert before[post] == "CURRENT"
    assert db.funding_statuses()[other] == "INACTIVE"  # not written by the fenced-off run


def test_a_single_daemon_has_no_token_and_records_nothing(db: Db) -> None:
    """Without cluster mode the switch neither checks nor records a token."""
    single = fenced(db, None, bean="SingleDaemonOwnerJob")
    _owner.rebuild(db.engine, single, today=TODAY, settings=db.settings())
    with db.engine.connect() as conn:
        exists = db.engine.dialect.has_table(conn, "syncd_fencing")
    assert not exists or "SingleDaemonOwnerJob" not in recorded(db)


def test_a_search_index_switch_is_fenced(db: Db, tmp_path: Path) -> None:
    """The person index switches in under the fence: a run older than the recorded token
    switches nothing (its new index is dropped) and searchers keep the newer run's index."""
    spec = specs(db, tmp_path)["PersonElasticSearchJob"]
    add_person(db, surname="Smith")
    spec.body(RecordingRunContext(spec.settings, bean=spec.name, fencing_token=5))
    assert len(smiths(spec)) == 1
    add_person(db, surname="Smith")
    with pytest.raises(FencedOffError):
        spec.body(RecordingRunContext(spec.settings, bean=spec.name, fencing_token=4))
    assert len(smiths(spec)) == 1
    spec.body(RecordingRunContext(spec.settings, bean=spec.name, fencing_token=6))
    assert len(smiths(spec)) == 2
