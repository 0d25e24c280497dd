"""A local write's entry in the change log, in as few round trips as the backend allows.

Every run start and end is such a write. The sequence number comes from one counter row,
taken by an `UPDATE … RETURNING` (its row lock, held to commit, makes sequence order commit
order); on PostgreSQL the reservation and the entry are one statement, on SQLite (in process,
no round trip) two. The SQL is written out once, as `_bulk` writes a batch's.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from syncd.ledger.schema import changes_table, counters_table
from syncd.replication._bulk import LOG_COLUMNS
from syncd.replication.model import Version

RESERVE = (
    counters_table.update()
    .where(counters_table.c.name == "seq")
    .values(value=counters_table.c.value + sa.bindparam("count", type_=sa.BigInteger))
    .returning(counters_table.c.value)
)

_COLUMNS = ", ".join(LOG_COLUMNS)
_REPLACES = " ON CONFLICT (type, id) DO UPDATE SET " + ", ".join(
    f"{n} = EXCLUDED.{n}" for n in LOG_COLUMNS if n not in ("type", "id")
)
_POSTGRES = (
    f"WITH s AS (UPDATE {counters_table.name} SET value = value + 1 WHERE name = 'seq'"
    f" RETURNING value) INSERT INTO {changes_table.name} ({_COLUMNS})"
    f" SELECT s.value, %s, %s, %s, %s, '' FROM s{_REPLACES}"
)
_SQLITE = f"INSERT INTO {changes_table.name} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ''){_REPLACES}"


def reserve(conn: Connection, count: int) -> int:
    """Reserve `count` sequence numbers; the first of them."""
    return int(conn.execute(RESERVE, {"count": count}).scalar_one()) - count + 1


def log_one(conn: Connection, type_: str, id_: str, version: Version) -> None:
    """Log a local write of `(type_, id_)` after everything logged so far (replacing its
    key's entry), in the caller's transaction."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(_POSTGRES, (type_, id_, version.hlc, version.origin))
    else:
        seq = reserve(conn, 1)
        conn.exec_driver_sql(_SQLITE, (seq, type_, id_, version.hlc, version.origin))
