"""Per-peer state of the repository: cursors of each peer's streams, and the ping-backs
a parent owes each child. A mixin of `SqlRepository`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from syncd.ledger.schema import cursors_table, graveyard_table, pingbacks_table
from syncd.replication._codec import Tx
from syncd.replication.model import Change, Key, Version


class Peers:
    _tx: Tx
    _read: Tx
    _now: Callable[[], datetime]
    # Provided by SqlRepository, which mixes this in: the stored records of `keys`.
    _current: Callable[[Connection, Iterable[Key]], dict[Key, Change]]

    # --- cursors -----------------------------------------------------------------------------

    def cursor(self, peer_id: str, peer_epoch: str, stream: str) -> int | None:
        with self._read() as conn:
            return self._cursor(conn, peer_id, peer_epoch, stream)

    @staticmethod
    def _cursor(conn: Connection, peer_id: str, peer_epoch: str, stream: str) -> int | None:
        value = conn.execute(
            sa.select(cursors_table.c.cursor).where(
                cursors_table.c.peer_id == peer_id,
                cursors_table.c.peer_epoch == peer_epoch,
                cursors_table.c.stream == stream,
            )
        ).scalar()
        return None if value is None else int(value)

    def _set_cursor(
        self, conn: Connection, peer_id: str, peer_epoch: str, stream: str, cursor: int
    ) -> int:
        """Move a cursor forward (never back) and return where it stands."""
        stored = self._cursor(conn, peer_id, peer_epoch, stream)
        if stored is not None and stored >= cursor:
            return stored
        where = (
            cursors_table.c.peer_id == peer_id,
            cursors_table.c.peer_epoch == peer_epoch,
            cursors_table.c.stream == stream,
        )
        if stored is None:
            conn.execute(
                cursors_table.insert().values(
                    peer_id=peer_id,
                    peer_epoch=peer_epoch,
                    stream=stream,
                    cursor=cursor,
                    updated_at=self._now(),
                )
            )
        else:
            conn.execute(
                cursors_table.update().where(*where).values(cursor=cursor, updated_at=self._now())
            )
        return cursor

    def ack_cursor(self, peer_id: str, peer_epoch: str, stream: str, cursor: int) -> int:
        with self._tx() as conn:
            return self._set_cursor(conn, peer_id, peer_epoch, stream, cursor)

    def cursors(self) -> list[tuple[str, str, str, int, datetime]]:
        with self._read() as conn:
            return [
                (r.peer_id, r.peer_epoch, r.stream, int(r.cursor), r.updated_at)
                for r in conn.execute(sa.select(cursors_table).order_by(cursors_table.c.peer_id))
            ]

    def _queue_pingbacks(self, conn: Connection, child_id: str, keys: Sequence[Key]) -> None:
        if not keys:
            return
        have = {
            (r.type, r.id)
            for r in conn.execute(
                sa.select(pingbacks_table.c.type, pingbacks_table.c.id).where(
                    pingbacks_table.c.child_id == child_id
                )
            )
        }
        rows = [
            {"child_id": child_id, "type": t, "id": i}
            for t, i in dict.fromkeys(keys)
            if (t, i) not in have
        ]
        if rows:
            conn.execute(pingbacks_table.insert(), rows)

    def pingbacks(self, child_id: str, *, with_graveyard: bool = False) -> list[Change]:
        """The current versions of the records a child must be sent whatever its cursor; with
        `with_graveyard`, also the collected tombstones (a child behind the gc floor)."""
        with self._read() as conn:
            keys = [
                (r.type, r.id)
                for r in conn.execute(
                    sa.select(pingbacks_table.c.type, pingbacks_table.c.id).where(
                        pingbacks_table.c.child_id == child_id
                    )
                )
            ]
            current = self._current(conn, keys)
            graves = (
                [
                    Change(
                        type=r.type,
                        id=r.id,
                        version=Version(int(r.hlc), r.origin),
                        deleted=True,
                        out_of_band=True,
                    )
                    for r in conn.execute(sa.select(graveyard_table))
                ]
                if with_graveyard
                else []
            )
        return [replace(current[k], out_of_band=True) for k in keys if k in current] + graves

    def clear_pingbacks(self, child_id: str, keys: Iterable[Key]) -> None:
        with self._tx() as conn:
            for type_, id_ in keys:
                conn.execute(
                    pingbacks_table.delete().where(
                        pingbacks_table.c.child_id == child_id,
                        pingbacks_table.c.type == type_,
                        pingbacks_table.c.id == id_,
                    )
                )
