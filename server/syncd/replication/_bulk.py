"""The set-based half of a batch apply, below SQLAlchemy's per-row work.

Through SQLAlchemy Core a page of 5,000 records spent more time building and expanding
parameters than in the database. These helpers hand each statement to the driver once per
batch as plain SQL (`exec_driver_sql`, so errors, events and the transaction stay
SQLAlchemy's): SQLite runs prepared statements with `executemany` and reads keys with one `IN`
list per 500; PostgreSQL reads keys with `= ANY(array)` (the array sent as one JSON text: the
driver's per-element array dumping cost more than the query), and lands a batch with `COPY` into a
temporary staging table merged by one `INSERT … SELECT … ON CONFLICT DO UPDATE` per table.
Values go through each column's own bind processor first, so rows are stored exactly as
SQLAlchemy stores them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import closing
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from syncd.ledger.schema import changes_table, graveyard_table
from syncd.replication._codec import Codec, chunks
from syncd.replication.model import Version, version_of

# Below this many rows PostgreSQL takes plain `executemany` (a local write logs one key; a
# staging table would cost it two more round trips).
COPY_MIN = 64

# Tables smaller than this are left to autovacuum (a plan's choice matters little there).
ANALYZE_MIN = 10_000

LOG_COLUMNS = ("seq", "type", "id", "hlc", "origin", "via")

# A newer version wins: by hlc, then by origin in code point order ("C" collation is byte
# order, which for UTF-8 is code point order, as Python compares strings).
_NEWER = (
    "(EXCLUDED.hlc > {t}.hlc OR (EXCLUDED.hlc = {t}.hlc"
    ' AND EXCLUDED.origin COLLATE "C" > {t}.origin COLLATE "C"))'
)

Processor = Callable[[Any], Any] | None

_UNIQUE_VIOLATION = "23505"


@cache
def _processors(
    table: sa.Table, names: tuple[str, ...], dialect: sa.Dialect
) -> tuple[Processor, ...]:
    """Bind processors of `names`, but none for booleans: both drivers bind a Python bool
    themselves (SQLite's as 1 or 0, as SQLAlchemy's processor would), and without one a
    table of text, numbers and a flag goes to the driver with no per-cell call."""
    return tuple(
        None if isinstance(table.c[n].type, sa.Boolean) else table.c[n].type.bind_processor(dialect)
        for n in names
    )


@cache
def _result_processors(codec: Codec, dialect: sa.Dialect) -> tuple[Processor, ...]:
    """What SQLAlchemy does to each of `codec.columns` as it reads it (SQLite's text
    timestamps parsed, UTC attached), for rows read from the driver directly; none for the
    flag, which `Codec.changes` takes as a bool itself."""
    types = [codec.table.c[n].type for n in codec.columns]
    return tuple(
        None
        if isinstance(t, sa.Boolean)
        else t.dialect_impl(dialect).result_processor(dialect, None)
        for t in types
    )


# A text[] from one JSON array parameter (`_json`), for `= ANY(...)`.
_JSON_ARRAY = "ARRAY(SELECT json_array_elements_text(CAST(%s AS json)))"
_json = json.JSONEncoder(ensure_ascii=False).encode


def _q(name: str) -> str:
    return f'"{name}"'


class Bulk:
    """One transaction's batch statements (the connection the ledger opened for it)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._dialect = conn.dialect
        self.postgres = conn.dialect.name == "postgresql"
        self._mark = "%s" if self.postgres else "?"

    # --- reading keys ------------------------------------------------------------------------

    def _select(self, sql: str, fixed: Sequence[Any], ids: Sequence[str]) -> list[Any]:
        """Rows of `sql`, whose last condition is `<column> IN {ids}`."""
        run = self._conn.exec_driver_sql
        if self.postgres:
            return list(run(sql.format(ids=f"= ANY({_JSON_ARRAY})"), (*fixed, _json(ids))).all())
        found: list[Any] = []
        for part in chunks(ids):
            marks = ", ".join("?" * len(part))
            found.extend(run(sql.format(ids=f"IN ({marks})"), (*fixed, *part)).all())
        return found

    def versions(self, codec: Codec, ids: Sequence[str]) -> dict[str, Version]:
        t, key = codec.table.name, _q(codec.key)
        sql = f"SELECT {key}, hlc, origin FROM {t} WHERE {key} {{ids}}"
        return {k: version_of(int(h), o) for k, h, o in self._select(sql, (), ids)}

    def rows(self, codec: Codec, ids: Sequence[str]) -> list[Sequence[Any]]:
        """The stored rows of `ids` in one query, their values in `codec.columns` order and
        typed as SQLAlchemy types them (read from the driver: SQLAlchemy's own result rows
        cost more than the query). By key, not joined to the log: both planners served a
        join through the log's (type, id) index, reading every entry of the type for each
        page."""
        names = ", ".join(_q(n) for n in codec.columns)
        listed = f"= ANY({_JSON_ARRAY})" if self.postgres else "IN (SELECT value FROM json_each(?))"
        sql = f"SELECT {names} FROM {codec.table.name} WHERE {_q(codec.key)} {listed}"
        found = self._fetch(sql, (_json(ids),))
        procs = _result_processors(codec, self._dialect)
        if not any(procs) or not found:
            return found
        columns: list[Any] = list(zip(*found, strict=True))
        for i, proc in enumerate(procs):
            if proc is not None:
                columns[i] = [proc(v) for v in columns[i]]
        return list(zip(*columns, strict=True))

    def log_page(
        self, since: int, bound: int, limit: int, *, min_hlc: int = 0, skip_via: str = ""
    ) -> list[Sequence[Any]]:
        """`(seq, type, id)` of the first `limit` log entries in `(since, bound]`, in seq
        order; with `min_hlc`, only entries at or above it; with `skip_via`, without those
        that parent delivered."""
        m = self._mark
        where = [f"seq > {m}", f"seq <= {m}"]
        params: list[Any] = [since, bound]
        if min_hlc:
            where.append(f"hlc >= {m}")
            params.append(min_hlc)
        if skip_via:
            where.append(f"via <> {m}")
            params.append(skip_via)
        sql = (
            f"SELECT seq, type, id FROM {changes_table.name} WHERE {' AND '.join(where)}"
            f" ORDER BY seq LIMIT {m}"
        )
        return self._fetch(sql, (*params, limit))

    def graves(self, type_: str, ids: Sequence[str]) -> dict[str, Version]:
        sql = (
            f"SELECT id, hlc, origin FROM {graveyard_table.name}"
            f" WHERE type = {self._mark} AND id {{ids}}"
        )
        return {k: Version(int(h), o) for k, h, o in self._select(sql, (type_,), ids)}

    # --- writing -----------------------------------------------------------------------------

    def _tuples(self, codec: Codec, rows: Sequence[tuple[Any, ...]]) -> Sequence[tuple[Any, ...]]:
        procs = _processors(codec.table, codec.columns, self._dialect)
        if not any(procs):
            return rows
        # Per column, not per cell: most columns (text, integers) need no conversion.
        columns: list[Any] = list(zip(*rows, strict=True))
        for i, proc in enumerate(procs):
            if proc is not None:
                columns[i] = [proc(v) for v in columns[i]]
        return list(zip(*columns, strict=True))

    def _copy(self, table: sa.Table, names: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> str:
        """COPY `rows` into this session's staging twin of `table` (emptied at commit)."""
        stage = f"syncd_stage_{table.name.removeprefix('syncd_')}"
        self._run(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage}"
            f" (LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        self._copy_into(stage, names, rows)
        return stage

    def _copy_new(
        self, table: sa.Table, names: Sequence[str], rows: Sequence[tuple[Any, ...]]
    ) -> bool:
        """COPY `rows`, of keys judged to have no row in `table`, straight into it: no staging
        table and no `ON CONFLICT` (a plain insert, about half the server's work of the
        upsert). Under a savepoint: if a key has a row after all (another writer's since the
        versions were read, or damage such as a log entry left behind its record), nothing
        of it stays and the caller takes the upsert, which settles each key as before. False
        then; True when written."""
        try:
            with self._conn.begin_nested():
                self._copy_into(table.name, names, rows)
        except sa.exc.IntegrityError as exc:
            if getattr(exc.orig, "sqlstate", None) != _UNIQUE_VIOLATION:
                raise
            return False
        self._keep_statistics(table)
        return True

    def _copy_into(
        self, target: str, names: Sequence[str], rows: Sequence[tuple[Any, ...]]
    ) -> None:
        sql = f"COPY {target} ({', '.join(_q(n) for n in names)}) FROM STDIN"
        raw: Any = self._conn.connection.driver_connection
        dbapi_error = self._dialect.loaded_dbapi.Error
        try:
            with closing(raw.cursor()) as cur, cur.copy(sql) as copy:
                for row in rows:
                    copy.write_row(row)
        except dbapi_error as exc:
            # As SQLAlchemy raises a driver's error everywhere else (the ledger maps those).
            raise sa.exc.DBAPIError.instance(sql, None, exc, dbapi_error) from exc

    def upsert(self, codec: Codec, rows: Sequence[tuple[Any, ...]], *, new: bool = False) -> None:
        """Write `rows` (`Codec.row`s), each judged newer than the stored row (or, with
        `new`, of a key that has no row here)."""
        if not rows:
            return
        table, key = codec.table, codec.key
        names = codec.columns
        data = names[1:]
        tuples = self._tuples(codec, rows)
        if self.postgres and len(rows) >= COPY_MIN:
            if new and self._copy_new(table, names, tuples):
                return
            stage = self._copy(table, names, tuples)
            cols = ", ".join(_q(n) for n in names)
            sets = ", ".join(f"{_q(n)} = EXCLUDED.{_q(n)}" for n in data)
            # The WHERE repeats the judgement in SQL: a row another writer made newer after
            # the versions were read is left alone.
            self._run(
                f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM {stage}"
                f" ON CONFLICT ({_q(key)}) DO UPDATE SET {sets}"
                f" WHERE {_NEWER.format(t=table.name)}"
            )
            self._keep_statistics(table)
            return
        m = self._mark
        if new:
            cols = ", ".join(_q(n) for n in names)
            self._many(
                f"INSERT INTO {table.name} ({cols}) VALUES ({', '.join([m] * len(names))})",
                tuples,
            )
            return
        sets = ", ".join(f"{_q(n)} = {m}" for n in data)
        self._many(
            f"UPDATE {table.name} SET {sets} WHERE {_q(key)} = {m}",
            [(*t[1:], t[0]) for t in tuples],
        )

    def log(
        self, rows: Sequence[tuple[int, str, str, int, str, str]], *, new: bool = False
    ) -> None:
        """Append change-log rows; each replaces its key's previous entry (one per key). With
        `new`, the rows are of keys that had no record here (so most likely no entry)."""
        if not rows:
            return
        t = changes_table.name
        cols = ", ".join(LOG_COLUMNS)
        moved = ", ".join(f"{n} = EXCLUDED.{n}" for n in LOG_COLUMNS if n not in ("type", "id"))
        if self.postgres and len(rows) >= COPY_MIN:
            if new and self._copy_new(changes_table, LOG_COLUMNS, rows):
                return
            stage = self._copy(changes_table, LOG_COLUMNS, rows)
            self._run(
                f"INSERT INTO {t} ({cols}) SELECT {cols} FROM {stage}"
                f" ON CONFLICT (type, id) DO UPDATE SET {moved}"
            )
            self._keep_statistics(changes_table)
            return
        m = self._mark
        self._many(
            f"INSERT INTO {t} ({cols}) VALUES ({', '.join([m] * 6)})"
            f" ON CONFLICT (type, id) DO UPDATE SET {moved}",
            rows,
        )

    def _keep_statistics(self, table: sa.Table) -> None:
        """ANALYZE `table` once it changed by more than it held when last analyzed.

        Seeding a child grows its tables from nothing faster than autovacuum looks at them, and
        the planner, with stale statistics, read a page of the log by sorting every entry after
        the cursor and a page's records by scanning the table (measured at 200,000 rows).
        Doubling steps keep this to a few ANALYZEs a seed."""
        stale = self._conn.exec_driver_sql(
            "SELECT 1 FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid"
            " WHERE s.relid = to_regclass(%s)"
            " AND s.n_mod_since_analyze > GREATEST(c.reltuples, %s)",
            (table.name, ANALYZE_MIN),
        ).first()
        if stale is not None:
            self._run(f"ANALYZE {table.name}")

    def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[Sequence[Any]]:
        """The rows of `sql` as the driver returns them: SQLAlchemy's result rows cost more
        than the query on a page of records."""
        raw: Any = self._conn.connection.dbapi_connection
        try:
            with closing(raw.cursor()) as cur:
                cur.execute(sql, params)
                return cur.fetchall()  # type: ignore[no-any-return]
        except self._dialect.loaded_dbapi.Error as exc:
            raise sa.exc.DBAPIError.instance(
                sql, params, exc, self._dialect.loaded_dbapi.Error
            ) from exc

    def _run(self, sql: str) -> None:
        self._conn.exec_driver_sql(sql)

    def _many(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        self._conn.exec_driver_sql(sql, list(rows))
