"""Fixtures for the tis pack: a recording RunContext and one database per backend.

`db` is parametrized over SQLite (a file per test), MariaDB and PostgreSQL (one fresh database
per session, emptied after every test). The server backends skip visibly when their server is
down, or fail under SYNCD_REQUIRE_SERVICES=1 (tests.services).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, create_engine, select

from syncd.enums import Trigger
from syncd.errors import RunCancelled
from syncd.values import Value
from syncd_tis import TisSettings
from syncd_tis._db import make_engine
from syncd_tis._schema import (
    REFERENCE,
    TCS,
    create_schema,
    person,
    person_owner,
    person_trust,
    placement,
    post,
    post_funding,
    post_trust,
    programme,
    programme_membership,
)
from tests.services import fresh_mariadb_database, fresh_postgres_database

BACKENDS = [
    "sqlite",
    pytest.param("mariadb", marks=pytest.mark.services),
    pytest.param("postgres", marks=pytest.mark.services),
]


class RecordingLog:
    """A structlog-shaped logger that keeps every event and can act on chosen ones.

    `on(event, hook)` runs `hook` when the job logs `event`, in the job's thread: tests use it
    to meet the job at a known point, or to make it fail there.
    """

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._hooks: dict[str, Callable[[], None]] = {}

    def on(self, event: str, hook: Callable[[], None]) -> None:
        self._hooks[event] = hook

    def names(self) -> list[str]:
        return [e["event"] for e in self.events]

    def _emit(self, level: str, event: str, **fields: Any) -> None:
        self.events.append({"event": event, "level": level, **fields})
        hook = self._hooks.get(event)
        if hook is not None:
            hook()

    def bind(self, **_fields: Any) -> RecordingLog:
        return self

    def debug(self, event: str, **fields: Any) -> None:
        self._emit("debug", event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        self._emit("info", event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit("warning", event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self._emit("error", event, **fields)


_run_ids = itertools.count(1)


class RecordingRunContext:
    """A RunContext for driving job bodies in tests: records progress, rows and log events;
    `cancel()` makes the next `raise_if_cancelled()` raise RunCancelled."""

    def __init__(
        self,
        settings: Any = None,
        args: Mapping[str, Value] | None = None,
        bean: str = "test",
        fencing_token: int | None = None,
    ) -> None:
        self.fencing_token = fencing_token
        self._settings = settings
        self._args = dict(args or {})
        self._bean = bean
        self._run_id = f"test-{next(_run_ids)}"
        self.cancelled = threading.Event()
        self.progress: list[tuple[int, int | None]] = []
        self.rows_read = 0
        self.rows_written = 0
        self.waits: list[float] = []
        self.recorder = RecordingLog()

    @property
    def run_id(self) -> str:
        return self._run_id

    @property
    def bean(self) -> str:
        return self._bean

    @property
    def trigger(self) -> Trigger:
        return Trigger.MANUAL

    @property
    def args(self) -> Mapping[str, Value]:
        return self._args

    @property
    def settings(self) -> Any:
        return self._settings

    @property
    def log(self) -> Any:
        return self.recorder

    def cancel(self) -> None:
        self.cancelled.set()

    def is_cancelled(self) -> bool:
        return self.cancelled.is_set()

    def raise_if_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise RunCancelled

    def wait_cancelled(self, timeout: float) -> bool:
        """Back-offs take no time in tests: the wait is recorded and returns at once."""
        self.waits.append(timeout)
        return self.cancelled.is_set()

    def report_progress(self, done: int, total: int | None = None) -> None:
        self.progress.append((done, total))

    def add_rows(self, *, read: int = 0, written: int = 0) -> None:
        self.rows_read += read
        self.rows_written += written


@dataclass
class Db:
    """A test database with its schema, and helpers to build fixtures by hand."""

    backend: str
    url: str
    engine: Engine
    reader: Engine  # a plain engine: reads committed data even while a job holds a write lock
    _ids: dict[str, itertools.count[int]] = field(default_factory=dict)

    def settings(self, **overrides: Any) -> TisSettings:
        """Settings for this database; tiny pages so every test crosses page boundaries."""
        values: dict[str, Any] = {
            "source_url": self.url,
            "page_size": 2,
            "retry_attempts": 1,
            "lock_timeout": 10.0,
        }
        values.update(overrides)
        return TisSettings(**values)

    def context(
        self, args: Mapping[str, Value] | None = None, **overrides: Any
    ) -> RecordingRunContext:
        return RecordingRunContext(self.settings(**overrides), args)

    def _next(self, table: str) -> int:
        return next(self._ids.setdefault(table, itertools.count(1)))

    def insert(self, table: Any, **values: Any) -> int:
        if "id" in table.c and "id" not in values:
            values["id"] = self._next(table.name)
        with self.engine.begin() as conn:
            conn.execute(table.insert().values(**values))
        return int(values.get("id", 0))

    def person(self, status: str | None = None, id: int | None = None) -> int:
        pid = self._next(person.name) if id is None else id
        return self.insert(person, id=pid, status=status, role="DR in Training")

    def programme(self, owner: str | None) -> int:
        return self.insert(programme, owner=owner, programmeName=f"programme of {owner}")

    def membership(
        self, person_id: int, programme_id: int, start: date | None, end: date | None
    ) -> int:
        return self.insert(
            programme_membership,
            personId=person_id,
            programmeId=programme_id,
            programmeStartDate=start,
            programmeEndDate=end,
        )

    def post(
        self,
        owner: str | None = None,
        employing: int | None = None,
        training: int | None = None,
        funding_status: str | None = None,
    ) -> int:
        return self.insert(
            post,
            owner=owner,
            employingBodyId=employing,
            trainingBodyId=training,
            fundingStatus=funding_status,
        )

    def placement(
        self,
        person_id: int,
        post_id: int,
        start: date | None,
        end: date | None,
        lifecycle: str = "APPROVED",
    ) -> int:
        return self.insert(
            placement,
            traineeId=person_id,
            postId=post_id,
            dateFrom=start,
            dateTo=end,
            lifecycleState=lifecycle,
        )

    def funding(self, post_id: int, start: date | None, end: date | None) -> int:
        return self.insert(post_funding, postId=post_id, startDate=start, endDate=end)

    def owners(self) -> dict[int, tuple[str | None, str | None]]:
        with self.reader.connect() as conn:
            rows = conn.execute(
                select(person_owner.c.id, person_owner.c.owner, person_owner.c.rule)
            )
            return {r.id: (r.owner, r.rule) for r in rows}

    def person_trusts(self) -> list[tuple[int, int | None]]:
        with self.reader.connect() as conn:
            rows = conn.execute(select(person_trust.c.personId, person_trust.c.trustId))
            return sorted((r[0], r[1]) for r in rows)

    def post_trusts(self) -> list[tuple[int, int | None]]:
        with self.reader.connect() as conn:
            rows = conn.execute(select(post_trust.c.postId, post_trust.c.trustId))
            return sorted((r[0], r[1]) for r in rows)

    def persons(self) -> dict[int, tuple[str | None, Any]]:
        with self.reader.connect() as conn:
            rows = conn.execute(select(person.c.id, person.c.status, person.c.amendedDate))
            return {r.id: (r.status, r.amendedDate) for r in rows}

    def funding_statuses(self) -> dict[int, str | None]:
        with self.reader.connect() as conn:
            rows = conn.execute(select(post.c.id, post.c.fundingStatus))
            return {r.id: r.fundingStatus for r in rows}

    @contextmanager
    def unchecked(self) -> Iterator[Connection]:
        """A transaction with foreign keys off, to build states a TCS schema without them
        allows (rows of deleted persons, dangling references)."""
        with self.engine.connect() as conn:
            raw: Any = conn.connection.dbapi_connection
            if self.backend == "sqlite":
                raw.execute("PRAGMA foreign_keys=OFF")  # a no-op inside a transaction
            with conn.begin():
                if self.backend == "mariadb":
                    conn.exec_driver_sql("SET SESSION foreign_key_checks = 0")
                elif self.backend == "postgres":
                    conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
                yield conn
            if self.backend == "sqlite":
                raw.execute("PRAGMA foreign_keys=ON")
            elif self.backend == "mariadb":
                conn.exec_driver_sql("SET SESSION foreign_key_checks = 1")

    def empty(self) -> None:
        with self.engine.begin() as conn:
            for table in reversed([*TCS.sorted_tables, *REFERENCE.sorted_tables]):
                conn.execute(table.delete())


def _server_database(opener: Callable[[], Any]) -> Iterator[str]:
    with opener() as url:
        engine = make_engine(url, TisSettings(source_url=url))
        try:
            create_schema(engine)
        finally:
            engine.dispose()
        yield url


@pytest.fixture(scope="session")
def mariadb_url() -> Iterator[str]:
    """One fresh MariaDB database with the schema for the session, dropped at the end."""
    yield from _server_database(fresh_mariadb_database)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """One fresh PostgreSQL database with the schema for the session, dropped at the end."""
    yield from _server_database(fresh_postgres_database)


@contextmanager
def _open(backend: str, url: str) -> Iterator[Db]:
    engine = make_engine(url, TisSettings(source_url=url, lock_timeout=10.0))
    database = Db(backend=backend, url=url, engine=engine, reader=create_engine(url))
    try:
        if backend == "sqlite":
            create_schema(engine)
        else:
            database.empty()
        yield database
    finally:
        try:
            if backend != "sqlite":
                database.empty()
        finally:
            database.reader.dispose()
            engine.dispose()


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    """An empty TCS schema on each backend; emptied again after the test."""
    backend: str = request.param
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'tis.sqlite3'}"
    else:
        url = request.getfixturevalue(f"{backend}_url")
    with _open(backend, url) as database:
        yield database


@pytest.fixture
def mariadb_db(mariadb_url: str) -> Iterator[Db]:
    """The MariaDB backend alone, for what only a server with row locks can show."""
    with _open("mariadb", mariadb_url) as database:
        yield database
