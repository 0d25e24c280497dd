"""The repository over the state store: local stamps, the change log, cursors, the
conditional upsert, ping-backs and digests.

`SqlRepository` shares the ledger's connection and lock (`SqlLedger.repository`): the ledger
stamps each run or hold write in the transaction that writes it, and a batch received from a
peer is applied, logged and its cursor moved in one transaction. Methods block; the daemon
calls them from the ledger's threads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from syncd.errors import CursorGapError
from syncd.ledger.schema import (
    SCHEMA_VERSION,
    changes_table,
    conflicts_table,
    counters_table,
    meta_table,
)
from syncd.replication import _stamp
from syncd.replication._bulk import Bulk
from syncd.replication._codec import CODECS, Tx, chunks
from syncd.replication._peers import Peers
from syncd.replication._upkeep import Upkeep
from syncd.replication.hlc import Hlc
from syncd.replication.model import (
    FROM_CHILD,
    FROM_PARENT,
    PARENT_ONLY,
    REPO,
    ApplyResult,
    Change,
    ChangePage,
    Key,
    Rejected,
    RepoInfo,
    Verdict,
    Version,
    judge,
    new_id,
)


class SqlRepository(Peers, Upkeep):
    """One repository: the versioned records of the state store and their change log."""

    def __init__(self, tx: Tx, read: Tx, hlc: Hlc, now: Callable[[], datetime]) -> None:
        self._tx = tx
        self._read = read
        self.hlc = hlc
        self._now = now
        self.repo_id = ""
        self.epoch = ""
        self.cluster_id = ""
        self.name = ""

    # --- identity ----------------------------------------------------------------------------

    def open(self, conn: Connection) -> None:
        """At ledger open: load (or create) the identity, the clock, and stamp unversioned
        rows (a store of schema 1) as this repository's own writes."""
        meta = {r.key: r.value for r in conn.execute(sa.select(meta_table))}
        fresh: dict[str, str] = {}
        if "repo.id" not in meta:
            fresh["repo.id"] = new_id()
        if "repo.epoch" not in meta:
            fresh["repo.epoch"] = new_id()
        for key, value in fresh.items():
            conn.execute(meta_table.insert().values(key=key, value=value))
        meta.update(fresh)
        self.repo_id = meta["repo.id"]
        self.epoch = meta["repo.epoch"]
        self.cluster_id = meta.get("repo.cluster", "")
        self.name = meta.get("repo.name", "") or self.repo_id[:13]
        for name in ("seq", "gc_floor", "gc_floor_hlc"):
            if (
                conn.execute(
                    sa.select(counters_table.c.value).where(counters_table.c.name == name)
                ).first()
                is None
            ):
                conn.execute(counters_table.insert().values(name=name, value=0))
        top = conn.execute(sa.select(sa.func.max(changes_table.c.hlc))).scalar()
        self.hlc.observe(int(top or 0))
        for codec in CODECS.values():
            keys = [
                r[0]
                for r in conn.execute(sa.select(codec.key_column).where(codec.table.c.origin == ""))
            ]
            for key in keys:
                version = self.stamp(conn, codec.type, key)
                conn.execute(
                    codec.table.update()
                    .where(codec.key_column == key)
                    .values(hlc=version.hlc, origin=version.origin)
                )
        if not self._current(conn, [(REPO, self.repo_id)]):
            self._write(conn, REPO, self.repo_id, {"name": self.name})

    def configure(self, *, name: str, cluster_id: str) -> None:
        """Name this repository and its cluster (from the config); written once when changed."""
        if name == self.name and cluster_id == self.cluster_id:
            return
        with self._tx() as conn:
            for key, value in (("repo.name", name), ("repo.cluster", cluster_id)):
                if not conn.execute(
                    meta_table.update().where(meta_table.c.key == key).values(value=value)
                ).rowcount:
                    conn.execute(meta_table.insert().values(key=key, value=value))
            self.name, self.cluster_id = name, cluster_id
            self._write(conn, REPO, self.repo_id, {"name": name})

    def new_epoch(self) -> str:
        """After a restore from backup: cursors other repositories keep for us are void."""
        epoch = new_id()
        with self._tx() as conn:
            conn.execute(
                meta_table.update().where(meta_table.c.key == "repo.epoch").values(value=epoch)
            )
        self.epoch = epoch
        return epoch

    def info(self) -> RepoInfo:
        with self._read() as conn:
            counters = {r.name: int(r.value) for r in conn.execute(sa.select(counters_table))}
        return RepoInfo(
            repo_id=self.repo_id,
            name=self.name,
            epoch=self.epoch,
            cluster_id=self.cluster_id,
            hlc_now=self.hlc.peek(),
            schema_version=SCHEMA_VERSION,
            stable_watermark=counters["seq"],
            gc_floor=counters["gc_floor"],
        )

    # --- local writes ------------------------------------------------------------------------

    def stamp(self, conn: Connection, type_: str, id_: str) -> Version:
        """A new version for a local write of `(type_, id_)`, logged in the caller's
        transaction (the caller writes the row with it)."""
        version = Version(self.hlc.now(), self.repo_id)
        _stamp.log_one(conn, type_, id_, version)
        return version

    def write(
        self, type_: str, id_: str, body: dict[str, Any], *, deleted: bool = False
    ) -> Version:
        """A local write of a whole record (a note, a job definition, a tombstone)."""
        with self._tx() as conn:
            return self._write(conn, type_, id_, body, deleted=deleted)

    def _write(
        self, conn: Connection, type_: str, id_: str, body: dict[str, Any], *, deleted: bool = False
    ) -> Version:
        mine = self._current(conn, [(type_, id_)])
        version = self.stamp(conn, type_, id_)
        read = mine.get((type_, id_))
        change = Change(
            type=type_,
            id=id_,
            version=version,
            deleted=deleted,
            body=body,
            base=read.version if read is not None else None,
        )
        self._upsert(conn, [change], exists=mine)
        return version

    def _next_seq(self, conn: Connection, count: int) -> int:
        """Reserve `count` sequence numbers in one round trip; the row lock the update takes
        (held to commit) makes seq order commit order."""
        return _stamp.reserve(conn, count)

    def _log(
        self,
        conn: Connection,
        entries: Sequence[tuple[str, str, Version]],
        *,
        fresh: frozenset[Key] | set[Key] = frozenset(),
        via: str = "",
    ) -> None:
        """Log `entries` after everything logged so far, each replacing its key's entry.
        `fresh`, the keys that had no record before, most likely have no entry either: theirs
        are added without the upsert (`Bulk.log`, which falls back to it if one has)."""
        if not entries:
            return
        first = self._next_seq(conn, len(entries))
        rows = [(first + i, t, k, v.hlc, v.origin, via) for i, (t, k, v) in enumerate(entries)]
        bulk = Bulk(conn)
        if not fresh:
            bulk.log(rows)
            return
        new: list[tuple[int, str, str, int, str, str]] = []
        known: list[tuple[int, str, str, int, str, str]] = []
        for row in rows:
            (new if (row[1], row[2]) in fresh else known).append(row)
        bulk.log(new, new=True)
        bulk.log(known)  # nothing when empty

    def forget(self, conn: Connection, type_: str, ids: Iterable[str]) -> None:
        """Local retention removed these records: drop them from the change log too."""
        for part in chunks(list(ids)):
            conn.execute(
                changes_table.delete().where(
                    changes_table.c.type == type_, changes_table.c.id.in_(part)
                )
            )

    # --- reading -----------------------------------------------------------------------------

    def _current(self, conn: Connection, keys: Iterable[Key]) -> dict[Key, Change]:
        by_type: dict[str, list[str]] = {}
        for type_, id_ in keys:
            by_type.setdefault(type_, []).append(id_)
        found: dict[Key, Change] = {}
        for type_, ids in by_type.items():
            codec = CODECS[type_]
            for part in chunks(sorted(set(ids))):
                for row in conn.execute(sa.select(codec.table).where(codec.key_column.in_(part))):
                    change = codec.change(dict(row._mapping))
                    found[change.key] = change
        return found

    def get_records(self, keys: Iterable[Key]) -> list[Change]:
        keys = [k for k in keys if k[0] in CODECS]
        with self._read() as conn:
            return list(self._current(conn, keys).values())

    def get_changes(
        self,
        since: int,
        limit: int,
        *,
        up_to: int | None = None,
        min_hlc: int = 0,
        skip_via: str = "",
    ) -> ChangePage:
        """Changes logged after `since`, in commit order, at most up to the stable watermark;
        without those delivered by `skip_via` ("<parent id>:<epoch>", which has them)."""
        with self._read() as conn:
            watermark = conn.execute(
                sa.select(counters_table.c.value).where(counters_table.c.name == "seq")
            ).scalar_one()
            bound = watermark if up_to is None else min(int(watermark), up_to)
            log = Bulk(conn).log_page(since, int(bound), limit, min_hlc=min_hlc, skip_via=skip_via)
            keys = [(type_, id_) for _, type_, id_ in log]
            current = self._logged(conn, keys)
        has_more = len(log) == limit and log[-1][0] < bound
        next_cursor = int(log[-1][0]) if has_more else max(since, int(bound))
        changes = [current[k] for k in keys if k in current]
        return ChangePage(changes, next_cursor, has_more)

    def _logged(self, conn: Connection, keys: Iterable[Key]) -> dict[Key, Change]:
        """The records of a page's keys: one query per type (`IN` lists of 500 took ten)."""
        bulk = Bulk(conn)
        found: dict[Key, Change] = {}
        for type_, ids in _by_type(k for k in keys if k[0] in CODECS).items():
            for change in CODECS[type_].changes(bulk.rows(CODECS[type_], ids)):
                found[change.key] = change
        return found

    def records_of(self, type_: str) -> list[Change]:
        """Every record of one type (tombstones included)."""
        codec = CODECS[type_]
        with self._read() as conn:
            return [codec.change(dict(r._mapping)) for r in conn.execute(sa.select(codec.table))]

    def snapshot(self) -> dict[Key, Change]:
        """Every record (tombstones included) by key: for digests, checks and bundles."""
        found: dict[Key, Change] = {}
        with self._read() as conn:
            for codec in CODECS.values():
                for row in conn.execute(sa.select(codec.table)):
                    change = codec.change(dict(row._mapping))
                    found[change.key] = change
        return found

    # --- applying a batch --------------------------------------------------------------------

    def apply_changes(
        self,
        *,
        source_id: str,
        source_epoch: str,
        stream: str,
        from_cursor: int,
        to_cursor: int,
        changes: Sequence[Change],
    ) -> ApplyResult:
        """The conditional upsert of a batch and its cursor, in one transaction.

        A batch at or below the stored cursor is a retry: only its ping-backs are applied. A
        batch starting above the stored cursor is a gap (`CursorGapError`). On the parent, a
        child's change from a clock more than `max_drift` ahead fails the whole batch
        (`ClockAheadError`).
        """
        from_child = stream == FROM_CHILD
        with self._tx() as conn:
            stored = self._cursor(conn, source_id, source_epoch, stream) or 0
            retry = stored >= to_cursor
            if not retry and stored < from_cursor:
                raise CursorGapError(stream, stored, from_cursor)
            batch = [c for c in changes if c.out_of_band] if retry else list(changes)
            if from_child:
                # The parent is the fleet's judge of time: a child trusts what its parent
                # vetted, or a child with a slow clock would refuse everything.
                for change in batch:
                    self.hlc.check(change.version.hlc, change.version.origin)
            via = f"{source_id}:{source_epoch}" if stream == FROM_PARENT else ""
            result = self._apply(conn, batch, from_child=from_child, source_id=source_id, via=via)
            if not retry:
                stored = self._set_cursor(conn, source_id, source_epoch, stream, to_cursor)
        return replace(result, stored_cursor=stored)

    def _apply(
        self,
        conn: Connection,
        batch: Sequence[Change],
        *,
        from_child: bool,
        source_id: str,
        via: str = "",
    ) -> ApplyResult:
        # The last change of a key in the batch is the one that counts (pages never repeat a
        # key, but a duplicated delivery might).
        latest: dict[Key, Change] = {}
        for change in batch:
            if change.type not in CODECS:
                continue
            key = (change.type, change.id)
            known = latest.get(key)
            if known is None or known.version < change.version:
                latest[key] = change
        by_type = _by_type(latest)
        local = self._versions(conn, by_type)
        graves = self._graves(conn, _by_type(k for k in latest if k not in local))
        applying: list[Change] = []
        rows: list[tuple[Any, ...]] = []
        revived: list[Change] = []
        stale: list[Key] = []
        rejected: list[Rejected] = []
        conflicts: list[tuple[Change, Version, Version]] = []
        if latest:
            self.hlc.observe(max(c.version.hlc for c in latest.values()))
        me = self.repo_id
        for key, change in latest.items():
            mine = local.get(key)
            verdict = judge(
                mine,
                mine.origin if mine is not None else None,
                change,
                from_child=from_child and change.version.origin != me,
            )
            if verdict.verdict is Verdict.APPLY:
                grave = graves.get(key) if mine is None else None
                if grave is not None and change.version <= grave:
                    # Deleted and collected here: an older write (a child restored from a
                    # backup still had it) stays deleted. The tombstone comes back with its
                    # own version, so it is sent out again and loses to any later write, as it
                    # did before.
                    if not change.deleted:
                        revived.append(Change(type=key[0], id=key[1], version=grave, deleted=True))
                        stale.append(key)
                    continue
                try:
                    rows.append(CODECS[change.type].row(change))
                except ValueError as exc:
                    rejected.append(Rejected(key, f"malformed: {exc}"))
                    continue
                applying.append(change)
                if verdict.conflict and mine is not None:
                    conflicts.append((change, change.version, mine))
            elif verdict.verdict is Verdict.STALE:
                stale.append(key)
                if verdict.conflict and mine is not None:
                    conflicts.append((change, mine, change.version))
            elif verdict.verdict is Verdict.REJECT:
                rejected.append(Rejected(key, verdict.reason))
        for tombstone in revived:
            applying.append(tombstone)
            rows.append(CODECS[tombstone.type].row(tombstone))
        self._upsert_rows(conn, applying, rows, exists=local)
        self._log(
            conn,
            [(c.type, c.id, c.version) for c in applying],
            fresh={k for k in latest if k not in local},
            via=via,
        )
        if from_child:
            for item in rejected:
                if item.key[0] in PARENT_ONLY:
                    self._overrule(conn, item.key, self._current(conn, [item.key]).get(item.key))
            self._queue_pingbacks(conn, source_id, stale + [r.key for r in rejected])
        if conflicts:
            conn.execute(
                conflicts_table.insert(),
                [
                    {
                        "type": c.type,
                        "id": c.id,
                        "winner_hlc": w.hlc,
                        "winner_origin": w.origin,
                        "loser_hlc": lo.hlc,
                        "loser_origin": lo.origin,
                        "at": self._now(),
                    }
                    for c, w, lo in conflicts
                ],
            )
        return ApplyResult(len(applying) - len(revived), stale, rejected, 0, len(conflicts))

    def _versions(self, conn: Connection, by_type: Mapping[str, list[str]]) -> dict[Key, Version]:
        """The local version of each key (ids by type) that has a row (the conditional
        upsert's input)."""
        bulk = Bulk(conn)
        found: dict[Key, Version] = {}
        for type_, ids in by_type.items():
            for id_, version in bulk.versions(CODECS[type_], ids).items():
                found[(type_, id_)] = version
        return found

    def _graves(self, conn: Connection, by_type: Mapping[str, list[str]]) -> dict[Key, Version]:
        bulk = Bulk(conn)
        found: dict[Key, Version] = {}
        for type_, ids in by_type.items():
            for id_, version in bulk.graves(type_, ids).items():
                found[(type_, id_)] = version
        return found

    def _upsert(
        self, conn: Connection, changes: Sequence[Change], exists: Mapping[Key, object]
    ) -> None:
        rows = [CODECS[c.type].row(c) for c in changes]
        self._upsert_rows(conn, changes, rows, exists=exists)

    def _upsert_rows(
        self,
        conn: Connection,
        changes: Sequence[Change],
        rows: Sequence[tuple[Any, ...]],
        exists: Mapping[Key, object],
    ) -> None:
        by_type: dict[str, tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]] = {}
        for change, row in zip(changes, rows, strict=True):
            inserts, updates = by_type.setdefault(change.type, ([], []))
            (updates if (change.type, change.id) in exists else inserts).append(row)
        bulk = Bulk(conn)
        for type_, (inserts, updates) in by_type.items():
            bulk.upsert(CODECS[type_], inserts, new=True)
            bulk.upsert(CODECS[type_], updates)

    def _overrule(self, conn: Connection, key: Key, mine: Change | None) -> None:
        """A child wrote a parent-only record: the parent re-issues its own value (or a
        tombstone) with a newer version, which then reaches every child."""
        type_, id_ = key
        if mine is None:
            self._write(conn, type_, id_, {}, deleted=True)
        else:
            self._write(conn, type_, id_, dict(mine.body), deleted=mine.deleted)


def _by_type(keys: Iterable[Key]) -> dict[str, list[str]]:
    by_type: dict[str, list[str]] = {}
    for type_, id_ in keys:
        by_type.setdefault(type_, []).append(id_)
    return {t: list(dict.fromkeys(ids)) for t, ids in by_type.items()}
