"""The run ledger contract, run against every backend: memory, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, MutableMapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.enums import RunOutcome, RunState, Trigger
from syncd.errors import LedgerUnavailableError
from syncd.ledger.model import MemoryLedger, RunLedger, RunRecord
from syncd.ledger.recorder import LedgerHealth, LedgerRecorder
from syncd.ledger.sql import LedgerError, SqlLedger
from tests.services import fresh_postgres_database

T0 = datetime(2026, 11, 22, 0, 5, tzinfo=UTC)


def _run(run_id: str, bean: str = "A", at: datetime = T0, **kw: object) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        bean=bean,
        operation="run",
        arguments={"date": "ANY", "n": 3},
        trigger=Trigger.SCHEDULE,
        actor="scheduler",
        slot_time=at,
        started_at=at,
        **kw,  # type: ignore[arg-type]
    )


def _finish(record: RunRecord, outcome: RunOutcome, after: float = 60) -> RunRecord:
    return replace(
        record,
        state=RunState.FINISHED,
        outcome=outcome,
        ended_at=record.started_at + timedelta(seconds=after),
        rows_read=10,
    )


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunLedger]:
    if request.param == "memory":
        yield MemoryLedger()
        return
    if request.param == "sqlite":
        sql = SqlLedger(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
        yield sql
        sql.close()
        return
    with fresh_postgres_database() as url:
        sql = SqlLedger(url)
        yield sql
        sql.close()


class TestContract:
    def test_a_run_is_written_at_start_and_updated_at_end(self, ledger: RunLedger) -> None:
        """The row exists while running and carries the outcome afterwards."""
        start = _run("r1")
        ledger.record_start(start)
        got = ledger.get("r1")
        assert got is not None and got.state is RunState.RUNNING
        assert got.arguments == {"date": "ANY", "n": 3}
        assert got.started_at == T0 and got.started_at.tzinfo is not None
        end = _finish(start, RunOutcome.FAILED)
        ledger.record_end(replace(end, error_type="ValueError", error_message="boom"))
        got = ledger.get("r1")
        assert got is not None
        assert (got.outcome, got.error_type, got.rows_read) == (RunOutcome.FAILED, "ValueError", 10)
        assert got.ended_at == T0 + timedelta(seconds=60)

    def test_last_outcome_and_last_success_per_bean(self, ledger: RunLedger) -> None:
        """Last finished counts executed runs only; a skip does not hide a failure."""
        ok = _run("r1")
        ledger.record_start(ok)
        ledger.record_end(_finish(ok, RunOutcome.SUCCESS))
        bad = _run("r2", at=T0 + timedelta(days=1))
        ledger.record_start(bad)
        ledger.record_end(_finish(bad, RunOutcome.FAILED))
        ledger.record(
            _finish(_run("r3", at=T0 + timedelta(days=2)), RunOutcome.SKIPPED_ALREADY_RUNNING)
        )
        last = ledger.last_finished("A")
        success = ledger.last_success("A")
        assert last is not None and last.run_id == "r2"
        assert success is not None and success.run_id == "r1"
        assert ledger.last_finished("B") is None

    def test_history_is_newest_first_and_filtered(self, ledger: RunLedger) -> None:
        """History lists newest first, by bean, up to the limit."""
        for i in range(5):
            rec = _run(f"r{i}", bean="A" if i % 2 else "B", at=T0 + timedelta(minutes=i))
            ledger.record(_finish(rec, RunOutcome.SUCCESS))
        assert [r.run_id for r in ledger.history(limit=3)] == ["r4", "r3", "r2"]
        assert [r.run_id for r in ledger.history("A")] == ["r3", "r1"]

    def test_running_rows_become_interrupted(self, ledger: RunLedger) -> None:
        """Runs left running by a crash are finished as interrupted (persistent backends)."""
        ledger.record_start(_run("r1"))
        done = ledger.mark_interrupted(T0 + timedelta(hours=1))
        if isinstance(ledger, MemoryLedger):
            assert done == []
            return
        assert [r.run_id for r in done] == ["r1"]
        got = ledger.get("r1")
        assert got is not None
        assert (got.state, got.outcome) == (RunState.FINISHED, RunOutcome.INTERRUPTED)
        assert ledger.mark_interrupted(T0 + timedelta(hours=2)) == []

    def test_an_interrupted_run_keeps_its_outcome_against_a_late_end(
        self, ledger: RunLedger
    ) -> None:
        """Runs are facts: once recorded interrupted (a replica took over after the lease
        expired), the old holder's late `cancelled` end changes nothing; a note added to the
        interrupted record (its survivors, say) still is written."""
        start = _run("r1")
        ledger.record_start(start)
        interrupted = replace(
            _finish(start, RunOutcome.INTERRUPTED), error_message="lost its lease"
        )
        ledger.record_end(interrupted)
        ledger.record_end(replace(_finish(start, RunOutcome.CANCELLED), error_message="late"))
        got = ledger.get("r1")
        assert got is not None
        assert (got.outcome, got.error_message) == (RunOutcome.INTERRUPTED, "lost its lease")
        ledger.record_end(replace(interrupted, error_message="lost its lease; ended 2"))
        got = ledger.get("r1")
        assert got is not None and got.error_message == "lost its lease; ended 2"

    def test_retention_by_age_and_count(self, ledger: RunLedger) -> None:
        """Prune drops runs older than keep_days and beyond keep_per_bean, newest kept."""
        for i in range(6):
            ledger.record(_finish(_run(f"r{i}", at=T0 + timedelta(days=i)), RunOutcome.SUCCESS))
        removed = ledger.prune(T0 + timedelta(days=30), keep_days=28, keep_per_bean=3)
        assert removed == 3
        assert [r.run_id for r in ledger.history()] == ["r5", "r4", "r3"]

    def test_holds_and_meta_persist(self, ledger: RunLedger) -> None:
        """Pauses and scheduler bookkeeping are kept, the first pause time wins."""
        ledger.set_hold("A", T0)
        ledger.set_hold("A", T0 + timedelta(hours=1))
        ledger.set_hold("*", T0)
        assert ledger.holds() == {"A": T0, "*": T0}
        ledger.clear_hold("A")
        assert ledger.holds() == {"*": T0}
        ledger.set_meta("k", "1")
        ledger.set_meta("k", "2")
        assert ledger.get_meta("k") == "2"
        assert ledger.get_meta("absent") is None

    def test_runs_since_covers_slot_times(self, ledger: RunLedger) -> None:
        """runs_since finds runs whose slot or start is at or after the instant."""
        ledger.record(_finish(_run("old", at=T0 - timedelta(days=1)), RunOutcome.SUCCESS))
        ledger.record(_finish(_run("new", at=T0), RunOutcome.SUCCESS))
        assert [r.run_id for r in ledger.runs_since(T0)] == ["new"]

    def test_writes_in_a_batch_are_all_kept_when_it_ends(self, ledger: RunLedger) -> None:
        """A batch (the writer's group): a start, its end, a hold and a mark, then read back;
        the end's outcome is the bean's latest once the batch is over."""
        start = _run("b1")
        with ledger.batch():
            ledger.record_start(start)
            ledger.record_end(_finish(start, RunOutcome.SUCCESS))
            ledger.set_hold("A", T0)
            ledger.set_meta("k", "v")
        stored = ledger.get("b1")
        assert stored is not None and stored.outcome is RunOutcome.SUCCESS
        assert (ledger.holds(), ledger.get_meta("k")) == ({"A": T0}, "v")
        last = ledger.last_success("A")
        assert last is not None and last.run_id == "b1"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_sql_batch_that_raises_keeps_none_of_its_writes(backend: str, tmp_path: Path) -> None:
    """Its one transaction rolls back: no row, no change-log entry, no cached outcome."""

    class Refused(Exception):
        pass

    def check(sql: SqlLedger) -> None:
        logged = sql.repository.info().stable_watermark
        start = _run("gone")

        def doomed() -> None:
            with sql.batch():
                sql.record(_finish(start, RunOutcome.SUCCESS))
                sql.set_meta("k", "v")
                raise Refused

        with pytest.raises(Refused):
            doomed()
        assert (sql.get("gone"), sql.get_meta("k"), sql.last_finished("A")) == (None, None, None)
        assert sql.repository.info().stable_watermark == logged
        sql.record(_finish(start, RunOutcome.SUCCESS))  # the ledger writes on afterwards
        assert sql.repository.info().stable_watermark == logged + 1

    if backend == "sqlite":
        sql = SqlLedger(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
        check(sql)
        sql.close()
        return
    with fresh_postgres_database() as url:
        sql = SqlLedger(url)
        check(sql)
        sql.close()


def test_sqlite_ledger_survives_a_reopen(tmp_path: Path) -> None:
    """What one ledger object wrote, the next one (a restarted daemon) reads, caches too."""
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    first = SqlLedger(url)
    rec = _run("r1")
    first.record_start(rec)
    first.record_end(_finish(rec, RunOutcome.SUCCESS))
    first.close()
    second = SqlLedger(url)
    last = second.last_success("A")
    assert last is not None and last.run_id == "r1"
    second.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    """A ledger written by a newer syncd is refused with both versions named."""
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    SqlLedger(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE syncd_meta SET value = '99' WHERE key = 'schema_version'"))
    engine.dispose()
    with pytest.raises(LedgerError, match="schema version 99; this syncd knows up to 2"):
        SqlLedger(url)


def test_an_unreachable_ledger_is_a_clear_error(tmp_path: Path) -> None:
    """A ledger URL that cannot be opened names itself, without the password."""
    with pytest.raises(
        LedgerUnavailableError, match=r"cannot be opened: database unreachable \(.*\*\*\*"
    ):
        SqlLedger("postgresql+psycopg://u:secret@127.0.0.1:1/x")


def test_a_daemon_keeps_its_runs_in_postgresql(short_tmp: Path) -> None:
    """With ledger.url on PostgreSQL, runs are written there and survive a restart."""
    import asyncio

    from syncd_api.v1 import management_pb2 as pb
    from tests.harness import running_daemon
    from tests.packs.sample import QUICK

    with fresh_postgres_database() as url:

        async def main() -> str:
            async with running_daemon(short_tmp / "state", [QUICK], ledger_url=url) as rt:
                reply = await rt.stub.Invoke(pb.InvokeRequest(bean="QuickJob", operation="run"))
                async for _ in rt.stub.WatchRun(pb.WatchRunRequest(run_id=reply.run.run_id)):
                    pass
                return reply.run.run_id

        run_id = asyncio.run(main())

        async def again() -> None:
            async with running_daemon(short_tmp / "state2", [QUICK], ledger_url=url) as rt:
                info = await rt.stub.GetRun(pb.GetRunRequest(run_id=run_id))
                assert info.outcome == pb.RUN_OUTCOME_SUCCESS
                status = await rt.stub.GetStatus(pb.GetStatusRequest())
                assert status.beans[0].HasField("last_success_at")

        asyncio.run(again())
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT outcome FROM syncd_runs")).scalars().all()
        engine.dispose()
        assert rows == ["success"]


# ---- the one writer: the same contract through LedgerRecorder, and what it does with faults --


class FaultyLedger(MemoryLedger):
    """A real (memory) ledger with a switch that makes its writes fail as a full disk would,
    and a gate that holds `record_start` (to act while a start is being written)."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = ""
        self.start_gate: threading.Event | None = None
        self.start_entered = threading.Event()

    def _check(self) -> None:
        if self.failing:
            raise LedgerUnavailableError(self.failing)

    def record_start(self, record: RunRecord) -> None:
        self.start_entered.set()
        if self.start_gate is not None:
            assert self.start_gate.wait(10)
        self._check()
        super().record_start(record)

    def record_end(self, record: RunRecord) -> None:
        self._check()
        super().record_end(record)

    def record(self, record: RunRecord) -> None:
        self._check()
        super().record(record)

    def set_meta(self, key: str, value: str) -> None:
        self._check()
        super().set_meta(key, value)


def test_the_recorder_keeps_the_contract(ledger: RunLedger) -> None:
    """Starts, ends, outcomes, holds and reads through the one writer land in the ledger."""

    async def main() -> None:
        recorder = LedgerRecorder(ledger)
        start = _run("r1")
        await recorder.start(start)
        assert (await recorder.get("r1")) == ledger.get("r1")
        assert await recorder.end(_finish(start, RunOutcome.SUCCESS)) is True
        assert await recorder.record(
            _finish(_run("r2", at=T0 + timedelta(minutes=1)), RunOutcome.MISSED)
        )
        await recorder.set_hold("A", T0)
        recorder.note_meta("k", "v")
        async with asyncio.timeout(10):
            await recorder.settled()
        assert [r.run_id for r in await recorder.history("A")] == ["r2", "r1"]
        assert [r.run_id for r in ledger.history("A")] == ["r2", "r1"]
        assert (await recorder.holds(), await recorder.get_meta("k")) == ({"A": T0}, "v")
        last = recorder.last_success("A")
        assert last is not None and last.run_id == "r1"
        assert recorder.health().healthy
        await recorder.close()

    asyncio.run(main())


def test_a_failed_start_raises_and_marks_the_ledger_unhealthy(tmp_path: Path) -> None:
    """A start that cannot be written is the caller's error; health names the problem until
    a write (here the recorder's own probe) succeeds."""

    async def main() -> None:
        faulty = FaultyLedger()
        recorder = LedgerRecorder(faulty, retry_initial=0.01)
        faulty.failing = "disk full"
        with pytest.raises(LedgerUnavailableError, match="cannot be written: disk full"):
            await recorder.start(_run("r1"))
        assert recorder.health() == LedgerHealth("the run ledger cannot be written: disk full", 0)
        assert await recorder.get("r1") is None
        faulty.failing = ""
        async with asyncio.timeout(10):
            await recorder.settled()  # the probe found it writable again
        assert recorder.health().healthy
        await recorder.close()

    asyncio.run(main())


@settings(max_examples=25, deadline=None)
@given(failures=st.lists(st.booleans(), min_size=1, max_size=12))
def test_no_end_is_lost_whatever_fails(failures: list[bool]) -> None:
    """Property: ends written while the ledger fails and recovers in any pattern are all in
    the ledger once it is healthy; meanwhile readers see every one of them."""

    async def main() -> None:
        faulty = FaultyLedger()
        recorder = LedgerRecorder(faulty, retry_initial=0.01, retry_max=0.05)
        ends = []
        for i, fail in enumerate(failures):
            start = _run(f"r{i}", at=T0 + timedelta(minutes=i))
            await recorder.start(start)
            faulty.failing = "disk full" if fail else ""
            end = _finish(start, RunOutcome.SUCCESS if i % 2 else RunOutcome.FAILED)
            assert await recorder.end(end) is not fail
            ends.append(end)
            faulty.failing = ""
        assert {r.run_id: r for r in await recorder.history(limit=100)} == {
            e.run_id: e for e in ends
        }
        async with asyncio.timeout(10):
            await recorder.settled()
        assert {r.run_id: r for r in faulty.history(limit=100)} == {e.run_id: e for e in ends}
        last = recorder.last_finished("A")
        assert last is not None and last.run_id == ends[-1].run_id
        await recorder.close()

    asyncio.run(main())


def test_close_logs_what_could_not_be_written() -> None:
    """At shutdown a still-failing ledger gets a bounded last chance; each record it did not
    take is logged whole (an operator can re-enter it), never dropped silently."""

    async def main() -> list[MutableMapping[str, Any]]:
        faulty = FaultyLedger()
        recorder = LedgerRecorder(faulty, retry_initial=0.01)
        start = _run("r1")
        await recorder.start(start)
        faulty.failing = "disk full"
        assert await recorder.end(_finish(start, RunOutcome.SUCCESS)) is False
        with structlog.testing.capture_logs() as logs:
            await recorder.close(timeout=0.05)
        return logs

    lost = [e for e in asyncio.run(main()) if e["event"] == "ledger.record_lost"]
    assert len(lost) == 1
    record = lost[0]["record"]
    assert isinstance(record, dict) and (record["run_id"], record["outcome"]) == ("r1", "success")


def test_cancel_of_a_run_whose_start_failed_leaves_the_bean_idle() -> None:
    """Cancel while the start is being written; the write fails: the start is refused, the
    bean is idle (not cancelling), and nothing is left claiming it."""
    from syncd.enums import BeanState
    from tests.packs.sample import QUICK
    from tests.run_service import build_service

    async def main() -> None:
        faulty = FaultyLedger()
        faulty.start_gate = threading.Event()
        built = build_service(faulty, [QUICK])
        recorder, coordinator, jobs = built.recorder, built.service.coordinator, built.jobs
        starting = asyncio.ensure_future(
            coordinator.start(QUICK, {}, trigger=Trigger.MANUAL, actor="t")
        )
        assert await asyncio.to_thread(faulty.start_entered.wait, 10)
        cancelling = coordinator.cancel(QUICK.name)
        assert cancelling is not None
        assert jobs.status(QUICK.name).state is BeanState.CANCELLING
        faulty.failing = "disk full"
        faulty.start_gate.set()
        with pytest.raises(LedgerUnavailableError):
            await starting
        assert coordinator.active(QUICK.name) is None
        assert jobs.status(QUICK.name).state is BeanState.IDLE
        assert cancelling.finished.is_set()  # a drain or a chain waiting on it is let go
        assert coordinator.cancel(QUICK.name) is None
        faulty.failing = ""
        run = await coordinator.start(QUICK, {}, trigger=Trigger.MANUAL, actor="t")
        async with asyncio.timeout(10):
            await run.finished.wait()
        assert run.record.outcome is RunOutcome.SUCCESS
        await recorder.close()

    asyncio.run(main())
