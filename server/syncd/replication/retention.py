"""When tombstones may go (§3.7): a deleted record's tombstone is purged once every peer that
needs it has received it and it is older than `replication.tombstone_retention`.

- On a parent, "received" is each child's acknowledged cursor (`acked_by_child`, moved at the
  end of each child's push, or by a bundle's receipt): the floor is the lowest, over every
  child the parent has exchanged with, of its latest epoch's cursor. A child that never
  acknowledged anything has no cursor yet; when it first synchronises it is behind the gc
  floor and is sent every collected tombstone, so it holds nothing back.
- On a child, it is what its parent has pulled from it (`acked_by_parent`, sent by the
  parent's cycle after the pull, or a bundle's receipt).

A repository with both kinds of cursor uses the lower floor. Pure rules over the cursors;
`SqlRepository.collect_tombstones` does the purge (and keeps the graveyard).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Protocol

from syncd.replication.model import ACKED_BY_CHILD, ACKED_BY_PARENT

CursorRow = tuple[str, str, str, int, datetime]  # peer id, peer epoch, stream, cursor, updated


class Collecting(Protocol):
    def cursors(self) -> list[CursorRow]: ...
    def collect_tombstones(self, *, older_than: timedelta, below_seq: int) -> int: ...


def floor(cursors: Iterable[CursorRow], stream: str) -> int | None:
    """The lowest of each peer's latest-epoch cursor of `stream`; None when no peer has one.
    (A restored peer's older epoch is void: only its newest cursor counts.)"""
    latest: dict[str, tuple[datetime, int]] = {}
    for peer_id, _epoch, kind, cursor, updated in cursors:
        if kind != stream:
            continue
        if peer_id not in latest or latest[peer_id][0] <= updated:
            latest[peer_id] = (updated, cursor)
    return min(c for _, c in latest.values()) if latest else None


def collectable_below(cursors: Iterable[CursorRow]) -> int | None:
    rows = list(cursors)
    floors = [f for f in (floor(rows, ACKED_BY_CHILD), floor(rows, ACKED_BY_PARENT)) if f]
    return min(floors) if floors else None


def collect(repo: Collecting, retention: timedelta) -> int:
    """Purge what every peer has received and is older than `retention`; how many went."""
    below = collectable_below(repo.cursors())
    if below is None:
        return 0
    return repo.collect_tombstones(older_than=retention, below_seq=below)
