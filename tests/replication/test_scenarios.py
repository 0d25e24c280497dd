"""The fixed scenarios of the replication specification, each on a parent and real SQLite
repositories in one process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest

from syncd.enums import RunOutcome, RunState, Trigger
from syncd.errors import ClockAheadError, CursorGapError
from syncd.ledger.model import RunRecord
from syncd.replication.children import parse_children
from syncd.replication.hlc import Hlc
from syncd.replication.model import FROM_PARENT, HOLD, JOB, NOTE, RUN, Change, Version
from tests.replication.fleet import Fleet, later, live


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    f = Fleet(3)
    yield f
    f.close()


def note(text: str) -> dict[str, str]:
    return {"body": json.dumps({"text": text, "subject": "job:A", "author": "op"})}


def run_record(run_id: str, fleet: Fleet, bean: str = "A") -> RunRecord:
    return RunRecord(
        run_id=run_id,
        bean=bean,
        operation="run",
        trigger=Trigger.MANUAL,
        actor="op",
        started_at=fleet.clock.now(),
    )


def text_of(fleet: Fleet, replica: str, note_id: str) -> str:
    change = fleet.by_name(replica).records()[(NOTE, note_id)]
    return str(json.loads(change.body["body"])["text"]) if not change.deleted else "<deleted>"


def test_a_clean_cycle_makes_every_replica_identical(fleet: Fleet) -> None:
    """Runs, holds and notes written anywhere reach every replica in one cycle."""
    c1, c2 = fleet.children[0], fleet.children[1]
    c1.ledger.record_start(run_record("r-c1", fleet))
    c2.ledger.set_hold("B", fleet.clock.now())
    fleet.parent.repo.write(NOTE, "n1", note("from the parent"))
    fleet.parent.repo.write(JOB, "A", {"body": json.dumps({"at": "02:00"})})
    report = fleet.cycle()
    assert report.status == 0, report
    first = live(fleet.parent.records())
    assert all(live(r.records()) == first for r in fleet.replicas)
    assert (RUN, "r-c1") in first and (HOLD, "B") in first and (JOB, "A") in first
    assert fleet.quiesce() == 1


def test_two_children_edit_one_note_and_the_higher_hlc_wins_everywhere(fleet: Fleet) -> None:
    """Scenario 1: the later write wins on every replica, and a conflict row is written."""
    c1, c2 = fleet.children[0], fleet.children[1]
    base = fleet.parent.repo.write(NOTE, "n", note("v0"))
    fleet.cycle()
    c1.repo.write(NOTE, "n", note("from c1"))
    later(fleet.clock, 1)
    c2.repo.write(NOTE, "n", note("from c2"))
    # Both writers had read v0: record the base so the parent can see they were concurrent.
    mine = c1.records()[(NOTE, "n")]
    assert mine.version > base
    report = fleet.cycle()
    assert report.status == 0
    assert {text_of(fleet, r.name, "n") for r in fleet.replicas} == {"from c2"}
    # Both edits were made on v0: the parent records the loser for audit.
    (conflict,) = [c for c in fleet.parent.repo.conflicts() if c["id"] == "n"]
    assert conflict["loser_origin"] == c1.repo.repo_id
    assert conflict["winner_origin"] == c2.repo.repo_id
    assert sum(r.conflicts for r in report.rows) == 1


def test_equal_hlc_is_decided_by_origin(fleet: Fleet) -> None:
    """Scenario 2: the same hlc on two repositories: the larger origin wins everywhere."""
    c1, c2 = fleet.children[0], fleet.children[1]
    c1.repo.write(NOTE, "n", note("c1"))
    c2.repo.write(NOTE, "n", note("c2"))  # the same clock, so the same hlc
    v1, v2 = c1.records()[(NOTE, "n")].version, c2.records()[(NOTE, "n")].version
    assert v1.hlc == v2.hlc
    winner = "c1" if v1 > v2 else "c2"
    fleet.cycle()
    assert {text_of(fleet, r.name, "n") for r in fleet.replicas} == {winner}


def test_a_later_delete_beats_an_earlier_update_and_does_not_come_back(fleet: Fleet) -> None:
    """Scenario 3: update against delete: both are versions, the larger wins; a deleted hold
    stays deleted after more cycles."""
    c1, c2 = fleet.children[0], fleet.children[1]
    fleet.parent.ledger.set_hold("A", fleet.clock.now())
    fleet.cycle()
    c1.repo.write(NOTE, "n", note("keep"))
    later(fleet.clock, 1)
    c2.repo.write(NOTE, "n", {}, deleted=True)
    c2.ledger.clear_hold("A")
    fleet.cycle()
    fleet.cycle()
    for r in fleet.replicas:
        assert (NOTE, "n") not in live(r.records())
        assert r.ledger.holds() == {}


def test_a_losing_child_write_is_overwritten_in_the_same_cycle(fleet: Fleet) -> None:
    """Scenario 4 (ping-back): a child's write older than the parent's is sent the winner in
    the same cycle, although the parent's row did not change."""
    c1 = fleet.children[0]
    fleet.parent.repo.write(NOTE, "n", note("parent"))
    fleet.cycle()  # child1 holds the parent's note; its cursor is past it
    # child1 loses its clock state and runs an hour slow: its next write is older.
    fleet.clock.skew["child1"] = -3_600_000
    c1.repo.hlc = Hlc(fleet.clock.wall("child1"))
    c1.repo.write(NOTE, "n", note("child, slow clock"))
    report = fleet.cycle()
    assert report.rows[0].stale_or_rejected == 1
    assert text_of(fleet, "child1", "n") == "parent"
    assert fleet.parent.repo.pending_pingbacks() == 0


