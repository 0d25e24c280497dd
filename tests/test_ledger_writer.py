"""The ledger's one writer: writes queued together commit as one group, a bad write fails
alone while the others land, order is kept, a write is done only once its group committed,
and a storage fault in a group reaches health as it does for a write alone."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from syncd.enums import RunOutcome, RunState, Trigger
from syncd.errors import LedgerUnavailableError
from syncd.ledger._writer import GroupWriter
from syncd.ledger.model import RunRecord
from syncd.ledger.recorder import LedgerHealth, LedgerRecorder
from syncd.ledger.sql import SqlLedger
from tests.services import fresh_postgres_database
from tests.waiting import BOUND, set_within

T0 = datetime(2026, 11, 22, 0, 5, tzinfo=UTC)


def _run(run_id: str, minutes: int = 0) -> RunRecord:
    at = T0 + timedelta(minutes=minutes)
    return RunRecord(
        run_id=run_id,
        bean="A",
        operation="run",
        trigger=Trigger.MANUAL,
        actor="t",
        started_at=at,
    )


def _ended(record: RunRecord) -> RunRecord:
    return replace(
        record,
        state=RunState.FINISHED,
        outcome=RunOutcome.SUCCESS,
        ended_at=record.started_at + timedelta(seconds=5),
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlLedger]:
    if request.param == "sqlite":
        ledger = SqlLedger(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
        yield ledger
        ledger.close()
        return
    with fresh_postgres_database() as url:
        ledger = SqlLedger(url)
        yield ledger
        ledger.close()


class Groups:
    """A ledger's batches, watched: which named writes ran in which group, and a hold on the
    first commit (to queue writes while it is under way)."""

    def __init__(self, ledger: SqlLedger) -> None:
        self.ledger = ledger
        self.groups: list[list[str]] = []
        self.committed = 0
        self._open = False
        self.hold_first_commit: threading.Event | None = None
        self.committing = threading.Event()

    @contextmanager
    def batch(self) -> Iterator[None]:
        self.groups.append([])
        with self.ledger.batch():
            self._open = True
            try:
                yield
            finally:
                self._open = False
            if self.hold_first_commit is not None and self.committed == 0:
                self.committing.set()
                set_within(self.hold_first_commit, "the test to let the commit go")
        self.committed += 1

    def named(self, name: str, fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
        def write() -> Any:
            result = fn(*args)
            if self._open:
                self.groups[-1].append(name)
            return result

        return write


def _held(writer: GroupWriter) -> threading.Event:
    """Hold the writer (a write of its own) until the event is set: what is queued meanwhile
    forms the next group."""
    gate = threading.Event()
    writer.submit(set_within, gate, "the test to release the writer", alone=True)
    return gate


def test_a_group_with_one_bad_write_lands_the_others(sql_ledger: SqlLedger) -> None:
    """Three starts queued together, the middle one a duplicate key: the group fails, is
    written again one at a time, and only the bad write fails."""
    watched = Groups(sql_ledger)
    writer = GroupWriter(watched.batch, name="test-ledger-writer")
    gate = _held(writer)
    first = writer.submit(sql_ledger.record_start, _run("r1"))
    bad = writer.submit(sql_ledger.record_start, _run("r1"))
    third = writer.submit(sql_ledger.record_start, _run("r3"))
    gate.set()
    assert first.result(BOUND) is None and third.result(BOUND) is None
    with pytest.raises(LedgerUnavailableError, match="cannot be written"):
        bad.result(BOUND)
    assert (len(watched.groups), watched.committed) == (1, 0)  # tried as one group, undone
    assert {r.run_id for r in sql_ledger.history()} == {"r1", "r3"}
    writer.shutdown()
    writer.join(BOUND)


@pytest.mark.parametrize("failing", [False, True], ids=["committed", "written-again"])
def test_order_is_kept_in_a_group_and_when_it_is_written_again(
    sql_ledger: SqlLedger, failing: bool
) -> None:
    """Writes land in the order queued, whether their group commits or fails and is written
    again one at a time; their futures resolve in that order too."""
    watched = Groups(sql_ledger)
    writer = GroupWriter(watched.batch, name="test-ledger-writer")
    run = _run("ordered")
    gate = _held(writer)
    queued: list[Future[Any]] = [
        writer.submit(sql_ledger.record_start, run),
        writer.submit(sql_ledger.set_meta, "k", "first"),
        writer.submit(sql_ledger.set_hold, run.bean, T0),
    ]
    if failing:
        queued.append(writer.submit(sql_ledger.record_start, run))  # its key is taken
    queued += [
        writer.submit(sql_ledger.record_end, _ended(run)),
        writer.submit(sql_ledger.set_meta, "k", "second"),
        writer.submit(sql_ledger.clear_hold, run.bean),
    ]
    resolved: list[int] = []

    def noting(n: int) -> Callable[[Future[Any]], None]:
        return lambda _future: resolved.append(n)

    for n, future in enumerate(queued):
        future.add_done_callback(noting(n))
    gate.set()
    for future in queued:
        future.exception(BOUND)
    writer.shutdown()
    writer.join(BOUND)
    assert resolved == list(range(len(queued)))
    assert watched.committed == (0 if failing else 1)
    stored = sql_ledger.get(run.run_id)
    assert stored is not None and stored.outcome is RunOutcome.SUCCESS
    assert sql_ledger.get_meta("k") == "second"
    assert sql_ledger.holds() == {}


def test_a_write_queued_during_a_commit_goes_into_the_next_group(sql_ledger: SqlLedger) -> None:
    """While a group commits, its writes are not done yet; writes queued meanwhile wait and
    form the next group."""
    watched = Groups(sql_ledger)
    watched.hold_first_commit = threading.Event()
    writer = GroupWriter(watched.batch, name="test-ledger-writer")
    gate = _held(writer)
    one = [
        writer.submit(watched.named("a", sql_ledger.record_start, _run("a"))),
        writer.submit(watched.named("b", sql_ledger.set_meta, "b", "1")),
    ]
    gate.set()
    set_within(watched.committing, "the first group's commit")
    two = [
        writer.submit(watched.named("c", sql_ledger.record_end, _ended(_run("a")))),
        writer.submit(watched.named("d", sql_ledger.set_meta, "d", "1")),
    ]
    assert not any(f.done() for f in one + two), "a write was done before its group committed"
    watched.hold_first_commit.set()
    for future in one + two:
        assert future.result(BOUND) is None
    writer.shutdown()
    writer.join(BOUND)
    assert watched.groups == [["a", "b"], ["c", "d"]]
    assert watched.committed == 2
    stored = sql_ledger.get("a")
    assert stored is not None and stored.outcome is RunOutcome.SUCCESS


class CountingLedger(SqlLedger):
    """A SQL ledger that counts the groups its writer tried."""

    batches = 0

    def batch(self) -> Any:
        self.batches += 1
        return super().batch()


def test_a_fault_in_a_group_reaches_health_as_a_write_alone_does(tmp_path: Path) -> None:
    """The ledger locked by another writer: a group of ends fails at its first statement,
    each end is written again alone and fails the same way, and health says what a lone
    end's failure says; once the lock goes, every end is written."""
    path = tmp_path / "ledger.sqlite3"
    holder = sqlite3.connect(path, check_same_thread=False, isolation_level=None)

    async def main() -> None:
        ledger = CountingLedger(f"sqlite:///{path}", write_timeout=0.2)
        recorder = LedgerRecorder(ledger, retry_initial=BOUND * 10)
        runs = [_run(f"r{i}", minutes=i) for i in range(4)]
        for run in runs:
            await recorder.start(run)
        holder.execute("BEGIN EXCLUSIVE")
        assert await recorder.end(_ended(runs[0])) is False
        alone = recorder.health()
        assert alone == LedgerHealth(
            "the run ledger cannot be written: locked by another writer", 1
        )
        gate = threading.Event()
        holding = asyncio.ensure_future(recorder.call_writer(set_within, gate, "the release"))
        ends = [asyncio.ensure_future(recorder.end(_ended(run))) for run in runs[1:]]
        # Scheduled after the ends' first steps, which queue their writes: they form a group.
        asyncio.get_running_loop().call_soon(gate.set)
        async with asyncio.timeout(BOUND):
            assert await asyncio.gather(*ends) == [False, False, False]
            await holding
        assert recorder.health() == LedgerHealth(alone.problem, 4)
        assert ledger.batches == 1  # the three ends were tried as one group
        assert {r.run_id: r.state for r in await recorder.history()} == {
            r.run_id: RunState.FINISHED for r in runs
        }
        holder.execute("ROLLBACK")
        recorder.retry_now()
        async with asyncio.timeout(BOUND):
            await recorder.settled()
        assert recorder.health().healthy
        assert {r.run_id: r.outcome for r in ledger.history()} == {
            r.run_id: RunOutcome.SUCCESS for r in runs
        }
        await recorder.close()

    try:
        asyncio.run(main())
    finally:
        holder.close()
