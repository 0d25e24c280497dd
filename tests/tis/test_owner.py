"""PersonOwnerRebuildJob: the owner rules P1-P8 with their quirks, and the switch."""

from __future__ import annotations

import threading
from datetime import date, timedelta

import pytest
from sqlalchemy import delete, insert, update

from syncd.errors import RunCancelled
from syncd_tis import _jobs, _owner
from syncd_tis._schema import person, person_owner, programme_membership
from syncd_tis._staging import Applied
from tests.tis.conftest import Db, RecordingRunContext

TODAY = date(2026, 3, 10)
LONDON, WESSEX, NORTH = "London", "Wessex", "North East"
WAIT = 10.0  # bound on every cross-thread wait


def day(offset: int) -> date:
    return TODAY + timedelta(days=offset)


def rebuild(db: Db, ctx: RecordingRunContext | None = None) -> Applied:
    ctx = ctx or db.context()
    return _owner.rebuild(db.engine, ctx, today=TODAY, settings=db.settings())


def owner_of(db: Db, person_id: int) -> tuple[str | None, str | None]:
    rebuild(db)
    return db.owners()[person_id]


class TestRules:
    def test_p1_a_current_membership_gives_its_programme_owner(self, db: Db) -> None:
        """P1: a membership with start <= today <= end wins over everything else."""
        p = db.person()
        db.membership(p, db.programme(LONDON), day(-100), day(100))
        db.placement(p, db.post(WESSEX), day(-10), day(10))
        assert owner_of(db, p) == (LONDON, "P1")

    def test_p1_the_earliest_start_among_current_memberships(self, db: Db) -> None:
        """P1 takes the current membership that started first."""
        p = db.person()
        db.membership(p, db.programme(WESSEX), day(-50), day(50))
        db.membership(p, db.programme(LONDON), day(-400), day(5))
        assert owner_of(db, p) == (LONDON, "P1")

    def test_p1_includes_its_first_and_last_day(self, db: Db) -> None:
        """Start and end dates are inclusive: a membership ending today is current."""
        p, q = db.person(), db.person()
        db.membership(p, db.programme(LONDON), day(-30), day(0))
        db.membership(q, db.programme(WESSEX), day(0), day(30))
        rebuild(db)
        assert db.owners()[p] == (LONDON, "P1")
        assert db.owners()[q] == (WESSEX, "P1")

    def test_p2_a_current_placement_when_no_membership_is_current(self, db: Db) -> None:
        """P2: the post of the current placement with the earliest dateFrom."""
        p = db.person()
        db.membership(p, db.programme(NORTH), day(-900), day(-400))  # past: P7, later rule
        db.placement(p, db.post(WESSEX), day(-5), day(60))
        db.placement(p, db.post(LONDON), day(-20), day(60))
        assert owner_of(db, p) == (LONDON, "P2")

    def test_p2_counts_draft_placements(self, db: Db) -> None:
        """Placements count whatever their lifecycle state, drafts included, as in TCS."""
        p = db.person()
        db.placement(p, db.post(LONDON), day(-5), day(5), lifecycle="DRAFT")
        assert owner_of(db, p) == (LONDON, "P2")

    def test_p5_the_soonest_future_membership(self, db: Db) -> None:
        """P5: with nothing current, the membership that starts soonest."""
        p = db.person()
        db.membership(p, db.programme(WESSEX), day(200), day(900))
        db.membership(p, db.programme(LONDON), day(30), day(900))
        db.placement(p, db.post(NORTH), day(10), day(100))  # future placement: P6, later
        assert owner_of(db, p) == (LONDON, "P5")

    def test_p6_the_soonest_future_placement(self, db: Db) -> None:
        """P6: a future placement beats any past membership or placement."""
        p = db.person()
        db.placement(p, db.post(WESSEX), day(60), day(200))
        db.placement(p, db.post(LONDON), day(7), day(200))
        db.membership(p, db.programme(NORTH), day(-900), day(-1))
        assert owner_of(db, p) == (LONDON, "P6")

    def test_p7_the_latest_ended_membership(self, db: Db) -> None:
        """P7: only past memberships: the one that ended last."""
        p = db.person()
        db.membership(p, db.programme(WESSEX), day(-900), day(-400))
        db.membership(p, db.programme(LONDON), day(-300), day(-1))
        db.placement(p, db.post(NORTH), day(-100), day(-50))  # past placement: P8, later
        assert owner_of(db, p) == (LONDON, "P7")

    def test_p8_the_latest_ended_placement(self, db: Db) -> None:
        """P8: only past placements: the one that ended last."""
        p = db.person()
        db.placement(p, db.post(WESSEX), day(-900), day(-400))
        db.placement(p, db.post(LONDON), day(-300), day(-2))
        assert owner_of(db, p) == (LONDON, "P8")

    def test_nothing_matches_gives_a_row_with_no_owner(self, db: Db) -> None:
        """A person without memberships or placements still gets a row: owner and rule NULL."""
        p = db.person()
        assert owner_of(db, p) == (None, None)


