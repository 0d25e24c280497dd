"""Tombstone collection (§3.7) on a parent and its children with a hand-moved clock: a
tombstone goes only once every peer that needs it has received it and the retention passed,
and nothing deleted comes back afterwards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from syncd.replication.model import ACKED_BY_CHILD, ACKED_BY_PARENT, NOTE
from syncd.replication.retention import collect, collectable_below, floor
from tests.replication.fleet import Fleet, later, live

RETENTION = timedelta(days=30)
KEY = (NOTE, "n1")


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    f = Fleet(2)
    yield f
    f.close()


def note(text: str) -> dict[str, str]:
    return {"body": json.dumps({"text": text, "subject": "job:A", "author": "op"})}


def test_the_floor_is_the_lowest_of_each_peers_latest_epoch() -> None:
    t1, t2 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    rows = [
        ("c1", "old", ACKED_BY_CHILD, 5, t1),  # restored since: its old epoch no longer counts
        ("c1", "new", ACKED_BY_CHILD, 40, t2),
        ("c2", "e", ACKED_BY_CHILD, 30, t1),
        ("p", "e", "from_child", 3, t1),  # another stream: not a receipt
    ]
    assert floor(rows, ACKED_BY_CHILD) == 30
    assert floor(rows, ACKED_BY_PARENT) is None
    assert collectable_below(rows) == 30
    assert collectable_below([]) is None


def test_a_tombstone_goes_when_every_peer_has_it_and_the_retention_passed(fleet: Fleet) -> None:
    parent, (c1, c2) = fleet.parent, fleet.children
    c1.repo.write(*KEY, note("soon gone"))
    assert fleet.cycle().status == 0
    c1.repo.write(*KEY, {}, deleted=True)
    # child2 misses the cycle that carries the tombstone.
    assert fleet.cycle(fleet.rows(["child1"])).status == 0
    later(fleet.clock, RETENTION.total_seconds() / 60 + 60)

    assert collect(parent.repo, RETENTION) == 0  # child2 has not acknowledged it
    assert collect(c1.repo, RETENTION) == 1  # the parent pulled it from child1
    assert KEY not in c1.records()

    assert fleet.cycle().status == 0  # child2 receives the tombstone and acknowledges it
    assert collect(parent.repo, RETENTION) == 1
    assert collect(c2.repo, RETENTION) == 0  # the parent has not yet pulled past it
    assert fleet.cycle().status == 0
    assert collect(c2.repo, RETENTION) == 1
    assert all(KEY not in r.records() for r in fleet.replicas)
    assert parent.repo.info().gc_floor > 0

    # Nothing comes back, and the replicas agree.
    fleet.quiesce()
    first = live(parent.records())
    assert all(live(r.records()) == first for r in fleet.replicas)
    assert KEY not in first


def test_a_young_tombstone_stays_whoever_received_it(fleet: Fleet) -> None:
    fleet.parent.repo.write(*KEY, note("x"))
    fleet.parent.repo.write(*KEY, {}, deleted=True)
    fleet.quiesce()
    later(fleet.clock, RETENTION.total_seconds() / 60 - 60)  # an hour short of the retention
    assert [collect(r.repo, RETENTION) for r in fleet.replicas] == [0, 0, 0]
    assert all(fleet.by_name(r.name).records()[KEY].deleted for r in fleet.replicas)
    later(fleet.clock, 120)
    assert collect(fleet.parent.repo, RETENTION) == 1


def test_a_later_collection_reads_only_what_was_logged_since_and_purges_its_tombstones(
    fleet: Fleet,
) -> None:
    """The second collection within the hour reads the log entries after the first one's
    bound (all types in one pass): their tombstones of age go, live records and the entries
    before stay."""
    repo = fleet.parent.repo
    for i in range(5):
        repo.write(NOTE, f"a{i}", note("kept"))
    assert (
        repo.collect_tombstones(older_than=RETENTION, below_seq=repo.info().stable_watermark) == 0
    )
    for i in range(5):
        repo.write(NOTE, f"b{i}", note("soon gone"))
    for i in range(3):
        repo.write(NOTE, f"b{i}", {}, deleted=True)
    later(fleet.clock, RETENTION.total_seconds() / 60 + 60)
    below = repo.info().stable_watermark
    assert repo.collect_tombstones(older_than=RETENTION, below_seq=below) == 3
    left = fleet.parent.records()
    assert {k[1] for k in left if k[0] == NOTE} == {"a0", "a1", "a2", "a3", "a4", "b3", "b4"}
    assert repo.info().gc_floor > 0
    assert repo.collect_tombstones(older_than=RETENTION, below_seq=below) == 0
