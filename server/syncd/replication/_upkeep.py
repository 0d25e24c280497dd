"""The repository's upkeep: tombstone collection (with its graveyard), digests for
anti-entropy and checks, and small reports. A mixin of `SqlRepository`."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from syncd.ledger.schema import (
    changes_table,
    conflicts_table,
    counters_table,
    graveyard_table,
    pingbacks_table,
)
from syncd.replication._codec import CODECS, Codec, Tx, chunks
from syncd.replication.model import REPO, Change, Key

_FULL_PASS_EVERY = 3600.0  # seconds
_NEVER = 1 << 64  # above every hlc


@dataclass(frozen=True, slots=True)
class _Examined:
    """What the last tombstone collection read: the log up to `upto`, where the youngest
    tombstone it left (too young to go) has hlc `youngest_left`; a full pass began at `at`."""

    upto: int
    youngest_left: int
    at: float


class Upkeep:
    _tombstones_seen: _Examined | None = None
    _tx: Tx
    _read: Tx
    _now: Callable[[], datetime]
    # Provided by SqlRepository, which mixes this in: every stored record by key.
    snapshot: Callable[[], dict[Key, Change]]

    def digest(self, bits: int = 8) -> dict[int, str]:
        """Bucket (the first `bits` bits of the key's hash) -> hash of its sorted versions."""
        buckets: dict[int, list[str]] = {}
        for key, change in self.snapshot().items():
            buckets.setdefault(_bucket(key, bits), []).append(_line(change))
        return {
            b: hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()
            for b, lines in buckets.items()
        }

    def list_versions(self, bucket: int, bits: int = 8) -> list[Change]:
        return [c for k, c in self.snapshot().items() if _bucket(k, bits) == bucket]

    def pending_pingbacks(self) -> int:
        with self._read() as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).select_from(pingbacks_table)).scalar_one()
            )

    def conflicts(self, limit: int = 100) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(
                sa.select(conflicts_table)
                .order_by(conflicts_table.c.conflict_id.desc())
                .limit(limit)
            )
            return [dict(r._mapping) for r in rows]

    # --- tombstones --------------------------------------------------------------------------

    def collect_tombstones(self, *, older_than: timedelta, below_seq: int) -> int:
        """Purge tombstones logged at or below `below_seq` and older than `older_than`,
        raising the gc floor so a peer that missed them is reconciled, not resurrecting them.

        Called after every acknowledged sync, so it must not cost a scan of the whole log each
        time: what an earlier call examined (the log up to its `below_seq`, and the oldest
        tombstone it left there as too young) is remembered, and the next call reads only the
        entries logged since, unless that oldest one has come of age. Entries at or below a
        committed seq only ever go away, so nothing is missed; a full pass runs at least hourly
        anyway (a store replaced under the daemon, say)."""
        cutoff = (
            (int(self._now().timestamp() * 1000) - int(older_than.total_seconds() * 1000)) << 16
        ) | 0xFFFF
        seen = self._tombstones_seen
        now = time.monotonic()
        low = 0
        if (
            seen is not None
            and seen.upto <= below_seq
            and cutoff < seen.youngest_left
            and now - seen.at < _FULL_PASS_EVERY
        ):
            low = seen.upto
        purged, floor, floor_hlc = 0, 0, 0
        left = seen.youngest_left if seen is not None and low else _NEVER
        with self._tx() as conn:
            if low:
                # Standing in for the youngest tombstone left: the oldest entry logged since
                # that is not of age yet, tombstone or not (an earlier full pass, no harm), read
                # without looking up each entry's record.
                youngest = conn.execute(
                    sa.select(sa.func.min(changes_table.c.hlc)).where(
                        changes_table.c.seq > low,
                        changes_table.c.seq <= below_seq,
                        changes_table.c.hlc > cutoff,
                    )
                ).scalar()
                if youngest is not None:
                    left = min(left, int(youngest))
            # Only what was logged since: the seq range read once for every type, and only its
            # entries of age looked up (after a large sync, all of them young as a rule).
            aged = self._aged_since(conn, low, below_seq, cutoff) if low else {}
            for codec in CODECS.values():
                doomed: Sequence[Any]
                if low:
                    doomed = self._tombstoned(conn, codec, aged.get(codec.type, []))
                else:
                    doomed = conn.execute(
                        self._logged_tombstones(codec).where(
                            changes_table.c.seq <= below_seq, changes_table.c.hlc <= cutoff
                        )
                    ).all()
                    # Of every tombstone of the type, not only those logged at or below
                    # `below_seq`: an earlier youngest only means an earlier full pass.
                    young = conn.execute(
                        sa.select(sa.func.min(codec.table.c.hlc)).where(
                            codec.table.c.deleted.is_(True), codec.table.c.hlc > cutoff
                        )
                    ).scalar()
                    if young is not None:
                        left = min(left, int(young))
                for part in chunks(doomed):
                    ids = [row.id for row in part]
                    conn.execute(
                        graveyard_table.delete().where(
                            graveyard_table.c.type == codec.type, graveyard_table.c.id.in_(ids)
                        )
                    )
                    conn.execute(
                        graveyard_table.insert(),
                        [
                            {"type": codec.type, "id": r.id, "hlc": r.hlc, "origin": r.origin}
                            for r in part
                        ],
                    )
                    conn.execute(codec.table.delete().where(codec.key_column.in_(ids)))
                    conn.execute(
                        changes_table.delete().where(changes_table.c.seq.in_([r.seq for r in part]))
                    )
                    purged += len(part)
                    floor = max(floor, *(r.seq for r in part))
                    floor_hlc = max(floor_hlc, *(r.hlc for r in part))
            for name, value in (("gc_floor", floor), ("gc_floor_hlc", floor_hlc)):
                conn.execute(
                    counters_table.update()
                    .where(counters_table.c.name == name, counters_table.c.value < value)
                    .values(value=value)
                )
        began = seen.at if seen is not None and low else now
        self._tombstones_seen = _Examined(below_seq, left, began)
        return purged

    @staticmethod
    def _aged_since(
        conn: Connection, low: int, below_seq: int, cutoff: int
    ) -> dict[str, list[Any]]:
        """The log entries in `(low, below_seq]` of age (hlc at or below `cutoff`), by type."""
        rows = conn.execute(
            sa.select(
                changes_table.c.seq,
                changes_table.c.type,
                changes_table.c.id,
                changes_table.c.hlc,
                changes_table.c.origin,
            ).where(
                changes_table.c.seq > low,
                changes_table.c.seq <= below_seq,
                changes_table.c.hlc <= cutoff,
            )
        )
        by_type: dict[str, list[Any]] = {}
        for row in rows:
            by_type.setdefault(row.type, []).append(row)
        return by_type

    @staticmethod
    def _tombstoned(conn: Connection, codec: Codec, entries: Sequence[Any]) -> list[Any]:
        """Those of `entries` (log entries of `codec`'s type) whose record is a tombstone."""
        dead: set[str] = set()
        for part in chunks(sorted({e.id for e in entries})):
            dead.update(
                conn.execute(
                    sa.select(codec.key_column).where(
                        codec.key_column.in_(part), codec.table.c.deleted.is_(True)
                    )
                ).scalars()
            )
        return [e for e in entries if e.id in dead]

    @staticmethod
    def _logged_tombstones(codec: Codec) -> sa.Select[Any]:
        """The log entries of `codec`'s tombstones (seq, id, hlc, origin), to be narrowed."""
        return (
            sa.select(
                changes_table.c.seq, changes_table.c.id, changes_table.c.hlc, changes_table.c.origin
            )
            .join(codec.table, codec.key_column == changes_table.c.id)
            .where(changes_table.c.type == codec.type, codec.table.c.deleted.is_(True))
        )

    @staticmethod
    def _counter(conn: Connection, name: str) -> int:
        value = conn.execute(
            sa.select(counters_table.c.value).where(counters_table.c.name == name)
        ).scalar_one()
        return int(value)

    def gc_floor_hlc(self) -> int:
        with self._read() as conn:
            return self._counter(conn, "gc_floor_hlc")

    def repo_names(self) -> dict[str, str]:
        """Repository id -> name, for every repository whose name card reached us."""
        with self._read() as conn:
            table = CODECS[REPO].table
            return {r.repo_id: r.name for r in conn.execute(sa.select(table))}


def _bucket(key: Key, bits: int) -> int:
    digest = hashlib.sha1(f"{key[0]}\0{key[1]}".encode()).digest()
    return int.from_bytes(digest[:4], "big") >> (32 - bits) if bits else 0


def _line(change: Change) -> str:
    return f"{change.type}\0{change.id}\0{change.version.hlc}\0{change.version.origin}\0{int(change.deleted)}"
