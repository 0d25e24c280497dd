"""Database plumbing: which errors are transient, and how retries back off and stop."""

from __future__ import annotations

import importlib
import random
import sqlite3
from pathlib import Path
from typing import Any

import psycopg.errors
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from syncd.errors import RunCancelled
from syncd_tis._db import RetryPolicy, retrying, transient_reason
from tests.tis.conftest import RecordingRunContext

# PyMySQL ships no type hints; its exceptions are used as the driver raises them.
pymysql_err: Any = importlib.import_module("pymysql.err")

POLICY = RetryPolicy(attempts=4, initial_delay=0.5, max_delay=1.5)


def wrapped(orig: BaseException, cls: type[DBAPIError] = OperationalError) -> DBAPIError:
    return cls("UPDATE ...", {}, orig)


class TestTransientErrors:
    @pytest.mark.parametrize(
        ("orig", "reason"),
        [
            (pymysql_err.OperationalError(1213, "Deadlock found"), "deadlock"),
            (pymysql_err.OperationalError(1205, "Lock wait timeout exceeded"), "lock wait timeout"),
            (pymysql_err.OperationalError(2013, "Lost connection"), "lost connection during query"),
            (
                pymysql_err.OperationalError(2006, "MySQL server has gone away"),
                "server has gone away",
            ),
            (psycopg.errors.DeadlockDetected("deadlock detected"), "deadlock"),
            (psycopg.errors.SerializationFailure("could not serialize"), "serialization failure"),
            (psycopg.errors.AdminShutdown("terminating connection"), "server shutting down"),
        ],
        ids=lambda v: v if isinstance(v, str) else type(v).__name__,
    )
    def test_deadlocks_lock_timeouts_and_lost_connections_are_retried(
        self, orig: BaseException, reason: str
    ) -> None:
        """The server's own error codes decide, per driver."""
        assert transient_reason(wrapped(orig)) == reason

    def test_a_busy_sqlite_database_is_transient(self) -> None:
        """SQLITE_BUSY (5), also in its extended forms, is worth another try."""
        busy = sqlite3.OperationalError("database is locked")
        busy.sqlite_errorcode = 5 | (2 << 8)  # SQLITE_BUSY_SNAPSHOT
        assert transient_reason(wrapped(busy)) == "database is busy"

    @pytest.mark.parametrize(
        "orig",
        [
            pymysql_err.IntegrityError(1062, "Duplicate entry '7' for key 'person_owner_pk'"),
            pymysql_err.ProgrammingError(1146, "Table 'tcs.Person' doesn't exist"),
            psycopg.errors.UniqueViolation("duplicate key"),
        ],
        ids=lambda v: type(v).__name__,
    )
    def test_other_errors_are_not(self, orig: BaseException) -> None:
        """A bug or bad data fails the run at once."""
        assert transient_reason(wrapped(orig, IntegrityError)) is None

    def test_an_invalidated_connection_is_transient(self) -> None:
        """SQLAlchemy's disconnect detection counts as a lost connection."""
        err = DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True)
        assert transient_reason(err) == "connection lost"


class TestRetrying:
    def test_transient_failures_are_retried_with_growing_waits(self) -> None:
        """Two deadlocks, then success: two logged retries, exponential capped waits."""
        ctx = RecordingRunContext()
        failures = [wrapped(pymysql_err.OperationalError(1213, "Deadlock found"))] * 2

        def work() -> str:
            if failures:
                raise failures.pop()
            return "done"

        result = retrying(
            work,
            policy=POLICY,
            log=ctx.log,
            what="a page",
            before_attempt=ctx.raise_if_cancelled,
            wait=ctx.wait_cancelled,
            rng=random.Random(1),
        )
        assert result == "done"
        assert [e["attempt"] for e in ctx.recorder.events] == [1, 2]
        assert {e["reason"] for e in ctx.recorder.events} == {"deadlock"}
        assert 0.25 <= ctx.waits[0] <= 0.5 and 0.5 <= ctx.waits[1] <= 1.0

    def test_a_permanent_error_is_raised_at_once(self) -> None:
        """No wait, no retry for a non-transient error."""
        ctx = RecordingRunContext()
        dup = wrapped(pymysql_err.IntegrityError(1062, "Duplicate entry"), IntegrityError)

        def work() -> None:
            raise dup

        with pytest.raises(IntegrityError):
            retrying(work, policy=POLICY, log=ctx.log, what="x", wait=ctx.wait_cancelled)
        assert ctx.waits == []

    def test_retries_stop_after_the_configured_attempts(self) -> None:
        """The last transient error propagates after `attempts` tries; waits never exceed the cap."""
        ctx = RecordingRunContext()
        calls = 0

        def work() -> None:
            nonlocal calls
            calls += 1
            raise wrapped(pymysql_err.OperationalError(2013, "Lost connection"))

        with pytest.raises(OperationalError):
            retrying(work, policy=POLICY, log=ctx.log, what="x", wait=ctx.wait_cancelled)
        assert calls == 4
        assert len(ctx.waits) == 3 and max(ctx.waits) <= 1.5

    def test_a_cancel_during_the_back_off_stops_the_retries(self) -> None:
        """Cancelled while waiting: RunCancelled instead of another attempt."""
        ctx = RecordingRunContext()
        calls = 0

        def work() -> None:
            nonlocal calls
            calls += 1
            ctx.cancel()
            raise wrapped(pymysql_err.OperationalError(1205, "Lock wait timeout"))

        with pytest.raises(RunCancelled):
            retrying(
                work,
                policy=POLICY,
                log=ctx.log,
                what="x",
                before_attempt=ctx.raise_if_cancelled,
                wait=ctx.wait_cancelled,
            )
        assert calls == 1

    def test_a_real_locked_sqlite_database_is_retried_until_free(self, tmp_path: Path) -> None:
        """Another connection holds the write lock; once it commits the retry goes through."""
        path = tmp_path / "locked.sqlite3"
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("CREATE TABLE t (n INTEGER)")
        blocker.execute("BEGIN IMMEDIATE")
        engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
        ctx = RecordingRunContext()

        def release() -> None:
            blocker.execute("COMMIT")

        ctx.recorder.on("tis.db.retry", release)

        def work() -> None:
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO t (n) VALUES (1)"))

        try:
            retrying(work, policy=POLICY, log=ctx.log, what="insert", wait=ctx.wait_cancelled)
        finally:
            blocker.close()
            engine.dispose()
        assert [e["reason"] for e in ctx.recorder.events] == ["database is busy"]
