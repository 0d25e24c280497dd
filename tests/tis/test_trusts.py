"""The trust jobs: PersonTrust and PostTrust, complete after either job of a pair."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from sqlalchemy import Column, Index, MetaData, String, Table, insert, select

from syncd.errors import RunCancelled
from syncd.job import JobBody
from syncd_tis import _jobs
from syncd_tis._schema import Id, person_trust, post_trust
from tests.tis.conftest import Db

TODAY = date(2026, 3, 10)
PERSON_JOBS = [_jobs.person_trust_employing_body, _jobs.person_trust_training_body]
POST_JOBS = [_jobs.post_trust_employing_body, _jobs.post_trust_training_body]

# PersonTrust as the old TCS schema has it: no unique key, so duplicates can exist.
LEGACY = MetaData()
legacy_person_trust = Table(
    "PersonTrust",
    LEGACY,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("personId", Id, nullable=False),
    Column("trustId", Id),
    Column("trustCode", String(255)),
    Column("trustName", String(255)),
    Index("ix_legacy_persontrust_person", "personId"),
)


def day(offset: int) -> date:
    return TODAY + timedelta(days=offset)


@pytest.fixture
def legacy_db(db: Db) -> Iterator[Db]:
    """The database with the old, key-less PersonTrust; the real one is put back after."""
    with db.engine.begin() as conn:
        person_trust.drop(conn)
        legacy_person_trust.create(conn)
    try:
        yield db
    finally:
        with db.engine.begin() as conn:
            legacy_person_trust.drop(conn)
            person_trust.create(conn)


class TestPersonTrust:
    @pytest.mark.parametrize("job", PERSON_JOBS, ids=lambda j: j.__name__)
    def test_either_job_alone_stores_both_roles_over_all_placements(
        self, db: Db, job: JobBody
    ) -> None:
        """Employing and training bodies of past, current, future and draft placements."""
        p = db.person()
        db.placement(p, db.post(employing=1, training=1), day(-900), day(-600))
        db.placement(p, db.post(employing=2, training=3), day(100), day(400), lifecycle="DRAFT")
        db.placement(p, db.post(employing=None, training=4), day(-10), day(10))
        db.placement(p, db.post(employing=5, training=None), None, None)
        job(db.context())
        assert db.person_trusts() == [(p, 1), (p, 2), (p, 3), (p, 4), (p, 5)]

    def test_a_trust_in_both_roles_and_many_placements_is_stored_once(self, db: Db) -> None:
        """(personId, trustId) is unique, however many ways the pair arises."""
        p = db.person()
        for offset in (-300, -100, 100):
            db.placement(p, db.post(employing=7, training=7), day(offset), day(offset + 50))
        db.placement(p, db.post(employing=8, training=7), day(-5), day(5))
        _jobs.person_trust_employing_body(db.context())
        assert db.person_trusts() == [(p, 7), (p, 8)]

    def test_stale_rows_go_and_missing_rows_come(self, db: Db) -> None:
        """The switch deletes pairs no placement supports and inserts the new ones."""
        p, q = db.person(), db.person()
        db.placement(p, db.post(employing=1, training=2), day(-5), day(5))
        with db.engine.begin() as conn:
            conn.execute(insert(person_trust), [
                {"personId": p, "trustId": 1},  # still right
                {"personId": p, "trustId": 9},  # stale: that placement is gone
                {"personId": q, "trustId": 1},  # stale: q has no placement
            ])  # fmt: skip
        ctx = db.context()
        _jobs.person_trust_training_body(ctx)
        assert db.person_trusts() == [(p, 1), (p, 2)]
        assert (ctx.rows_read, ctx.rows_written) == (2, 3)

    def test_duplicates_of_the_old_schema_are_removed(self, legacy_db: Db) -> None:
        """A table the old service filled twice keeps one row per pair, the oldest."""
        db = legacy_db
        p = db.person()
        db.placement(p, db.post(employing=1, training=2), day(-5), day(5))
        with db.engine.begin() as conn:
            conn.execute(insert(legacy_person_trust), [
                {"id": 10, "personId": p, "trustId": 1},
                {"id": 11, "personId": p, "trustId": 1},
                {"id": 12, "personId": p, "trustId": 2},
                {"id": 13, "personId": p, "trustId": 1},
            ])  # fmt: skip
        _jobs.person_trust_employing_body(db.context())
        with db.reader.connect() as conn:
            rows = conn.execute(
                select(legacy_person_trust.c.id, legacy_person_trust.c.trustId).order_by("id")
            ).all()
        assert [tuple(r) for r in rows] == [(10, 1), (12, 2)]

    def test_a_second_run_writes_nothing(self, db: Db) -> None:
        """The training job after the employing job finds the table complete."""
        p = db.person()
        db.placement(p, db.post(employing=1, training=2), day(-5), day(5))
        _jobs.person_trust_employing_body(db.context())
        ctx = db.context()
        _jobs.person_trust_training_body(ctx)
        assert ctx.rows_written == 0
        assert db.person_trusts() == [(p, 1), (p, 2)]

    def test_a_failure_during_the_switch_leaves_the_previous_table(self, db: Db) -> None:
        """An error after the deletes and before the inserts rolls the deletes back."""
        p = db.person()
        db.placement(p, db.post(employing=1, training=2), day(-5), day(5))
        with db.engine.begin() as conn:
            conn.execute(insert(person_trust).values(personId=p, trustId=9))
        seen: list[list[tuple[int, int | None]]] = []
        ctx = db.context()

        def look_then_crash() -> None:
            seen.append(db.person_trusts())
            raise RuntimeError("connection reset in the middle of the switch")

        ctx.recorder.on("tis.person_trust.stale_deleted", look_then_crash)
        with pytest.raises(RuntimeError, match="middle of the switch"):
            _jobs.person_trust_employing_body(ctx)
        assert seen == [[(p, 9)]]  # a reader during the switch: the previous table
        assert db.person_trusts() == [(p, 9)]


class TestPostTrust:
    @pytest.mark.parametrize("job", POST_JOBS, ids=lambda j: j.__name__)
    def test_either_job_alone_stores_each_posts_bodies(self, db: Db, job: JobBody) -> None:
        """Both bodies of each post, once each, NULLs left out."""
        a = db.post(employing=1, training=2)
        b = db.post(employing=3, training=3)
        c = db.post(employing=None, training=4)
        db.post(employing=None, training=None)
        job(db.context())
        assert db.post_trusts() == [(a, 1), (a, 2), (b, 3), (c, 4)]

    def test_a_changed_body_replaces_the_old_pair(self, db: Db) -> None:
        """Rows for a body the post no longer has are deleted."""
        a = db.post(employing=1, training=2)
        with db.engine.begin() as conn:
            conn.execute(insert(post_trust).values(postId=a, trustId=5))
        ctx = db.context()
        _jobs.post_trust_training_body(ctx)
        assert db.post_trusts() == [(a, 1), (a, 2)]
        assert ctx.rows_written == 3


def test_the_trust_steps_report_progress_and_can_be_cancelled(db: Db) -> None:
    """Cancellation between the staging passes leaves PersonTrust untouched."""
    p = db.person()
    db.placement(p, db.post(employing=1, training=2), day(-5), day(5))
    ctx = db.context()
    ctx.recorder.on("tis.person_trust.step", ctx.cancel)
    with pytest.raises(RunCancelled):
        _jobs.person_trust_employing_body(ctx)
    assert db.person_trusts() == []
    assert ctx.progress == [(0, 3), (1, 3)]
