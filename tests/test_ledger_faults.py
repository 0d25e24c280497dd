"""Storage faults on the run ledger, injected into a real daemon while a run is under way.

For every fault — read-only, immutable, locked, full, deleted and replaced SQLite files; a
killed connection and a stopped server for PostgreSQL — the same promises hold: the run under
way ends and its end is kept in memory until the ledger takes it (no lost record); a new run is
refused with UNAVAILABLE and a one-line reason, and leaves its bean idle (no phantom run);
GetStatus and /healthz report the ledger unhealthy while it is; once the fault is repaired the
kept records are written and runs start again.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import grpc
import pytest
import sqlalchemy as sa

from syncd.app.daemon import Daemon
from syncd.config import Config, DaemonConfig, HttpConfig, SchedulerConfig
from syncd.errors import LedgerUnavailableError
from syncd.ledger.sql import SqlLedger
from syncd_api.v1 import management_pb2 as pb
from syncd_api.v1 import management_pb2_grpc as pb_grpc
from tests.daemon_process import daemon_process, e2e_config
from tests.harness import BOUND, serving_daemon
from tests.packs.sample import QUICK, Gates, gated_job
from tests.private_postgres import PrivatePostgres, private_postgres
from tests.services import fresh_postgres_database
from tests.test_client_e2e import syncctl
from tests.web._support import call, console_session, console_url, csrf

WRITE_TIMEOUT = 1.0  # how long a write waits for a lock; short, so a locked test is quick

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@dataclass
class Rig:
    daemon: Daemon
    stub: pb_grpc.ManagementAsyncStub
    http: str
    gates: Gates


@asynccontextmanager
async def rig(state_dir: Path, ledger: SqlLedger) -> AsyncIterator[Rig]:
    config = Config(
        daemon=DaemonConfig(
            state_dir=state_dir, shutdown_grace=2.0, cancel_grace=1.0, execution="thread"
        ),
        scheduler=SchedulerConfig(catch_up=False),
        http=HttpConfig(address="127.0.0.1:0"),
    )
    gates = Gates()
    daemon = Daemon(config, [gated_job(gates), QUICK], ledger=ledger)
    async with serving_daemon(daemon):
        channel = grpc.aio.insecure_channel(daemon.listening.addresses[0])
        try:
            yield Rig(daemon, pb_grpc.ManagementStub(channel), daemon.listening.http, gates)
        finally:
            gates.release.set()
            await channel.close(grace=None)


async def _health(rig: Rig) -> tuple[int, dict[str, str]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{rig.http}/healthz", timeout=aiohttp.ClientTimeout(total=BOUND)) as reply,
    ):
        return reply.status, await reply.json()


async def _to_end(stub: pb_grpc.ManagementAsyncStub, run_id: str) -> pb.RunInfo:
    last = None
    async with asyncio.timeout(BOUND):
        async for info in stub.WatchRun(pb.WatchRunRequest(run_id=run_id)):
            last = info
    assert last is not None and last.state == pb.RUN_STATE_FINISHED
    return last


def _beans(status: pb.GetStatusResponse) -> dict[str, pb.BeanStatus]:
    return {b.ref.name: b for b in status.beans}


async def _survives(
    rig: Rig,
    inject: Callable[[], object],
    repair: Callable[[], object],
    problem: str,
    stored_outcome: Callable[[str], str | None],
) -> None:
    """The promises every fault must keep (see the module docstring)."""
    stub = rig.stub
    first = await stub.Invoke(pb.InvokeRequest(bean="GatedJob", operation="run"))
    run_id = first.run.run_id
    assert await asyncio.to_thread(rig.gates.started.wait, BOUND)

    inject()
    rig.gates.release.set()
    ended = await _to_end(stub, run_id)  # the end cannot be written: the run ends anyway
    assert ended.outcome == pb.RUN_OUTCOME_SUCCESS
    status = await stub.GetStatus(pb.GetStatusRequest())
    assert problem in status.daemon.ledger_problem
    assert status.daemon.ledger_unwritten >= 1
    assert _beans(status)["GatedJob"].state == pb.BEAN_STATE_IDLE
    kept = await stub.GetRun(pb.GetRunRequest(run_id=run_id))  # served from memory
    assert kept.outcome == pb.RUN_OUTCOME_SUCCESS

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Invoke(pb.InvokeRequest(bean="QuickJob", operation="run"))
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    details = refused.value.details() or ""
    assert details.startswith("the run ledger cannot be written: ") and problem in details
    status = await stub.GetStatus(pb.GetStatusRequest())
    quick = _beans(status)["QuickJob"]
    assert (quick.state, quick.current_run.run_id) == (pb.BEAN_STATE_IDLE, "")
    assert not (await stub.Cancel(pb.CancelRequest(bean="QuickJob"))).cancelling
    code, body = await _health(rig)
    assert code == 503 and problem in body["ledger"]
    async with console_session(rig.daemon) as http:  # the web console is refused the same way
        token = {"X-CSRF-Token": await csrf(http, rig.daemon)}
        url = console_url(rig.daemon, "api/v1/jobs/QuickJob/run")
        code, body = await call(http, "POST", url, headers=token)
    assert code == 503 and problem in body["error"]

    repair()
    rig.daemon.recorder.retry_now()
    async with asyncio.timeout(BOUND):
        await rig.daemon.recorder.settled()
    status = await stub.GetStatus(pb.GetStatusRequest())
    assert (status.daemon.ledger_problem, status.daemon.ledger_unwritten) == ("", 0)
    assert await _health(rig) == (200, {"status": "serving", "ledger": "ok"})
    assert stored_outcome(run_id) == "success"  # written once the ledger took it
    again = await stub.Invoke(pb.InvokeRequest(bean="QuickJob", operation="run"))
    assert (await _to_end(stub, again.run.run_id)).outcome == pb.RUN_OUTCOME_SUCCESS


def _sqlite_outcome(path: Path) -> Callable[[str], str | None]:
    def outcome(run_id: str) -> str | None:
        with closing(sqlite3.connect(path)) as conn:
            row = conn.execute("SELECT outcome FROM syncd_runs WHERE run_id = ?", (run_id,))
            found = row.fetchone()
        return None if found is None else str(found[0])

    return outcome


def _sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def _backup(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite file (what an operator's backup would be)."""
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


