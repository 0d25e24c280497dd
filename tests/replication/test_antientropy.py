"""Anti-entropy (§3.7): digests compared, differing buckets repaired both ways with the
normal conditional apply; damage behind the change log is repaired, a pass over equal
replicas costs one digest call on each side."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from syncd.replication.antientropy import differences
from syncd.replication.model import JOB, NOTE, Change, Version
from tests.replication.fleet import Fleet, Replica, later, live


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    f = Fleet(2)
    yield f
    f.close()


def note(text: str) -> dict[str, str]:
    return {"body": json.dumps({"text": text, "subject": "job:A", "author": "op"})}


def behind_the_log(replica: Replica, statement: str) -> None:
    """An edit made in the database directly: no version stamped, nothing in the change log."""
    engine = sa.create_engine(f"sqlite:///{replica.path}")
    with engine.begin() as conn:
        conn.execute(sa.text(statement))
    engine.dispose()


def test_differences_send_each_side_what_it_lacks_or_holds_older() -> None:
    def change(id_: str, hlc: int) -> Change:
        return Change(type=NOTE, id=id_, version=Version(hlc, "r"))

    up, down = differences(
        [change("same", 5), change("parent-newer", 9), change("parent-only", 1)],
        [change("same", 5), change("parent-newer", 3), change("child-only", 2)],
    )
    assert [c.id for c in up] == ["child-only"]
    assert [c.id for c in down] == ["parent-newer", "parent-only"]


def test_damage_behind_the_change_log_is_repaired_by_an_anti_entropy_pass(fleet: Fleet) -> None:
    parent, (c1, c2) = fleet.parent, fleet.children
    for i in range(1, 6):
        parent.repo.write(NOTE, f"n{i}", note(f"note {i}"))
    parent.repo.write(JOB, "A", {"body": json.dumps({"at": "02:00"})})
    fleet.quiesce()
    expected = live(parent.records())

    c1.close()  # the operator edits child1's database by hand while it is down
    # Rows lost with their log entries (a table restored from an older dump), a row set back
    # to an older version, and a row the parent never saw (inserted with a version).
    behind_the_log(c1, "DELETE FROM syncd_notes WHERE note_id = 'n2'")
    behind_the_log(c1, "DELETE FROM syncd_changes WHERE type = 'note' AND id = 'n2'")
    behind_the_log(c1, "UPDATE syncd_notes SET hlc = hlc - 1, body = '{}' WHERE note_id = 'n3'")
    behind_the_log(c1, "DELETE FROM syncd_jobdefs WHERE name = 'A'")
    behind_the_log(c1, "DELETE FROM syncd_changes WHERE type = 'job' AND id = 'A'")
    origin = c1.repo.repo_id
    hlc = (fleet.clock.ms - 1000) << 16
    behind_the_log(
        c1,
        "INSERT INTO syncd_notes (note_id, body, hlc, origin, deleted, base_hlc, base_origin)"
        f" VALUES ('restored', '{{}}', {hlc}, '{origin}', 0, 0, '')",
    )
    c1.ledger = c1._open()
    later(fleet.clock, 1)

    assert fleet.cycle().status == 0  # the change log shows nothing: nothing moves
    assert (NOTE, "n2") not in c1.records()

    report = fleet.cycle(anti_entropy=True)
    assert report.status == 0
    # child1: n2, n3 and A down, "restored" up; child2, compared next, takes "restored".
    assert [r.repaired for r in report.rows] == [4, 1]
    assert live(c1.records()) == expected | {(NOTE, "restored"): (False, {"body": "{}"})}
    assert (NOTE, "restored") in live(c2.records())
    assert fleet.quiesce() <= 2
    assert all(live(r.records()) == live(parent.records()) for r in fleet.replicas)


def test_a_row_deleted_by_hand_while_its_log_entry_stays_is_repaired(fleet: Fleet) -> None:
    """Only the row goes (its change-log entry stays): the repaired key is a new row to the
    child, and its log entry is replaced, not inserted a second time."""
    parent, (c1, _c2) = fleet.parent, fleet.children
    for i in range(1, 4):
        parent.repo.write(NOTE, f"n{i}", note(f"note {i}"))
    fleet.quiesce()
    expected = live(parent.records())

    c1.close()
    behind_the_log(c1, "DELETE FROM syncd_notes WHERE note_id = 'n2'")
    c1.ledger = c1._open()
    assert (NOTE, "n2") not in c1.records()

    report = fleet.cycle(anti_entropy=True)
    assert report.status == 0, report.rows[0].error
    assert [r.repaired for r in report.rows] == [1, 0]
    assert live(c1.records()) == expected
    engine = sa.create_engine(f"sqlite:///{c1.path}")
    with engine.connect() as conn:
        logged = conn.execute(
            sa.text("SELECT count(*) FROM syncd_changes WHERE type = 'note' AND id = 'n2'")
        ).scalar_one()
    engine.dispose()
    assert logged == 1
    assert fleet.quiesce() <= 2
    assert all(live(r.records()) == live(parent.records()) for r in fleet.replicas)


def test_a_pass_over_equal_replicas_is_one_digest_call_on_each_side(fleet: Fleet) -> None:
    fleet.parent.repo.write(NOTE, "n", note("x"))
    fleet.children[0].repo.write(NOTE, "m", note("y"))
    fleet.quiesce()
    for replica in fleet.replicas:
        replica.faults.seen.clear()
    report = fleet.cycle(fleet.rows(["child1"]), anti_entropy=True)
    assert report.status == 0 and report.rows[0].repaired == 0
    parent, child = fleet.parent.faults.seen, fleet.children[0].faults.seen
    assert (parent["digest"], child["digest"]) == (1, 1)
    assert parent["list_versions"] == child["list_versions"] == 0


def test_a_restored_child_is_compared_without_being_asked(fleet: Fleet) -> None:
    c1 = fleet.children[0]
    c1.repo.write(NOTE, "early", note("before the backup"))
    fleet.quiesce()
    backup = fleet.folder / "child1.backup"
    c1.snapshot_file(backup)
    fleet.quiesce()
    c1.restore(backup)  # a new epoch; it still holds its cursor of the parent's stream
    for replica in fleet.replicas:
        replica.faults.seen.clear()
    assert fleet.cycle().status == 0
    assert c1.faults.seen["digest"] == 1  # compared: restored
    assert fleet.children[1].faults.seen["digest"] == 0  # not: every-N is off here
    assert all(live(r.records()) == live(fleet.parent.records()) for r in fleet.replicas)
