"""The batch write path on both backends: the same pages applied to a SQLite and a PostgreSQL
repository end in the same records, change log, conflicts, ping-backs and graveyard.

PostgreSQL lands a batch of 64 rows or more with COPY into a staging table and one set-based
upsert; SQLite runs prepared statements. The scenario below drives both through new records,
newer and older versions (conflicts both ways), tombstones, a rejected parent-only write, a
duplicate page, and writes to collected tombstones (older ones stay deleted, newer ones win).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from syncd.enums import Trigger
from syncd.errors import LedgerUnavailableError
from syncd.ledger.model import RunRecord
from syncd.ledger.schema import changes_table, graveyard_table, notes_table
from syncd.ledger.sql import SqlLedger
from syncd.replication._bulk import ANALYZE_MIN, COPY_MIN, Bulk
from syncd.replication._codec import CODECS
from syncd.replication.hlc import Hlc
from syncd.replication.model import (
    FROM_CHILD,
    JOB,
    NOTE,
    REPO,
    RUN,
    ApplyResult,
    Change,
    Version,
)
from syncd.replication.store import SqlRepository
from tests.services import fresh_postgres_database
from tests.waiting import BOUND

T0_MS = int(datetime(2026, 11, 22, 2, 0, tzinfo=UTC).timestamp() * 1000)
NOTES, RUNS = 150, 80


class Clock:
    def __init__(self) -> None:
        self.ms = T0_MS
        self.skew = 0  # the targets' clock ahead of the source's

    def source(self) -> int:
        return self.ms

    def target(self) -> int:
        return self.ms + self.skew

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.ms / 1000, UTC)


@dataclass
class Target:
    ledger: SqlLedger
    url: str

    @property
    def repo(self) -> SqlRepository:
        return self.ledger.repository


def note(i: int, text: str) -> dict[str, str]:
    return {"body": json.dumps({"subject": f"job:J{i % 7}", "text": text, "author": "op"})}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def source(tmp_path: Path, clock: Clock) -> Iterator[SqlLedger]:
    ledger = SqlLedger(
        f"sqlite:///{tmp_path / 'source.sqlite3'}", hlc=Hlc(clock.source), now=clock.now
    )
    yield ledger
    ledger.close()


@pytest.fixture
def targets(tmp_path: Path, clock: Clock) -> Iterator[list[Target]]:
    with fresh_postgres_database() as pg_url:
        made: list[Target] = []
        try:
            for url in (f"sqlite:///{tmp_path / 'target.sqlite3'}", pg_url):
                ledger = SqlLedger(url, hlc=Hlc(clock.target), now=clock.now)
                made.append(Target(ledger, url))
            yield made
        finally:
            for target in made:
                target.ledger.close()


def _anon(target: Target, text: str) -> str:
    return text.replace(target.repo.repo_id, "<target>")


def _result(target: Target, result: ApplyResult) -> tuple[Any, ...]:
    return (
        result.applied,
        sorted(result.stale),
        sorted((r.key, _anon(target, r.reason)) for r in result.rejected),
        result.stored_cursor,
        result.conflicts,
    )


def _state(target: Target) -> dict[str, Any]:
    """Everything the batch path writes, with the target's own id made comparable."""
    repo = target.repo

    def change(c: Change) -> tuple[Any, ...]:
        base = (c.base.hlc, _anon(target, c.base.origin)) if c.base else None
        return (c.version.hlc, _anon(target, c.version.origin), c.deleted, dict(c.body), base)

    # Each target's own name card differs (its id and default name): left out.
    records = {k: change(c) for k, c in repo.snapshot().items() if k != (REPO, repo.repo_id)}
    engine = sa.create_engine(target.url)
    try:
        with engine.connect() as conn:
            log = [
                (r.type, _anon(target, r.id), r.hlc, _anon(target, r.origin), r.via)
                for r in conn.execute(sa.select(changes_table).order_by(changes_table.c.seq))
            ]
            graves = sorted(
                (r.type, r.id, r.hlc, r.origin) for r in conn.execute(sa.select(graveyard_table))
            )
    finally:
        engine.dispose()
    conflicts = sorted(
        (
            c["type"],
            c["id"],
            c["winner_hlc"],
            _anon(target, c["winner_origin"]),
            c["loser_hlc"],
            _anon(target, c["loser_origin"]),
        )
        for c in repo.conflicts(1000)
    )
    pingbacks = sorted((c.key, c.version.hlc) for c in repo.pingbacks("src"))
    return {
        "records": records,
        "log": log,
        "graves": graves,
        "conflicts": conflicts,
        "pingbacks": pingbacks,
    }