@pytest.fixture
def tmpfs() -> Iterator[Path]:
    """A small tmpfs (1 MiB), unmounted afterwards: a disk that can fill up."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path = Path(tempfile.mkdtemp(prefix="sd-fs-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
        path.rmdir()


def _fill(directory: Path) -> Path:
    """Take every free block of the file system."""
    filler = directory / "filler"
    fs = os.statvfs(directory)
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.posix_fallocate(fd, 0, fs.f_bavail * fs.f_frsize)
    finally:
        os.close(fd)
    assert os.statvfs(directory).f_bavail == 0
    return filler


class TestSqlite:
    def test_a_file_made_read_only(self, short_tmp: Path) -> None:
        """chmod a-w while a run is under way: refused, kept, written after chmod u+w."""
        path = short_tmp / "ledger.sqlite3"

        async def main() -> None:
            async with rig(short_tmp / "state", SqlLedger(_sqlite_url(path))) as r:
                await _survives(
                    r,
                    inject=lambda: path.chmod(0o444),
                    repair=lambda: path.chmod(0o644),
                    problem="read-only or immutable",
                    stored_outcome=_sqlite_outcome(path),
                )

        asyncio.run(main())

    @needs_root
    def test_an_immutable_file(self, short_tmp: Path) -> None:
        """chattr +i (which binds root too): refused, kept, written after chattr -i."""
        path = short_tmp / "ledger.sqlite3"
        probe = short_tmp / "probe"
        probe.touch()
        if subprocess.run(["chattr", "+i", str(probe)], check=False).returncode != 0:
            pytest.skip("this file system has no immutable flag")
        subprocess.run(["chattr", "-i", str(probe)], check=True)

        async def main() -> None:
            async with rig(short_tmp / "state", SqlLedger(_sqlite_url(path))) as r:
                await _survives(
                    r,
                    inject=lambda: subprocess.run(["chattr", "+i", str(path)], check=True),
                    repair=lambda: subprocess.run(["chattr", "-i", str(path)], check=True),
                    problem="read-only or immutable",
                    stored_outcome=_sqlite_outcome(path),
                )

        try:
            asyncio.run(main())
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=False)

    def test_a_file_locked_by_another_writer(self, short_tmp: Path) -> None:
        """Another connection holds BEGIN EXCLUSIVE: writes give up after their timeout, and
        the control plane answers meanwhile."""
        path = short_tmp / "ledger.sqlite3"
        holder = sqlite3.connect(path, check_same_thread=False, isolation_level=None)

        async def main() -> None:
            ledger = SqlLedger(_sqlite_url(path), write_timeout=WRITE_TIMEOUT)
            async with rig(short_tmp / "state", ledger) as r:
                await _survives(
                    r,
                    inject=lambda: holder.execute("BEGIN EXCLUSIVE"),
                    repair=lambda: holder.execute("ROLLBACK"),
                    problem="locked by another writer",
                    stored_outcome=_sqlite_outcome(path),
                )
                holder.execute("BEGIN EXCLUSIVE")
                invoking = asyncio.ensure_future(
                    r.stub.Invoke(pb.InvokeRequest(bean="QuickJob", operation="run"))
                )
                status = await r.stub.GetStatus(pb.GetStatusRequest())
                assert not invoking.done(), "GetStatus waited for the locked ledger"
                assert status.daemon.version
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await invoking
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
                holder.execute("ROLLBACK")

        try:
            asyncio.run(main())
        finally:
            holder.close()

    def test_a_full_disk(self, short_tmp: Path, tmpfs: Path) -> None:
        """The ledger's file system fills up: refused ("disk full"), kept, written once space
        is freed."""
        path = tmpfs / "ledger.sqlite3"
        filler: list[Path] = []

        async def main() -> None:
            async with rig(short_tmp / "state", SqlLedger(_sqlite_url(path))) as r:
                await _survives(
                    r,
                    inject=lambda: filler.append(_fill(tmpfs)),
                    repair=lambda: filler[0].unlink(),
                    problem="disk full",
                    stored_outcome=_sqlite_outcome(path),
                )

        asyncio.run(main())

    def test_a_deleted_file(self, short_tmp: Path) -> None:
        """The file is deleted: nothing is written into the unlinked file; runs are refused
        until it is restored, and then the kept end is written into the restored file."""
        path = short_tmp / "ledger.sqlite3"
        backup = short_tmp / "backup.sqlite3"

        def delete() -> None:
            _backup(path, backup)
            path.unlink()

        def restore() -> None:
            shutil.copyfile(backup, short_tmp / "restoring")
            os.replace(short_tmp / "restoring", path)

        async def main() -> None:
            async with rig(short_tmp / "state", SqlLedger(_sqlite_url(path))) as r:
                await _survives(
                    r,
                    inject=delete,
                    repair=restore,
                    problem="was deleted",
                    stored_outcome=_sqlite_outcome(path),
                )

        asyncio.run(main())

    def test_a_replaced_file_is_reopened(self, short_tmp: Path) -> None:
        """The file is replaced by another ledger (a restore): the daemon reopens the path and
        writes there; the old file (still reachable by a hard link) gets nothing more, and its
        leftover journal is set aside instead of being replayed into the new file."""
        path = short_tmp / "ledger.sqlite3"
        old = short_tmp / "old.sqlite3"
        copy = short_tmp / "copy.sqlite3"

        async def main() -> None:
            async with rig(short_tmp / "state", SqlLedger(_sqlite_url(path))) as r:
                first = await r.stub.Invoke(pb.InvokeRequest(bean="GatedJob", operation="run"))
                assert await asyncio.to_thread(r.gates.started.wait, BOUND)
                _backup(path, copy)
                os.link(path, old)
                os.replace(copy, path)
                r.gates.release.set()
                run_id = first.run.run_id
                assert (await _to_end(r.stub, run_id)).outcome == pb.RUN_OUTCOME_SUCCESS
                status = await r.stub.GetStatus(pb.GetStatusRequest())
                assert (status.daemon.ledger_problem, status.daemon.ledger_unwritten) == ("", 0)
                assert _sqlite_outcome(path)(run_id) == "success"
                again = await r.stub.Invoke(pb.InvokeRequest(bean="QuickJob", operation="run"))
                await _to_end(r.stub, again.run.run_id)
                assert _sqlite_outcome(path)(again.run.run_id) == "success"
            (journal,) = short_tmp.glob("ledger.sqlite3-wal.replaced-*")
            shutil.copyfile(old, short_tmp / "rebuilt.sqlite3")
            shutil.copyfile(journal, short_tmp / "rebuilt.sqlite3-wal")
            with closing(sqlite3.connect(short_tmp / "rebuilt.sqlite3")) as conn:
                rows = conn.execute("SELECT run_id, state FROM syncd_runs").fetchall()
            assert rows == [(run_id, "running")]  # its start, and nothing after the switch
            with closing(sqlite3.connect(path)) as conn:
                ids = {r[0] for r in conn.execute("SELECT run_id FROM syncd_runs")}
            assert ids == {run_id, again.run.run_id}

        asyncio.run(main())

    def test_a_read_only_file_system_at_start_is_one_clear_error(self, tmpfs: Path) -> None:
        """A ledger on a read-only mount is refused when the daemon opens it, in one line."""
        path = tmpfs / "ledger.sqlite3"
        SqlLedger(_sqlite_url(path)).close()
        subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
        with pytest.raises(LedgerUnavailableError) as refused:
            SqlLedger(_sqlite_url(path))
        assert str(refused.value) == (
            f"the run ledger cannot be opened: its file {path} is read-only or immutable"
        )


def _pg_outcome(url: str) -> Callable[[str], str | None]:
    def outcome(run_id: str) -> str | None:
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                found = conn.execute(
                    sa.text("SELECT outcome FROM syncd_runs WHERE run_id = :r"), {"r": run_id}
                ).scalar()
        finally:
            engine.dispose()
        return None if found is None else str(found)

    return outcome


class TestPostgresql:
    def test_a_killed_connection_loses_nothing(self, short_tmp: Path) -> None:
        """pg_terminate_backend on every ledger connection mid-run: the ledger reconnects, the
        end is written, and runs go on."""
        with fresh_postgres_database() as url:
            database = sa.make_url(url).database

            def kill_connections() -> int:
                engine = sa.create_engine(url)
                try:
                    with engine.connect() as conn:
                        return len(
                            conn.execute(
                                sa.text(
                                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                    " WHERE datname = :db AND pid <> pg_backend_pid()"
                                ),
                                {"db": database},
                            ).all()
                        )
                finally:
                    engine.dispose()

            async def main() -> None:
                async with rig(short_tmp / "state", SqlLedger(url)) as r:
                    first = await r.stub.Invoke(pb.InvokeRequest(bean="GatedJob", operation="run"))
                    assert await asyncio.to_thread(r.gates.started.wait, BOUND)
                    assert kill_connections() >= 1
                    r.gates.release.set()
                    run_id = first.run.run_id
                    assert (await _to_end(r.stub, run_id)).outcome == pb.RUN_OUTCOME_SUCCESS
                    async with asyncio.timeout(BOUND):
                        await r.daemon.recorder.settled()
                    assert _pg_outcome(url)(run_id) == "success"
                    kill_connections()
                    again = await r.stub.Invoke(pb.InvokeRequest(bean="QuickJob", operation="run"))
                    await _to_end(r.stub, again.run.run_id)
                    async with asyncio.timeout(BOUND):
                        await r.daemon.recorder.settled()
                    assert _pg_outcome(url)(again.run.run_id) == "success"

            asyncio.run(main())

    def test_a_server_restarted_mid_run(self, short_tmp: Path, postgres: PrivatePostgres) -> None:
        """The server stops while a run is under way: its end is kept, new runs are refused
        ("database unreachable"); once the server is back the end is written."""

        async def main() -> None:
            ledger = SqlLedger(postgres.url, write_timeout=WRITE_TIMEOUT)
            async with rig(short_tmp / "state", ledger) as r:
                await _survives(
                    r,
                    inject=postgres.stop,
                    repair=postgres.start,
                    problem="database unreachable",
                    stored_outcome=_pg_outcome(postgres.url),
                )

        asyncio.run(main())


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    """A private PostgreSQL server this test may stop and start (never the shared one)."""
    with private_postgres() as server:
        yield server


# ---- end to end: the daemon process and syncctl ---------------------------------------------


def test_syncctl_status_reports_an_unhealthy_ledger(short_tmp: Path) -> None:
    """A ledger made read-only under a running daemon: `syncctl run` is refused (exit 6, the
    reason on stderr), `syncctl status` prints its table and exits 8 naming the ledger's
    problem; once writable again the daemon recovers on its own and status exits 0."""
    state = short_tmp / "state"
    with daemon_process(state, e2e_config(short_tmp)) as process:
        ledger = state / "ledger.sqlite3"
        ledger.chmod(0o444)
        refused = syncctl(state, "run", "QuickJob", "run")
        assert refused.returncode == 6
        assert "the run ledger cannot be written: its file" in refused.stderr
        check = syncctl(state, "status")
        assert check.returncode == 8
        assert {line.split("\t")[1] for line in check.stdout.splitlines()} == {"idle"}
        assert "ledger unhealthy: the run ledger cannot be written" in check.stderr
        as_json = syncctl(state, "status", "--json")
        assert as_json.returncode == 8
        daemon = json.loads(as_json.stdout)["daemon"]
        assert daemon["ledger_problem"].startswith("the run ledger cannot be written: its file")
        ledger.chmod(0o644)
        process.wait_for_event("ledger.recovered")
        assert syncctl(state, "status").returncode == 0
        ran = syncctl(state, "run", "QuickJob", "run", "--wait")
        assert ran.returncode == 0, ran.stderr
        assert process.stop() == 0


def test_a_read_only_ledger_at_start_is_one_line(short_tmp: Path) -> None:
    """`syncd serve` on a read-only ledger: one line naming the file, no traceback."""
    state = short_tmp / "state"
    state.mkdir(mode=0o700)
    SqlLedger(_sqlite_url(state / "ledger.sqlite3")).close()
    (state / "ledger.sqlite3").chmod(0o444)
    with daemon_process(state, e2e_config(short_tmp), wait_ready=False) as process:
        assert process.proc.wait(BOUND) != 0
        err = process.stderr_text()
    assert "Traceback" not in err
    problem = f"the run ledger cannot be opened: its file {state / 'ledger.sqlite3'} is read-only"
    assert [line for line in err.splitlines() if problem in line], err
