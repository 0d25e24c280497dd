"""Database plumbing shared by the jobs: engines, transient-error retries, the lock around a
derived table's switch, and TEMPORARY staging tables.

Every run opens its own engine and disposes of it at the end, so a body can run in any worker
(thread or child process) and never inherits a connection.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    Table,
    create_engine,
    event,
    func,
    make_url,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateTable

from syncd.job import Backoff, RetryNote, RunContext, sleep_uncancelled
from syncd.job import retrying as retry_with_backoff
from syncd_tis._settings import TisSettings

T = TypeVar("T")

# Error numbers from the MySQL/MariaDB server and client library that a retry can cure.
MYSQL_TRANSIENT = {
    1205: "lock wait timeout",  # ER_LOCK_WAIT_TIMEOUT
    1213: "deadlock",  # ER_LOCK_DEADLOCK
    1040: "too many connections",  # ER_CON_COUNT_ERROR
    1927: "connection killed",  # MariaDB ER_CONNECTION_KILLED
    2003: "cannot connect",  # CR_CONN_HOST_ERROR
    2006: "server has gone away",  # CR_SERVER_GONE_ERROR
    2013: "lost connection during query",  # CR_SERVER_LOST
    4031: "disconnected for inactivity",  # MySQL 8 ER_CLIENT_INTERACTION_TIMEOUT
}
# SQLSTATEs from PostgreSQL.
POSTGRES_TRANSIENT = {
    "40001": "serialization failure",
    "40P01": "deadlock",
    "55P03": "lock not available",
    "57P01": "server shutting down",
    "57P02": "server crashed",
    "57P03": "server not accepting connections yet",
    "08000": "connection exception",
    "08001": "cannot connect",
    "08003": "connection does not exist",
    "08004": "connection rejected",
    "08006": "connection failure",
}
# Primary result codes from SQLite.
SQLITE_TRANSIENT = {5: "database is busy", 6: "table is locked"}


class TisError(Exception):
    """A TIS job or command cannot go on; the message says why and what to do."""


def is_mysql(conn: Connection | Engine) -> bool:
    return conn.dialect.name in ("mysql", "mariadb")


def transient_reason(exc: BaseException) -> str | None:
    """Why `exc` is worth a retry (deadlock, lock timeout, lost connection…), or None."""
    if not isinstance(exc, DBAPIError):
        return None
    if exc.connection_invalidated:
        return "connection lost"
    orig: Any = exc.orig
    module = type(orig).__module__
    if module.startswith("pymysql"):
        code = orig.args[0] if orig.args and isinstance(orig.args[0], int) else None
        return MYSQL_TRANSIENT.get(code) if code is not None else None
    if module.startswith("psycopg"):
        return POSTGRES_TRANSIENT.get(getattr(orig, "sqlstate", None) or "")
    if module == "sqlite3":
        code = getattr(orig, "sqlite_errorcode", None)
        return SQLITE_TRANSIENT.get(code & 0xFF) if isinstance(code, int) else None
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """The pack's retry settings, as the daemon's one retry helper takes them."""

    attempts: int
    initial_delay: float
    max_delay: float

    @classmethod
    def of(cls, settings: TisSettings) -> RetryPolicy:
        return cls(
            attempts=settings.retry_attempts,
            initial_delay=settings.retry_initial_delay,
            max_delay=settings.retry_max_delay,
        )

    @property
    def backoff(self) -> Backoff:
        """Exponential, with jitter (half to all of each step) so two retrying runs drift apart."""
        return Backoff(
            initial=self.initial_delay,
            maximum=self.max_delay,
            attempts=self.attempts,
            jitter=(0.5, 1.0),
        )

    def delay(self, attempt: int, rng: random.Random) -> float:
        return self.backoff.delay(attempt, rng)


def _transient_db_error(exc: BaseException) -> str | None:
    return transient_reason(exc) if isinstance(exc, DBAPIError) else None


def retrying(
    work: Callable[[], T],
    *,
    policy: RetryPolicy,
    log: Any,
    what: str,
    before_attempt: Callable[[], None] = lambda: None,
    wait: Callable[[float], bool] = sleep_uncancelled,
    rng: random.Random | None = None,
) -> T:
    """`work()`, retried with backoff while it fails with a transient database error.

    `work` must be idempotent: a unit that either commits as a whole or leaves nothing behind.
    `before_attempt` runs before each try and `wait(seconds)` between tries; jobs pass
    `ctx.raise_if_cancelled` and `ctx.wait_cancelled`, so a cancel cuts a back-off short.
    """

    def note(retry: RetryNote) -> None:
        error = retry.error
        cause = error.orig if isinstance(error, DBAPIError) else error
        log.warning("tis.db.retry", what=what, **{**retry.fields(), "error": str(cause)})

    return retry_with_backoff(
        work,
        backoff=policy.backoff,
        transient=_transient_db_error,
        on_retry=note,
        before_attempt=before_attempt,
        wait=wait,
        rng=rng,
    )


# The jobs count what they write from `rowcount`; SQLAlchemy 2.1 only keeps it for INSERT
# (psycopg reports -1 otherwise) when asked.
_COUNT_ROWS = {"preserve_rowcount": True}


def make_engine(url: str, settings: TisSettings) -> Engine:
    """An engine for `url` with connections checked before use and recycled in time."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        engine = create_engine(
            parsed,
            pool_pre_ping=True,
            connect_args={"timeout": settings.lock_timeout},
            execution_options=_COUNT_ROWS,
        )
        _sqlite_transactions(engine, in_memory=parsed.database in (None, "", ":memory:"))
        return engine
    connect_args: dict[str, Any] = {"connect_timeout": int(settings.connect_timeout)}
    options: dict[str, Any] = {}
    if backend in ("mysql", "mariadb"):
        # READ COMMITTED: INSERT … SELECT reads its sources without taking shared locks on
        # them (under REPEATABLE READ InnoDB would lock the rows TCS users are editing).
        options["isolation_level"] = "READ COMMITTED"
    return create_engine(
        parsed,
        pool_pre_ping=True,
        pool_recycle=settings.pool_recycle,
        connect_args=connect_args,
        execution_options=_COUNT_ROWS,
        **options,
    )