def _apply_all(
    targets: list[Target], changes: Sequence[Change], start: int, end: int
) -> list[tuple[Any, ...]]:
    results = [
        _result(
            t,
            t.repo.apply_changes(
                source_id="src",
                source_epoch="e1",
                stream=FROM_CHILD,
                from_cursor=start,
                to_cursor=end,
                changes=changes,
            ),
        )
        for t in targets
    ]
    assert results[0] == results[1], "SQLite and PostgreSQL judged the batch differently"
    return results


def test_sqlite_and_postgresql_apply_the_same_batches_to_the_same_state(
    source: SqlLedger, targets: list[Target], clock: Clock
) -> None:
    sqlite, postgres = targets
    src = source.repository
    # 1. New records: notes and runs (with times) above the COPY threshold, one hold.
    for i in range(NOTES):
        src.write(NOTE, f"n{i:03d}", note(i, "first"))
    for i in range(RUNS):
        started = clock.now() + timedelta(seconds=i)
        source.record_start(
            RunRecord(
                run_id=f"r{i:03d}",
                bean=f"J{i % 7}",
                operation="run",
                trigger=Trigger.MANUAL,
                actor="op",
                started_at=started,
            )
        )
    source.set_hold("J1", clock.now())
    first = src.get_changes(0, 5000)
    assert len([c for c in first.changes if c.type == NOTE]) >= COPY_MIN
    (result, _) = _apply_all(targets, first.changes, 0, first.next_cursor)
    assert result[0] == NOTES + RUNS + 2  # and the source's own name card
    assert _state(sqlite) == _state(postgres)

    # 2. The targets write some of the same notes: 20 at an older time than the source's next
    # writes (they lose, a conflict), 20 with a clock a minute ahead (they win: ping-backs).
    for i in range(20):
        for t in targets:
            t.repo.write(NOTE, f"n{i:03d}", note(i, "target, older"))
    clock.skew = 60_000
    for i in range(20, 40):
        for t in targets:
            t.repo.write(NOTE, f"n{i:03d}", note(i, "target, ahead"))
    clock.skew = 0
    clock.ms += 5_000
    for i in range(120):
        src.write(NOTE, f"n{i:03d}", note(i, "second"))
    for i in range(120, NOTES):
        src.write(NOTE, f"n{i:03d}", {}, deleted=True)
    src.write(JOB, "J1", {"body": json.dumps({"at": "02:00"})})  # refused: parent-only
    second = src.get_changes(first.next_cursor, 5000)
    (result, _) = _apply_all(targets, second.changes, first.next_cursor, second.next_cursor)
    applied, stale, rejected, _cursor, conflicts = result
    assert applied == 120 - 20 + (NOTES - 120)
    assert stale == [(NOTE, f"n{i:03d}") for i in range(20, 40)]
    assert [key for key, _ in rejected] == [(JOB, "J1")]
    assert conflicts == 40
    assert _state(sqlite) == _state(postgres)

    # 3. The same page again (a lost reply): a retry changes nothing.
    (again, _) = _apply_all(targets, second.changes, first.next_cursor, second.next_cursor)
    assert again[0] == 0 and again[3] == second.next_cursor
    assert _state(sqlite) == _state(postgres)

    # 4. The tombstones are collected; then a source restored from a backup sends its old
    # writes of half of them (they stay deleted), newer writes of the others (they win), and
    # new notes, with one key twice in the batch (the later version counts).
    clock.ms += 1_000
    for t in targets:
        assert t.repo.collect_tombstones(older_than=timedelta(0), below_seq=10**9) == 30
    old = {c.id: c for c in first.changes if c.type == NOTE}
    late = (clock.ms << 16) + 1
    third = [old[f"n{i:03d}"] for i in range(120, 135)]
    third += [
        Change(type=NOTE, id=f"n{i:03d}", version=Version(late + i, src.repo_id), body=note(i, "3"))
        for i in range(135, NOTES)
    ]
    third += [
        Change(type=NOTE, id=f"m{i:03d}", version=Version(late + i, src.repo_id), body=note(i, "m"))
        for i in range(70)
    ]
    third.append(
        Change(type=NOTE, id="m000", version=Version(late + 999, src.repo_id), body=note(0, "m!"))
    )
    end = second.next_cursor + len(third)
    (result, _) = _apply_all(targets, third, second.next_cursor, end)
    assert result[0] == (NOTES - 135) + 70
    assert result[1] == [(NOTE, f"n{i:03d}") for i in range(120, 135)]
    state = _state(postgres)
    assert state == _state(sqlite)
    assert all(state["records"][(NOTE, f"n{i:03d}")][2] for i in range(120, 135))
    assert not any(state["records"][(NOTE, f"n{i:03d}")][2] for i in range(135, NOTES))
    assert json.loads(state["records"][(NOTE, "m000")][3]["body"])["text"] == "m!"
    assert [r[1] for r in state["log"]].count("m000") == 1
    assert (RUN, "r079") in state["records"]


