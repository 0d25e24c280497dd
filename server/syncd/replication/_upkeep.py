"""The repository's upkeep: tombstone collection (with its graveyard), digests for
anti-entropy and checks, and small reports. A mixin of `SqlRepository`."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
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
from syncd.replication._codec import CODECS, Tx, chunks
from syncd.replication.model import REPO, Change, Key


class Upkeep:
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
        raising the gc floor so a peer that missed them is reconciled, not resurrecting them."""
        cutoff = (
            (int(self._now().timestamp() * 1000) - int(older_than.total_seconds() * 1000)) << 16
        ) | 0xFFFF
        purged, floor, floor_hlc = 0, 0, 0
        with self._tx() as conn:
            for codec in CODECS.values():
                doomed = conn.execute(
                    sa.select(
                        changes_table.c.seq,
                        changes_table.c.id,
                        changes_table.c.hlc,
                        changes_table.c.origin,
                    )
                    .join(codec.table, codec.key_column == changes_table.c.id)
                    .where(
                        changes_table.c.type == codec.type,
                        codec.table.c.deleted.is_(True),
                        changes_table.c.seq <= below_seq,
                        changes_table.c.hlc <= cutoff,
                    )
                ).all()
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
        return purged

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
