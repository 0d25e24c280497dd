"""The state store's tables: the run ledger and the replicated repository around it.

Run records, holds, operator notes and job definitions are the repository's data: each row
carries its version (`hlc`, `origin`) and a `deleted` flag (a tombstone), and every committed
write of one of them appends its key to `syncd_changes` in the same transaction, under a
sequence number taken from one counter row (so sequence order is commit order on every
backend). Schema 1 (the previous release) had no versions; `migrate` brings it to 2 in place.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

SCHEMA_VERSION = 2


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _versioned() -> list[sa.Column[object]]:
    """The columns every replicated row carries (defaults let schema-1 rows migrate)."""
    return [
        sa.Column("hlc", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("origin", sa.String(64), nullable=False, server_default=""),
        sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
        # The version the writer had read (0, "": none): two writes on one base conflicted.
        sa.Column("base_hlc", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("base_origin", sa.String(64), nullable=False, server_default=""),
    ]


metadata = sa.MetaData()
meta_table = sa.Table(
    "syncd_meta",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
runs_table = sa.Table(
    "syncd_runs",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("bean", sa.String(200), nullable=False),
    sa.Column("operation", sa.String(200), nullable=False),
    sa.Column("arguments", sa.Text, nullable=False),
    sa.Column("trigger", sa.String(20), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("slot_time", UTCDateTime),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("ended_at", UTCDateTime),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("outcome", sa.String(40)),
    sa.Column("error_type", sa.String(200), nullable=False, default=""),
    sa.Column("error_message", sa.Text, nullable=False, default=""),
    sa.Column("rows_read", sa.BigInteger, nullable=False, default=0),
    sa.Column("rows_written", sa.BigInteger, nullable=False, default=0),
    sa.Column("progress_done", sa.BigInteger, nullable=False, default=0),
    sa.Column("progress_total", sa.BigInteger, nullable=False, default=0),
    *_versioned(),
    sa.Index("ix_syncd_runs_bean_started", "bean", "started_at"),
    sa.Index("ix_syncd_runs_state", "state"),
)
holds_table = sa.Table(
    "syncd_holds",
    metadata,
    sa.Column("bean", sa.String(200), primary_key=True),
    sa.Column("paused_at", UTCDateTime, nullable=False),
    *_versioned(),
)
notes_table = sa.Table(
    "syncd_notes",
    metadata,
    sa.Column("note_id", sa.String(64), primary_key=True),
    sa.Column("body", sa.Text, nullable=False),  # JSON: subject, text, author, at
    *_versioned(),
)
jobdefs_table = sa.Table(
    "syncd_jobdefs",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("body", sa.Text, nullable=False),  # JSON: at, enabled, after, parameters
    *_versioned(),
)
# Each repository's name card (its id, display name), so any node can name a run's origin.
repos_table = sa.Table(
    "syncd_repos",
    metadata,
    sa.Column("repo_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    *_versioned(),
)
# The change log: the latest committed write of each key, in commit order.
changes_table = sa.Table(
    "syncd_changes",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("type", sa.String(20), nullable=False),
    sa.Column("id", sa.String(200), nullable=False),
    sa.Column("hlc", sa.BigInteger, nullable=False),
    sa.Column("origin", sa.String(64), nullable=False),
    # "<peer id>:<epoch>" of the parent that delivered it ("" for anything else), so a pull
    # from this child can leave out what that parent sent it (no echoes).
    sa.Column("via", sa.String(130), nullable=False, server_default=""),
    sa.UniqueConstraint("type", "id", name="uq_syncd_changes_key"),
)
# One row per counter ("seq", "hlc"): updated inside each writing transaction.
counters_table = sa.Table(
    "syncd_counters",
    metadata,
    sa.Column("name", sa.String(20), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)
# Per peer and stream, the last sequence number of that peer's log applied here.
cursors_table = sa.Table(
    "syncd_cursors",
    metadata,
    sa.Column("peer_id", sa.String(64), primary_key=True),
    sa.Column("peer_epoch", sa.String(64), primary_key=True),
    sa.Column("stream", sa.String(40), primary_key=True),
    sa.Column("cursor", sa.BigInteger, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)
# Parent only: keys whose current version must reach a child whatever its cursor.
pingbacks_table = sa.Table(
    "syncd_pingbacks",
    metadata,
    sa.Column("child_id", sa.String(64), primary_key=True),
    sa.Column("type", sa.String(20), primary_key=True),
    sa.Column("id", sa.String(200), primary_key=True),
)
conflicts_table = sa.Table(
    "syncd_conflicts",
    metadata,
    sa.Column("conflict_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("type", sa.String(20), nullable=False),
    sa.Column("id", sa.String(200), nullable=False),
    sa.Column("winner_hlc", sa.BigInteger, nullable=False),
    sa.Column("winner_origin", sa.String(64), nullable=False),
    sa.Column("loser_hlc", sa.BigInteger, nullable=False),
    sa.Column("loser_origin", sa.String(64), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
)
# Keys whose tombstones were collected, with the tombstone's version (no data): an older
# write of one of them arriving later (a child restored from backup) stays deleted.
graveyard_table = sa.Table(
    "syncd_graveyard",
    metadata,
    sa.Column("type", sa.String(20), primary_key=True),
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("hlc", sa.BigInteger, nullable=False),
    sa.Column("origin", sa.String(64), nullable=False),
)
_ADDED_IN_2 = ("syncd_runs", "syncd_holds")


def migrate(conn: Connection, found: int) -> None:
    """Bring a schema-`found` store to SCHEMA_VERSION; the new tables exist already.

    Rows of schema 1 get version columns with empty origins; the ledger stamps them with its
    own versions (and logs them as changes) when it opens (`SqlLedger`).
    """
    if found >= 2:
        return
    false = "0" if conn.dialect.name == "sqlite" else "false"
    added = {
        "hlc": "BIGINT NOT NULL DEFAULT 0",
        "origin": "VARCHAR(64) NOT NULL DEFAULT ''",
        "deleted": f"BOOLEAN NOT NULL DEFAULT {false}",
        "base_hlc": "BIGINT NOT NULL DEFAULT 0",
        "base_origin": "VARCHAR(64) NOT NULL DEFAULT ''",
    }
    for table in _ADDED_IN_2:
        present = {c["name"] for c in sa.inspect(conn).get_columns(table)}
        for column, ddl in added.items():
            if column not in present:
                conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {column} {ddl}"))