def test_a_driver_error_during_copy_is_a_ledger_error_naming_it() -> None:
    """The ledger turns SQLAlchemy's errors into an operator's one-line reason; a failed COPY
    arrives the same way, not as a bare driver exception (which would answer INTERNAL)."""
    with fresh_postgres_database() as url:
        ledger = SqlLedger(url)
        try:
            codec = CODECS[NOTE]
            rows = [
                codec.row(Change(type=NOTE, id=f"n{i}", version=Version(i + 1, "o")))
                for i in range(COPY_MIN)
            ]
            rows[-1] = ("x" * 65, *rows[-1][1:])  # longer than the column: the server refuses it
            with pytest.raises(LedgerUnavailableError) as caught, ledger.repository._tx() as conn:
                Bulk(conn).upsert(codec, rows, new=True)
            assert isinstance(caught.value.__cause__, sa.exc.DataError)
            assert "too long" in caught.value.problem
            assert ledger.repository.records_of(NOTE) == []  # nothing of the batch stayed
        finally:
            ledger.close()


def test_postgresql_statistics_follow_a_table_that_grew_past_what_was_analyzed() -> None:
    """A seed grows a child's tables faster than autovacuum looks at them; the batch path
    analyzes a table once it changed by more than it held when last analyzed."""
    with fresh_postgres_database() as url:
        ledger = SqlLedger(url)
        src = "01a236e7-0000-7000-8000-000000000001"
        changes = [
            Change(type=NOTE, id=f"n{i:06d}", version=Version(i + 1, src), body=note(i, "x"))
            for i in range(ANALYZE_MIN + 2_000)
        ]
        ledger.repository.apply_changes(
            source_id="src",
            source_epoch="e1",
            stream=FROM_CHILD,
            from_cursor=0,
            to_cursor=len(changes),
            changes=changes,
        )
        ledger.close()  # its server process ends and hands in its table statistics
        engine = sa.create_engine(url)
        stats = sa.text(
            "SELECT s.n_mod_since_analyze, s.last_analyze, c.reltuples"
            " FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid"
            " WHERE s.relname = 'syncd_notes'"
        )
        try:
            deadline = time.monotonic() + BOUND
            with engine.connect() as conn:
                while conn.execute(stats).one()[0] < len(changes):
                    assert time.monotonic() < deadline, "the server never counted the inserts"
                    conn.rollback()  # a new snapshot of the statistics
            with engine.begin() as conn:
                Bulk(conn)._keep_statistics(notes_table)
            with engine.connect() as conn:
                _, analyzed, tuples = conn.execute(stats).one()
            assert analyzed is not None and tuples >= len(changes) * 0.9
        finally:
            engine.dispose()