def _sqlite_transactions(engine: Engine, *, in_memory: bool) -> None:
    """SQLAlchemy's documented recipe for real SQLite transactions, plus our pragmas.

    BEGIN IMMEDIATE takes the write lock up front, so two writers queue on the busy timeout
    instead of failing when a reader upgrades; WAL lets readers go on during a write.
    """

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def job_engine(settings: TisSettings) -> Iterator[Engine]:
    """An engine for one run; disposed (every connection closed) when the run ends."""
    engine = make_engine(settings.url, settings)
    try:
        yield engine
    finally:
        engine.dispose()


def _lock_key(name: str) -> int:
    return int.from_bytes(
        hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True
    )


@contextmanager
def switch_transaction(conn: Connection, name: str, timeout_s: float) -> Iterator[None]:
    """One transaction that switches a derived table, serialised across runs and daemons.

    PostgreSQL: a transaction-level advisory lock. MySQL: a named lock taken before BEGIN and
    released after COMMIT, so the next run diffs against committed data. SQLite: BEGIN
    IMMEDIATE serialises writers already. Waiting longer than `timeout_s` fails the run.
    """
    if is_mysql(conn):
        got = conn.execute(select(func.get_lock(name, int(timeout_s)))).scalar()
        conn.commit()  # GET_LOCK is not transactional; end the implicit transaction
        if got != 1:
            raise TisError(
                f"another run has held lock {name!r} for over {timeout_s:g} s; try later"
            )
        try:
            with conn.begin():
                yield
        finally:
            # A lost connection has released the lock already; don't mask the real error.
            with suppress(DBAPIError):
                conn.execute(select(func.release_lock(name)))
                conn.commit()
        return
    with conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"SET LOCAL lock_timeout = '{int(timeout_s * 1000)}ms'"))
            conn.execute(select(func.pg_advisory_xact_lock(_lock_key(name))))
        yield


@contextmanager
def staging_tables(engine: Engine, tables: list[Table], memory_mb: int) -> Iterator[Connection]:
    """A connection holding fresh, empty TEMPORARY `tables`, dropped afterwards.

    On MySQL, tables of integer columns only use the MEMORY engine when `memory_mb` > 0 (the
    session's `max_heap_table_size`): hash lookups in RAM instead of B-tree pages competing with
    the source tables for the buffer pool. On failure the connection is invalidated, which
    closes it and with it the tables, so no half-filled staging data goes back to the pool.
    """
    mysql = is_mysql(engine)
    drop = "DROP TEMPORARY TABLE IF EXISTS" if mysql else "DROP TABLE IF EXISTS"
    conn = engine.connect()
    try:
        if mysql and memory_mb > 0:
            conn.exec_driver_sql(f"SET SESSION max_heap_table_size = {memory_mb * 1024 * 1024}")
        for table in tables:
            conn.exec_driver_sql(f"{drop} {table.name}")
            ddl = str(CreateTable(table).compile(dialect=conn.dialect))
            if mysql and memory_mb > 0 and all(isinstance(c.type, Integer) for c in table.c):
                ddl += " ENGINE=MEMORY"
            conn.exec_driver_sql(ddl)
        conn.commit()
        yield conn
        conn.rollback()
        for table in tables:
            conn.exec_driver_sql(f"{drop} {table.name}")
        conn.commit()
    except BaseException:
        conn.invalidate()
        raise
    finally:
        conn.close()


def staging_full(exc: BaseException) -> bool:
    """True when a MEMORY staging table hit `max_heap_table_size` (MySQL error 1114)."""
    orig: Any = getattr(exc, "orig", None)
    return type(orig).__module__.startswith("pymysql") and bool(orig.args) and orig.args[0] == 1114


def page_through(
    page: Callable[[int | None], tuple[int | None, int, int]],
    ctx: RunContext,
    policy: RetryPolicy,
    total: int,
    what: str,
) -> tuple[int, int]:
    """Run `page(last_id)` until it returns no id: each page one retried transaction, rows
    and progress reported to the run, cancellation checked between pages. Returns (visited,
    changed)."""
    last: int | None = None
    visited = changed = 0
    while True:
        hi, read, written = retrying(
            partial(page, last),
            policy=policy,
            log=ctx.log,
            what=what,
            before_attempt=ctx.raise_if_cancelled,
            wait=ctx.wait_cancelled,
        )
        if hi is None:
            return visited, changed
        last = hi
        visited += read
        changed += written
        ctx.add_rows(read=read, written=written)
        ctx.report_progress(min(visited, total), total)