def test_a_child_down_during_push_is_status_1_and_the_next_cycle_completes_it(
    fleet: Fleet,
) -> None:
    """Scenario 5: the others are updated; nothing is lost; the next cycle finishes it."""
    c1, c3 = fleet.children[0], fleet.children[2]
    c1.repo.write(NOTE, "from-c1", note("x"))
    c3.repo.write(NOTE, "from-c3", note("y"))
    c3.faults.refuse = {"apply_changes"}  # reachable for its pull, gone for its push
    report = fleet.cycle()
    assert report.status == 1
    assert [r.result for r in report.rows] == ["ok", "ok", "failed"]
    assert "push" in report.rows[2].error
    assert (NOTE, "from-c3") in live(fleet.children[1].records())  # pulled before the failure
    assert (NOTE, "from-c1") not in live(c3.records())
    c3.faults.refuse = set()
    assert fleet.cycle().status == 0
    assert all(live(r.records()) == live(fleet.parent.records()) for r in fleet.replicas)


def test_a_lost_reply_after_apply_is_retried_as_a_no_op(fleet: Fleet) -> None:
    """Scenario 6: the parent committed, the reply was lost; the retry changes nothing and no
    change is logged twice."""
    c1 = fleet.children[0]
    fleet.cycle()
    c1.repo.write(NOTE, "n", note("once"))
    fleet.parent.faults.lose_reply = {"apply_changes"}
    before = fleet.parent.repo.info().stable_watermark
    report = fleet.cycle()
    assert report.status == 0
    assert text_of(fleet, "parent", "n") == "once"
    # One change logged for the note at the parent (the retry was a duplicate).
    assert fleet.parent.repo.info().stable_watermark == before + 1


def test_a_child_clock_an_hour_behind_loses_no_edit(fleet: Fleet) -> None:
    """Scenario 7: cursors, not times, select what is sent: a slow clock's edits arrive."""
    c1 = fleet.children[0]
    fleet.cycle()
    fleet.clock.skew["child1"] = -3_600_000
    c1.repo.write(NOTE, "slow", note("written by a slow clock"))
    c1.ledger.record_start(run_record("slow-run", fleet))
    fleet.cycle()
    parent = live(fleet.parent.records())
    assert (NOTE, "slow") in parent and (RUN, "slow-run") in parent