class TestNullDates:
    def test_a_membership_without_end_is_never_current(self, db: Db) -> None:
        """NULL never compares: an open-ended membership matches neither P1 nor P7."""
        p = db.person()
        db.membership(p, db.programme(LONDON), day(-100), None)
        db.placement(p, db.post(WESSEX), day(-300), day(-200))
        assert owner_of(db, p) == (WESSEX, "P8")

    def test_a_membership_without_start_can_still_be_past(self, db: Db) -> None:
        """P7 looks at the end date only, so a missing start does not stop it."""
        p = db.person()
        db.membership(p, db.programme(LONDON), None, day(-10))
        assert owner_of(db, p) == (LONDON, "P7")

    def test_a_placement_without_dates_matches_nothing(self, db: Db) -> None:
        """A placement with both dates NULL is invisible to every rule."""
        p = db.person()
        db.placement(p, db.post(LONDON), None, None)
        assert owner_of(db, p) == (None, None)


class TestQuirks:
    def test_ties_go_to_the_lowest_id(self, db: Db) -> None:
        """Two current memberships starting the same day: the older record (lower id) wins."""
        p = db.person()
        db.membership(p, db.programme(WESSEX), day(-10), day(10))
        db.membership(p, db.programme(LONDON), day(-10), day(99))
        assert owner_of(db, p) == (WESSEX, "P1")

    def test_ties_on_the_latest_end_also_go_to_the_lowest_id(self, db: Db) -> None:
        """For "latest" rules the tie-break is the same: the lower id."""
        p = db.person()
        db.placement(p, db.post(NORTH), day(-90), day(-3))
        db.placement(p, db.post(LONDON), day(-60), day(-3))
        assert owner_of(db, p) == (NORTH, "P8")

    def test_a_deciding_row_without_owner_falls_through(self, db: Db) -> None:
        """The current membership's programme has no owner: the next rule decides."""
        p = db.person()
        db.membership(p, db.programme(None), day(-10), day(10))
        db.placement(p, db.post(LONDON), day(-300), day(-200))
        assert owner_of(db, p) == (LONDON, "P8")

    def test_only_the_first_row_of_a_rule_counts(self, db: Db) -> None:
        """Like the procedure's LIMIT 1: a later current membership with an owner is not
        consulted when the earliest one has none."""
        p = db.person()
        db.membership(p, db.programme(None), day(-20), day(10))
        db.membership(p, db.programme(LONDON), day(-10), day(10))
        assert owner_of(db, p) == (None, "P1")

    def test_without_any_owner_the_last_matched_rule_label_stays(self, db: Db) -> None:
        """Owner NULL with the label of the last rule that matched, as TCS stores it."""
        p = db.person()
        db.membership(p, db.programme(None), day(-10), day(10))
        db.membership(p, db.programme(None), day(30), day(90))
        assert owner_of(db, p) == (None, "P5")

    def test_a_membership_of_a_missing_programme_does_not_match(self, db: Db) -> None:
        """The procedure's inner join: no Programme row, no match (not a NULL-owner match)."""
        p = db.person()
        db.membership(p, db.programme(LONDON), day(-900), day(-100))
        with db.unchecked() as conn:
            conn.execute(
                insert(programme_membership).values(
                    id=99, personId=p, programmeId=None, programmeStartDate=day(-5),
                    programmeEndDate=day(5),
                )
            )  # fmt: skip
        assert owner_of(db, p) == (LONDON, "P7")


