"""A state store written by the previous release (schema 1: no versions, no change log) opens,
keeps every run and hold, and becomes this repository's versioned data."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from syncd.enums import RunOutcome
from syncd.ledger.schema import SCHEMA_VERSION, UTCDateTime, holds_table
from syncd.ledger.sql import SqlLedger
from syncd.replication.model import HOLD, RUN
from tests.services import fresh_postgres_database

T0 = datetime(2026, 11, 1, 0, 5, tzinfo=UTC)

# The previous release's tables, as it created them.
V1 = sa.MetaData()
sa.Table(
    "syncd_meta",
    V1,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
sa.Table(
    "syncd_runs",
    V1,
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
    sa.Column("error_type", sa.String(200), nullable=False),
    sa.Column("error_message", sa.Text, nullable=False),
    sa.Column("rows_read", sa.BigInteger, nullable=False),
    sa.Column("rows_written", sa.BigInteger, nullable=False),
    sa.Column("progress_done", sa.BigInteger, nullable=False),
    sa.Column("progress_total", sa.BigInteger, nullable=False),
    sa.Index("ix_syncd_runs_bean_started", "bean", "started_at"),
    sa.Index("ix_syncd_runs_state", "state"),
)
sa.Table(
    "syncd_holds",
    V1,
    sa.Column("bean", sa.String(200), primary_key=True),
    sa.Column("paused_at", UTCDateTime, nullable=False),
)


def write_v1(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        V1.create_all(conn)
        conn.execute(V1.tables["syncd_meta"].insert().values(key="schema_version", value="1"))
        conn.execute(
            V1.tables["syncd_runs"].insert(),
            [
                {
                    "run_id": f"20261101T000500-{i:06x}",
                    "bean": "PersonOwnerRebuildJob",
                    "operation": "run",
                    "arguments": "{}",
                    "trigger": "schedule",
                    "actor": "scheduler",
                    "slot_time": T0,
                    "started_at": T0.replace(minute=i),
                    "ended_at": T0.replace(minute=i, second=30),
                    "state": "finished",
                    "outcome": "success",
                    "error_type": "",
                    "error_message": "",
                    "rows_read": 5,
                    "rows_written": 2,
                    "progress_done": 1,
                    "progress_total": 1,
                }
                for i in range(3)
            ],
        )
        conn.execute(V1.tables["syncd_holds"].insert().values(bean="*", paused_at=T0))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def v1_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
        write_v1(url)
        yield url
        return
    with fresh_postgres_database() as url:
        write_v1(url)
        yield url


def test_a_previous_release_ledger_opens_with_its_runs_and_holds(v1_url: str) -> None:
    """Runs and holds are all there, the latest outcome is known, the schema is now current,
    and each old row is a versioned record of this repository in the change log."""
    ledger = SqlLedger(v1_url)
    try:
        assert [r.run_id[-1] for r in ledger.history()] == ["2", "1", "0"]
        last = ledger.last_success("PersonOwnerRebuildJob")
        assert last is not None and last.outcome is RunOutcome.SUCCESS
        assert ledger.holds() == {"*": T0}
        assert ledger.get_meta("schema_version") == str(SCHEMA_VERSION)
        repo = ledger.repository
        page = repo.get_changes(0, 100)
        logged = {c.key for c in page.changes}
        assert {(RUN, r.run_id) for r in ledger.history()} <= logged
        assert (HOLD, "*") in logged
        assert all(c.version.origin == repo.repo_id for c in page.changes)
        ledger.clear_hold("*")
        assert ledger.holds() == {}
    finally:
        ledger.close()
    again = SqlLedger(v1_url)  # a second open migrates nothing and loses nothing
    try:
        assert len(again.history()) == 3 and again.holds() == {}
        assert again.repository.repo_id == repo.repo_id
    finally:
        again.close()


def test_a_seq_committed_late_under_a_concurrent_postgresql_writer_is_not_skipped() -> None:
    """Scenario 9: two daemons write one PostgreSQL repository. A writer holding an
    uncommitted seq keeps the stable watermark below it, and the next writer's seq comes
    after it, so a reader paging by cursor never passes a seq that commits later."""
    import threading

    with fresh_postgres_database() as url:
        first, second = SqlLedger(url), SqlLedger(url)
        try:
            start = first.repository.info().stable_watermark
            engine = sa.create_engine(url)
            done = threading.Event()
            with engine.connect() as conn:
                tx = conn.begin()
                slow = first.repository.stamp(conn, HOLD, "slow")  # seq allocated, not committed
                conn.execute(
                    holds_table.insert().values(
                        bean="slow", paused_at=T0, hlc=slow.hlc, origin=slow.origin
                    )
                )
                assert second.repository.info().stable_watermark == start

                def write_fast() -> None:
                    second.repository.write(HOLD, "fast", {}, deleted=True)
                    done.set()

                writer = threading.Thread(target=write_fast)
                writer.start()
                page = second.repository.get_changes(start, 100)
                assert page.changes == [] and page.next_cursor == start  # nothing to skip past
                tx.commit()
            assert done.wait(20)
            writer.join(20)
            engine.dispose()
            logged = second.repository.get_changes(start, 100)
            keys = [c.id for c in logged.changes if c.type == HOLD]
            assert keys == ["slow", "fast"]  # commit order: the late commit is not skipped
        finally:
            first.close()
            second.close()