def test_a_child_clock_a_day_ahead_is_refused_with_clock_ahead(fleet: Fleet) -> None:
    """Scenario 8: the batch fails with clock_ahead; the child is failed, the others are not."""
    c1 = fleet.children[0]
    fleet.clock.skew["child1"] = 86_400_000
    c1.repo.write(NOTE, "future", note("from tomorrow"))
    report = fleet.cycle()
    assert report.status == 1
    assert report.rows[0].result == "failed" and "clock_ahead" in report.rows[0].error
    assert [r.result for r in report.rows[1:]] == ["ok", "ok"]
    assert (NOTE, "future") not in live(fleet.parent.records())
    with pytest.raises(ClockAheadError):
        fleet.parent.repo.apply_changes(
            source_id="x",
            source_epoch="e",
            stream="from_child",
            from_cursor=0,
            to_cursor=1,
            changes=[c1.records()[(NOTE, "future")]],
        )


def test_a_restored_child_changes_epoch_and_a_full_pass_converges(fleet: Fleet) -> None:
    """Scenario 10: a child restored from backup gets a new epoch; the parent pulls it in
    full and pushes what it lacks; every replica ends equal."""
    c1 = fleet.children[0]
    c1.repo.write(NOTE, "early", note("before the backup"))
    fleet.cycle()
    backup = fleet.folder / "child1.backup"
    c1.snapshot_file(backup)
    c1.repo.write(NOTE, "late", note("after the backup"))
    fleet.cycle()
    fleet.clock.advance(10_000)
    c1.restore(backup)
    assert (NOTE, "late") not in c1.records()
    fleet.cycle()
    assert text_of(fleet, "child1", "late") == "after the backup"
    assert all(live(r.records()) == live(fleet.parent.records()) for r in fleet.replicas)


def test_a_child_config_edit_is_refused_and_sent_back_with_status_0(fleet: Fleet) -> None:
    """Scenario 12: a job definition written on a child is overruled by the parent's, with a
    warning, not a failure."""
    c1 = fleet.children[0]
    fleet.parent.repo.write(JOB, "A", {"body": json.dumps({"at": "02:00"})})
    fleet.cycle()
    later(fleet.clock, 1)
    c1.repo.write(JOB, "A", {"body": json.dumps({"at": "05:00"})})
    c1.repo.write(JOB, "rogue", {"body": json.dumps({"at": "06:00"})})
    report = fleet.cycle()
    assert report.status == 0
    assert "refused" in report.rows[0].warning
    for r in fleet.replicas:
        records = live(r.records())
        assert json.loads(records[(JOB, "A")][1]["body"]) == {"at": "02:00"}
        assert (JOB, "rogue") not in records
    assert fleet.quiesce() == 1


def test_legacy_children_string_with_a_spaced_timestamp_and_a_skipped_row(fleet: Fleet) -> None:
    """Scenario 13: everything after the URL is the timestamp; a row not `true` is skipped."""
    rows = parse_children(
        "child1 true local:child1 2011-08-08 12:00;child2 false local:child2;"
        "child3 TRUE local:child3 08/01/2013 11:30:45"
    )
    assert [r.connected for r in rows] == [True, False, True]
    assert rows[0].last_sync_time is not None and rows[0].last_sync_time.hour == 12
    assert rows[2].last_sync_time is not None and rows[2].last_sync_time.month == 8
    fleet.children[1].repo.write(NOTE, "c2", note("waits"))
    report = fleet.cycle(rows)
    assert report.status == 0
    assert [r.result for r in report.rows] == ["ok", "skipped", "ok"]
    assert (NOTE, "c2") not in live(fleet.parent.records())