class TestSwitch:
    def test_the_table_ends_up_one_correct_row_per_person(self, db: Db) -> None:
        """Stale rows are updated, missing ones inserted, rows of deleted persons removed."""
        a, b, c, gone = db.person(), db.person(), db.person(), db.person()
        db.membership(a, db.programme(LONDON), day(-10), day(10))
        db.membership(b, db.programme(WESSEX), day(-10), day(10))
        with db.engine.begin() as conn:
            conn.execute(insert(person_owner), [
                {"id": a, "owner": LONDON, "rule": "P1"},  # right already
                {"id": b, "owner": NORTH, "rule": "P7"},  # stale
                {"id": gone, "owner": NORTH, "rule": "P1"},
            ])  # fmt: skip
        with db.unchecked() as conn:
            conn.execute(delete(person).where(person.c.id == gone))
        ctx = db.context()
        applied = rebuild(db, ctx)
        assert db.owners() == {a: (LONDON, "P1"), b: (WESSEX, "P1"), c: (None, None)}
        assert (applied.updated, applied.inserted, applied.deleted) == (1, 1, 1)
        assert (ctx.rows_read, ctx.rows_written) == (3, 3)

    def test_a_second_run_writes_nothing(self, db: Db) -> None:
        """Recomputing unchanged data changes no row."""
        p = db.person()
        db.membership(p, db.programme(LONDON), day(-10), day(10))
        rebuild(db)
        again = rebuild(db)
        assert again.written == 0

    def test_readers_see_the_old_table_until_the_switch_commits(self, db: Db) -> None:
        """Midway through the switch another connection still reads the previous table."""
        p = db.person()
        db.membership(p, db.programme(LONDON), day(-10), day(10))
        with db.engine.begin() as conn:
            conn.execute(insert(person_owner).values(id=p, owner=NORTH, rule="P7"))
        seen: list[dict[int, tuple[str | None, str | None]]] = []
        ctx = db.context()
        ctx.recorder.on("tis.owner.updated", lambda: seen.append(db.owners()))
        rebuild(db, ctx)
        assert seen == [{p: (NORTH, "P7")}]
        assert db.owners() == {p: (LONDON, "P1")}

    def test_a_failure_during_the_switch_leaves_the_previous_table(self, db: Db) -> None:
        """An error between the switch's statements rolls all of them back."""
        p, q = db.person(), db.person()
        db.membership(p, db.programme(LONDON), day(-10), day(10))
        db.membership(q, db.programme(WESSEX), day(-10), day(10))
        with db.engine.begin() as conn:
            conn.execute(insert(person_owner).values(id=p, owner=NORTH, rule="P7"))
        ctx = db.context()

        def crash() -> None:
            raise RuntimeError("lost in the middle of the switch")

        ctx.recorder.on("tis.owner.inserted", crash)
        with pytest.raises(RuntimeError, match="middle of the switch"):
            rebuild(db, ctx)
        assert db.owners() == {p: (NORTH, "P7")}

    def test_cancelling_while_staging_changes_nothing(self, db: Db) -> None:
        """A cancel honoured between staging steps leaves the table as it was."""
        p = db.person()
        db.membership(p, db.programme(LONDON), day(-10), day(10))
        ctx = db.context()
        ctx.recorder.on("tis.owner.step", ctx.cancel)
        with pytest.raises(RunCancelled):
            rebuild(db, ctx)
        assert db.owners() == {}
        assert ctx.progress[-1] == (1, 4)

    def test_the_job_body_rebuilds_with_todays_date(self, db: Db) -> None:
        """The bean's body runs the rebuild against the configured database for today."""
        p = db.person()
        today = _jobs.utc_today()
        db.membership(p, db.programme(LONDON), today - timedelta(days=1), today)
        ctx = db.context()
        _jobs.person_owner_rebuild(ctx)
        assert db.owners() == {p: (LONDON, "P1")}
        assert ctx.progress[-1] == (4, 4)
        assert "tis.owner.applied" in ctx.recorder.names()


@pytest.mark.services
@pytest.mark.parametrize("writer_commits", ["before the switch", "during the switch"])
def test_concurrent_writes_to_person_owner_do_not_fail_the_rebuild(
    mariadb_db: Db, writer_commits: str
) -> None:
    """TCS's trigger rewrites PersonOwner rows while the rebuild runs (the 2020/2021
    incidents): no duplicate-key failure, and the result is one correct row per person."""
    db = mariadb_db
    people = [db.person() for _ in range(6)]
    for p in people:
        db.membership(p, db.programme(LONDON), day(-10), day(10))
    with db.engine.begin() as conn:
        conn.execute(insert(person_owner), [
            {"id": people[0], "owner": NORTH, "rule": "P7"},
            {"id": people[1], "owner": NORTH, "rule": "P7"},
        ])  # fmt: skip
    written, release, finished = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def trigger_like_writer() -> None:
        try:
            with db.reader.connect() as conn, conn.begin():
                # What V3.77's trigger does after an edit: delete and re-insert the row.
                conn.execute(delete(person_owner).where(person_owner.c.id == people[1]))
                conn.execute(insert(person_owner).values(id=people[1], owner=WESSEX, rule="P2"))
                conn.execute(insert(person_owner).values(id=people[2], owner=WESSEX, rule="P2"))
                conn.execute(
                    update(person_owner).where(person_owner.c.id == people[0]).values(owner=WESSEX)
                )
                written.set()
                if writer_commits == "during the switch":
                    assert release.wait(WAIT), "the rebuild never reached its switch"
        except BaseException as exc:
            errors.append(exc)
        finally:
            written.set()
            finished.set()

    writer = threading.Thread(target=trigger_like_writer, name="tcs-trigger")

    def meet_the_writer() -> None:
        writer.start()
        assert written.wait(WAIT), "the writer never wrote"
        if writer_commits == "before the switch":
            assert finished.wait(WAIT), "the writer never committed"
        release.set()  # the writer commits while our statements run (and wait for its locks)

    ctx = db.context()
    ctx.recorder.on("tis.owner.applying", meet_the_writer)
    try:
        rebuild(db, ctx)
    finally:
        release.set()
        writer.join(WAIT)
    assert not writer.is_alive()
    assert errors == []
    assert db.owners() == {p: (LONDON, "P1") for p in people}
