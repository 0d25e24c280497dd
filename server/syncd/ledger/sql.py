"""The run ledger in SQL: SQLite in the state directory by default, PostgreSQL by `ledger.url`.

A `syncd_meta` row holds the schema version; a ledger written by a newer syncd is refused.
The latest outcome per bean is cached in memory so status calls never query.

Every storage fault leaves here as a `LedgerUnavailableError` naming the problem ("disk full",
"locked by another writer", "database unreachable"); no write waits longer than
`write_timeout` for a lock; a SQLite file deleted or replaced under the daemon is noticed
before the next write (see `_faults`). Methods are blocking: the daemon calls them only
from the recorder's threads, never from its event loop. The writes its one writer thread
queued together share one transaction (`batch`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection, Engine

from syncd.enums import RunOutcome, RunState
from syncd.errors import LedgerUnavailableError, SyncdError
from syncd.ledger import _rows
from syncd.ledger._faults import SqliteFileGuard, check_writable, problem_of
from syncd.ledger._liveness import check_on_checkout
from syncd.ledger.model import EXECUTED, INTERRUPTED_MESSAGE, RunRecord, keeps_interrupted
from syncd.ledger.schema import (
    SCHEMA_VERSION,
    changes_table,
    holds_table,
    meta_table,
    metadata,
    migrate,
    runs_table,
)
from syncd.replication.hlc import Hlc
from syncd.replication.model import HOLD, RUN
from syncd.replication.store import SqlRepository

__all__ = ["SCHEMA_VERSION", "LedgerError", "SqlLedger", "holds_table", "meta_table", "runs_table"]

log = structlog.get_logger("syncd.ledger")


class LedgerError(LedgerUnavailableError):
    """Raised when the ledger is of an unknown schema version (or otherwise unusable)."""

    def __init__(self, message: str) -> None:
        self.problem = message
        SyncdError.__init__(self, message)


def _engine(url: str, write_timeout: float) -> Engine:
    wait_ms = max(1, int(write_timeout * 1000))
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute(f"PRAGMA busy_timeout={wait_ms}")  # a lock waits this long, no more
            cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    # A lost server or a held lock fails a statement in bounded time instead of hanging it.
    connect_args = {
        "connect_timeout": max(1, round(write_timeout)),
        "options": f"-c lock_timeout={wait_ms} -c statement_timeout={max(wait_ms, 60_000)}",
    }
    engine = sa.create_engine(url, pool_recycle=300, pool_size=2, connect_args=connect_args)
    check_on_checkout(engine)  # the pre-ping's safety without its round trip
    return engine


def _sqlite_path(url: str) -> Path | None:
    parsed = sa.make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


@dataclass(slots=True)
class _Group:
    """A batch's one transaction, the thread writing it, and what waits for its commit."""

    conn: Connection
    thread: int
    committed: list[tuple[Callable[[RunRecord], None], RunRecord]] = field(default_factory=list)