def test_a_row_deleted_behind_its_change_log_entry_is_written_again_on_both_backends(
    source: SqlLedger, targets: list[Target]
) -> None:
    """Damage behind the log: rows deleted by hand while their change-log entries stay. The
    keys applied again (a re-sent page; an anti-entropy repair, out of band at the stored
    cursor) are new rows to the batch path, and each key's log entry is replaced, not inserted
    twice (its (type, id) is unique)."""
    src = source.repository
    ids = [f"n{i:03d}" for i in range(COPY_MIN + 6)]
    for i, id_ in enumerate(ids):
        src.write(NOTE, id_, note(i, "first"))
    page = src.get_changes(0, 5000)
    _apply_all(targets, page.changes, 0, page.next_cursor)
    sent = {c.id: c for c in page.changes if c.type == NOTE}
    # A COPY-sized batch (PostgreSQL), a single record (executemany), a repair of two.
    resent, single, repaired = ids[:COPY_MIN], ids[COPY_MIN], ids[COPY_MIN + 1 : COPY_MIN + 3]
    for target in targets:
        engine = sa.create_engine(target.url)
        try:
            with engine.begin() as conn:
                gone = notes_table.c.note_id.in_([*resent, single, *repaired])
                conn.execute(notes_table.delete().where(gone))
        finally:
            engine.dispose()
        assert len(target.repo.records_of(NOTE)) == 3
    end = page.next_cursor
    for batch in ([sent[k] for k in resent], [sent[single]]):
        (result, _) = _apply_all(targets, batch, end, end + len(batch))
        assert result[:3] == (len(batch), [], [])
        end += len(batch)
    repair = [replace(sent[k], out_of_band=True) for k in repaired]
    (result, _) = _apply_all(targets, repair, end, end)  # moves no cursor
    assert result[:3] == (2, [], []) and result[3] == end
    state = _state(targets[0])
    assert state == _state(targets[1])
    assert sorted(k[1] for k in state["records"] if k[0] == NOTE) == ids
    assert sorted(r[1] for r in state["log"] if r[0] == NOTE) == ids  # one entry per key


def test_a_new_key_written_meanwhile_by_another_writer_is_settled_by_the_upsert() -> None:
    """PostgreSQL COPYs the rows of keys judged new straight into the table. If one of them
    has a row after all (another writer's, after the versions were read), nothing of the COPY
    stays: the batch takes the conditional upsert, under which the newer version wins per key
    and the rest of the batch is written."""
    with fresh_postgres_database() as url:
        ledger = SqlLedger(url)
        try:
            codec = CODECS[NOTE]
            changes = [
                Change(type=NOTE, id=f"n{i:03d}", version=Version(100 + i, "o"), body=note(i, "b"))
                for i in range(COPY_MIN + 2)
            ]
            meanwhile = [  # one older than the batch's version of its key, one newer
                Change(type=NOTE, id="n000", version=Version(50, "w"), body=note(0, "older")),
                Change(type=NOTE, id="n001", version=Version(500, "w"), body=note(1, "newer")),
            ]
            with ledger.repository._tx() as conn:
                Bulk(conn).upsert(codec, [codec.row(c) for c in meanwhile], new=True)
            with ledger.repository._tx() as conn:
                Bulk(conn).upsert(codec, [codec.row(c) for c in changes], new=True)
            stored = {c.id: c for c in ledger.repository.records_of(NOTE)}
            assert len(stored) == len(changes)
            assert stored["n000"].version == Version(100, "o")  # the batch's newer write
            assert stored["n001"].version == Version(500, "w")  # the other writer's, newer
            assert json.loads(stored["n001"].body["body"])["text"] == "newer"
            assert all(stored[c.id].version == c.version for c in changes[2:])
        finally:
            ledger.close()