def test_a_batch_after_a_gap_is_refused_and_a_retried_batch_is_a_no_op(fleet: Fleet) -> None:
    """The cursor rule of ApplyChanges: `from > stored` is a gap, `to <= stored` a retry."""
    repo = fleet.children[0].repo
    change = Change(type=NOTE, id="n", version=Version(1 << 16, "p"), body=note("x"))
    kw: dict[str, str] = {"source_id": "p", "source_epoch": "e", "stream": FROM_PARENT}
    with pytest.raises(CursorGapError) as gap:
        repo.apply_changes(from_cursor=5, to_cursor=9, changes=[change], **kw)
    assert gap.value.stored == 0
    first = repo.apply_changes(from_cursor=0, to_cursor=9, changes=[change], **kw)
    newer = replace(change, version=Version(2 << 16, "p"), body=note("y"))
    again = repo.apply_changes(from_cursor=0, to_cursor=9, changes=[newer], **kw)
    assert (first.applied, first.stored_cursor) == (1, 9)
    assert (again.applied, again.stored_cursor) == (0, 9)
    assert text_of(fleet, "child1", "n") == "x"


def test_another_repositorys_open_run_is_not_marked_interrupted(fleet: Fleet) -> None:
    """A replicated run still running on its child is the child's to finish, not the
    parent's start-up repair's."""
    c1 = fleet.children[0]
    c1.ledger.record_start(run_record("busy", fleet))
    fleet.cycle()
    assert fleet.parent.ledger.mark_interrupted(fleet.clock.now()) == []
    got = fleet.parent.ledger.get("busy")
    assert got is not None and got.state is RunState.RUNNING
    assert fleet.parent.ledger.history() == []
    assert [r.run_id for r in fleet.parent.ledger.history(repository="*")] == ["busy"]
    finished = replace(
        run_record("busy", fleet),
        state=RunState.FINISHED,
        outcome=RunOutcome.SUCCESS,
        ended_at=fleet.clock.now() + timedelta(seconds=3),
    )
    c1.ledger.record_end(finished)
    fleet.cycle()
    got = fleet.parent.ledger.get("busy")
    assert got is not None and got.outcome is RunOutcome.SUCCESS
    assert got.origin == c1.repo.repo_id


def test_a_collected_tombstone_is_not_resurrected_by_a_restored_child(fleet: Fleet) -> None:
    """Scenario 11: the parent collects a tombstone every child acknowledged; a child then
    restored from a backup that still had the record sends it again: it stays deleted
    everywhere, and the parent keeps no data row for it."""
    c1 = fleet.children[0]
    fleet.children[1].repo.write(NOTE, "gone", note("soon deleted"))
    fleet.cycle()
    backup = fleet.folder / "child1.before-delete"
    c1.snapshot_file(backup)
    fleet.parent.repo.write(NOTE, "gone", {}, deleted=True)
    fleet.cycle()
    parent = fleet.parent.repo
    acked = [parent.cursor(c.repo.repo_id, c.repo.epoch, "acked_by_child") for c in fleet.children]
    assert all(a is not None for a in acked)
    purged = parent.collect_tombstones(
        older_than=timedelta(0), below_seq=min(a or 0 for a in acked)
    )
    assert purged >= 1 and (NOTE, "gone") not in parent.snapshot()
    fleet.clock.advance(10_000)
    c1.restore(backup)
    assert (NOTE, "gone") in live(c1.records())
    fleet.cycle()
    fleet.cycle()
    for r in fleet.replicas:
        assert (NOTE, "gone") not in live(r.records()), r.name


def test_two_cycles_at_once_keep_cursors_right_and_converge(fleet: Fleet) -> None:
    """Scenario 15: two daemons run SynchronizeJobData at the same time. ApplyChanges fences
    them (a batch at or below a stored cursor is a no-op, a gap is refused and resumed), so
    cursors only move forward and one more cycle leaves every replica equal."""
    import threading

    for i, child in enumerate(fleet.children):
        for n in range(20):
            child.repo.write(NOTE, f"{i}-{n}", note(f"{i}/{n}"))
    fleet.page_limit = 3
    reports: list[object] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            reports.append(fleet.cycle())
        except BaseException as exc:  # handed to the test below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(reports) == 2
    fleet.page_limit = 1000
    assert fleet.cycle().status == 0
    first = live(fleet.parent.records())
    assert len([k for k in first if k[0] == NOTE]) == 60
    assert all(live(r.records()) == first for r in fleet.replicas)