class SqlLedger:
    """A RunLedger over SQLAlchemy Core."""

    def __init__(
        self,
        url: str,
        *,
        write_timeout: float = 5.0,
        hlc: Hlc | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self._url = url
        self._write_timeout = write_timeout
        self._lock = threading.Lock()
        self._group: _Group | None = None  # the writer's batch under way
        self._last_finished: dict[str, RunRecord] = {}
        self._last_success: dict[str, RunRecord] = {}
        # The replicated repository these tables are; it shares this lock and connection.
        self.repository = SqlRepository(self._tx, self._read, hlc or Hlc(), now or _utc_now)
        self._engine = self._open()
        path = _sqlite_path(url)
        self._guard = SqliteFileGuard(path) if path is not None else None

    def _open(self) -> Engine:
        """Connect, check the schema and load the latest outcomes; one clear error if not."""
        path = _sqlite_path(self._url)
        if path is not None and path.exists():
            try:
                check_writable(path)  # a read-only ledger is refused now, not at the first run
            except LedgerUnavailableError as exc:
                raise LedgerUnavailableError(exc.problem, action="opened") from None
        engine = _engine(self._url, self._write_timeout)
        try:
            with engine.begin() as conn:
                self._check_schema(conn)
                self.repository.open(conn)
            self._last_finished, self._last_success = self._load_latest(
                engine, self.repository.repo_id
            )
        except LedgerError:
            engine.dispose()
            raise
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            engine.dispose()
            raise LedgerUnavailableError(
                f"{problem_of(exc)} ({_safe(self._url)})", action="opened"
            ) from exc
        return engine

    def _check_schema(self, conn: Connection) -> None:
        metadata.create_all(conn, checkfirst=True)
        row = conn.execute(
            sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version")
        ).first()
        if row is None:
            conn.execute(
                meta_table.insert().values(key="schema_version", value=str(SCHEMA_VERSION))
            )
            return
        found = int(row[0])
        if found > SCHEMA_VERSION:
            raise LedgerError(
                f"the run ledger has schema version {found}; this syncd knows up to"
                f" {SCHEMA_VERSION}. Upgrade syncd or point ledger.url elsewhere."
            )
        if found < SCHEMA_VERSION:
            migrate(conn, found)
            conn.execute(
                meta_table.update()
                .where(meta_table.c.key == "schema_version")
                .values(value=str(SCHEMA_VERSION))
            )
            log.info("ledger.migrated", from_version=found, to_version=SCHEMA_VERSION)

    @staticmethod
    def _load_latest(
        engine: Engine, origin: str
    ) -> tuple[dict[str, RunRecord], dict[str, RunRecord]]:
        last_finished: dict[str, RunRecord] = {}
        last_success: dict[str, RunRecord] = {}
        with engine.connect() as conn:
            for outcome_filter, target in (
                (runs_table.c.outcome.in_([o.value for o in EXECUTED]), last_finished),
                (runs_table.c.outcome == RunOutcome.SUCCESS.value, last_success),
            ):
                newest = (
                    sa.select(runs_table.c.bean, sa.func.max(runs_table.c.ended_at).label("at"))
                    .where(outcome_filter, runs_table.c.origin == origin)
                    .group_by(runs_table.c.bean)
                    .subquery()
                )
                rows = conn.execute(
                    sa.select(runs_table)
                    .join(
                        newest,
                        sa.and_(
                            runs_table.c.bean == newest.c.bean,
                            runs_table.c.ended_at == newest.c.at,
                        ),
                    )
                    .where(outcome_filter, runs_table.c.origin == origin)
                )
                for row in rows:
                    record = _rows.record_of(row)
                    target[record.bean] = record
        return last_finished, last_success

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Writes made inside, on this thread, share one transaction, committed as the block
        ends; if the block raises, none of them is kept. (The one writer's groups.)"""
        with self._lock:
            self._follow_file()
            with _faults("written"), self._engine.begin() as conn:
                self._group = _Group(conn, threading.get_ident())
                try:
                    yield
                finally:
                    group, self._group = self._group, None
        for effect, record in group.committed:
            effect(record)

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        group = self._group
        if group is not None and group.thread == threading.get_ident():
            with _faults("written"):
                yield group.conn
            return
        with self._lock:
            self._follow_file()
            with _faults("written"), self._engine.begin() as conn:
                yield conn

    def _once_committed(self, effect: Callable[[RunRecord], None], record: RunRecord) -> None:
        """Run `effect` once the write under way is committed (at once outside a batch)."""
        group = self._group
        if group is not None and group.thread == threading.get_ident():
            group.committed.append((effect, record))
        else:
            effect(record)

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with _faults("read"), self._engine.connect() as conn:
            yield conn

    def _follow_file(self) -> None:
        """Before a write: refuse a deleted or unwritable file; reopen a replaced one."""
        if self._guard is None or not self._guard.replaced():
            return
        # Close the old file first: its last connection checkpoints its WAL into the old
        # inode and removes the -wal beside the path, so the new file never replays it.
        self._engine.dispose()
        try:
            kept = self._guard.set_aside_old_journal()
        except OSError as exc:
            raise LedgerUnavailableError(problem_of(exc)) from exc
        self._engine = self._open()  # raises if the new file is no usable ledger
        self._guard.accept()
        log.warning(
            "ledger.reopened",
            path=str(self._guard.path),
            old_journal_kept_as=str(kept) if kept else None,
        )

    def _stamped(self, conn: Connection, record: RunRecord) -> dict[str, Any]:
        """The row of a local run write, with its new version (logged in this transaction)."""
        version = self.repository.stamp(conn, RUN, record.run_id)
        return _rows.row(record) | {"hlc": version.hlc, "origin": version.origin, "deleted": False}

    def record_start(self, record: RunRecord) -> None:
        with self._tx() as conn:
            conn.execute(_rows.INSERT_RUN, self._stamped(conn, record))

    def record_end(self, record: RunRecord) -> None:
        with self._tx() as conn:
            stored = conn.execute(_rows.STORED_STATE, {"b_run_id": record.run_id}).first()
            if stored is not None and keeps_interrupted(stored.state, stored.outcome, record):
                # Runs are facts: a run already recorded interrupted (another replica took
                # over after its lease expired) is not rewritten by its old holder's late end.
                return
            self._write(conn, record)  # a missing start row (a replaced file) is written whole
        self._once_committed(self._remember, record)

    def record(self, record: RunRecord) -> None:
        with self._tx() as conn:
            self._write(conn, record)
        self._once_committed(self._remember, record)

    def _write(self, conn: Connection, record: RunRecord) -> None:
        # Idempotent, so a retry after an ambiguous failure (a commit whose answer was lost)
        # cannot fail on the key it already wrote.
        values = self._stamped(conn, record)
        if not conn.execute(_rows.UPDATE_RUN, values | {"b_run_id": record.run_id}).rowcount:
            conn.execute(_rows.INSERT_RUN, values)

    def _remember(self, record: RunRecord) -> None:
        if record.outcome in EXECUTED:
            self._last_finished[record.bean] = record
        if record.outcome is RunOutcome.SUCCESS:
            self._last_success[record.bean] = record

    def get(self, run_id: str) -> RunRecord | None:
        with self._read() as conn:
            row = conn.execute(_rows.GET_RUN, {"b_run_id": run_id}).first()
        return _rows.record_of(row) if row else None

    def last_finished(self, bean: str) -> RunRecord | None:
        return self._last_finished.get(bean)

    def last_success(self, bean: str) -> RunRecord | None:
        return self._last_success.get(bean)

    def history(
        self, bean: str | None = None, limit: int = 50, repository: str | None = None
    ) -> list[RunRecord]:
        query = sa.select(runs_table).order_by(
            runs_table.c.started_at.desc(), runs_table.c.run_id.desc()
        )
        query = query.where(runs_table.c.deleted.is_(False))
        if repository != "*":
            query = query.where(runs_table.c.origin == (repository or self.repository.repo_id))
        if bean is not None:
            query = query.where(runs_table.c.bean == bean)
        with self._read() as conn:
            return [_rows.record_of(r) for r in conn.execute(query.limit(limit))]

    def runs_since(self, since: datetime) -> list[RunRecord]:
        moment = sa.func.coalesce(runs_table.c.slot_time, runs_table.c.started_at)
        query = sa.select(runs_table).where(
            sa.or_(runs_table.c.started_at >= since, runs_table.c.slot_time >= since),
            runs_table.c.origin == self.repository.repo_id,
        )
        with self._read() as conn:
            rows = [_rows.record_of(r) for r in conn.execute(query.order_by(moment))]
        return sorted(rows, key=lambda r: r.started_at)

    def _still_running_elsewhere(self) -> list[sa.ColumnElement[bool]]:
        """Conditions that spare open runs another process still runs (none for one daemon;
        cluster mode spares those a live lease covers)."""
        return []

    def mark_interrupted(self, now: datetime) -> list[RunRecord]:
        with self._tx() as conn:
            open_rows = [
                _rows.record_of(r)
                for r in conn.execute(
                    sa.select(runs_table)
                    .where(
                        runs_table.c.state != RunState.FINISHED.value,
                        # Another repository's open run is its own to finish.
                        runs_table.c.origin == self.repository.repo_id,
                        *self._still_running_elsewhere(),
                    )
                    # Locked (in one order, as replicas starting together may both look), so
                    # an end another process commits meanwhile is not overwritten.
                    .order_by(runs_table.c.run_id)
                    .with_for_update()
                )
            ]
            for run in open_rows:
                version = self.repository.stamp(conn, RUN, run.run_id)
                conn.execute(
                    runs_table.update()
                    .where(
                        runs_table.c.run_id == run.run_id,
                        runs_table.c.state != RunState.FINISHED.value,
                    )
                    .values(
                        state=RunState.FINISHED.value,
                        outcome=RunOutcome.INTERRUPTED.value,
                        ended_at=now,
                        error_type="Interrupted",
                        error_message=INTERRUPTED_MESSAGE,
                        hlc=version.hlc,
                        origin=version.origin,
                    )
                )
        done = [self.get(r.run_id) for r in open_rows] if open_rows else []
        for record in done:
            if record is not None:
                self._remember(record)
        return [r for r in done if r is not None]

    def prune(self, now: datetime, keep_days: float, keep_per_bean: int) -> int:
        removed = 0
        with self._tx() as conn:
            cutoff = now - timedelta(days=keep_days)
            removed += conn.execute(
                runs_table.delete().where(
                    runs_table.c.state == RunState.FINISHED.value, runs_table.c.ended_at < cutoff
                )
            ).rowcount
            beans = [r[0] for r in conn.execute(sa.select(runs_table.c.bean).distinct())]
            for bean in beans:
                nth = conn.execute(
                    sa.select(runs_table.c.started_at)
                    .where(runs_table.c.bean == bean)
                    .order_by(runs_table.c.started_at.desc())
                    .offset(keep_per_bean)
                    .limit(1)
                ).scalar()
                if nth is not None:
                    removed += conn.execute(
                        runs_table.delete().where(
                            runs_table.c.bean == bean,
                            runs_table.c.started_at <= nth,
                            runs_table.c.state == RunState.FINISHED.value,
                        )
                    ).rowcount
            # Retention is local: what is pruned here leaves the change log too.
            conn.execute(
                changes_table.delete().where(
                    changes_table.c.type == RUN,
                    changes_table.c.id.not_in(sa.select(runs_table.c.run_id)),
                )
            )
        return removed

    def holds(self) -> dict[str, datetime]:
        with self._read() as conn:
            rows = conn.execute(sa.select(holds_table).where(holds_table.c.deleted.is_(False)))
            return {r.bean: r.paused_at for r in rows}

    def set_hold(self, bean: str, at: datetime) -> None:
        with self._tx() as conn:
            row = conn.execute(sa.select(holds_table).where(holds_table.c.bean == bean)).first()
            if row is not None and not row.deleted:
                return
            version = self.repository.stamp(conn, HOLD, bean)
            values = {"paused_at": at, "hlc": version.hlc, "origin": version.origin}
            if row is None:
                conn.execute(holds_table.insert().values(bean=bean, **values))
            else:
                conn.execute(
                    holds_table.update()
                    .where(holds_table.c.bean == bean)
                    .values(deleted=False, base_hlc=row.hlc, base_origin=row.origin, **values)
                )

    def clear_hold(self, bean: str) -> None:
        # A tombstone, not a delete: the resume must reach the other repositories.
        with self._tx() as conn:
            row = conn.execute(sa.select(holds_table).where(holds_table.c.bean == bean)).first()
            if row is None or row.deleted:
                return
            version = self.repository.stamp(conn, HOLD, bean)
            conn.execute(
                holds_table.update()
                .where(holds_table.c.bean == bean)
                .values(
                    deleted=True,
                    hlc=version.hlc,
                    origin=version.origin,
                    base_hlc=row.hlc,
                    base_origin=row.origin,
                )
            )

    def get_meta(self, key: str) -> str | None:
        with self._read() as conn:
            value = conn.execute(
                sa.select(meta_table.c.value).where(meta_table.c.key == key)
            ).scalar()
        return None if value is None else str(value)

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as conn:
            updated = conn.execute(
                meta_table.update().where(meta_table.c.key == key).values(value=value)
            ).rowcount
            if not updated:
                conn.execute(meta_table.insert().values(key=key, value=value))

    def close(self) -> None:
        self._engine.dispose()


def _utc_now() -> datetime:
    return datetime.now(UTC)


@contextmanager
def _faults(action: str) -> Iterator[None]:
    """Driver and OS errors out as LedgerUnavailableError naming the problem."""
    try:
        yield
    except LedgerUnavailableError:
        raise
    except (sa.exc.SQLAlchemyError, OSError) as exc:
        raise LedgerUnavailableError(problem_of(exc), action=action) from exc


def _safe(url: str) -> str:
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "(unparsable url)"
