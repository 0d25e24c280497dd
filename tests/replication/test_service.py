"""SynchronizeJobData between real daemons in this process, over the Replication service on
their control sockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from syncd.app.replication import (
    EXPORT_BEAN,
    EXPORT_OPERATION,
    IMPORT_BEAN,
    IMPORT_OPERATION,
    SYNC_BEAN,
    SYNC_OPERATION,
    replication_pack,
)
from syncd.config import Config, DaemonConfig, ReplicationConfig
from syncd.job import JobSpec, PackContext
from syncd.ledger.sql import SqlLedger
from syncd.replication.model import NOTE
from syncd.replication.report import read_report
from syncd_api.v1 import management_pb2 as pb
from syncd_api.v1 import replication_pb2 as rpb
from syncd_api.v1 import replication_pb2_grpc as rpb_grpc
from tests.harness import Running, running_daemon
from tests.packs.sample import QUICK
from tests.web._support import console_session


def replication_specs(state_dir: Path, name: str) -> list[JobSpec]:
    """The built-in replication beans, as `[replication] name = …` loads them."""
    config = Config(
        daemon=DaemonConfig(state_dir=state_dir),
        replication=ReplicationConfig(name=name, cluster_id="c", page_size=2),
    )
    return list(replication_pack(config).build(PackContext(state_dir=state_dir, settings=None)))


@contextlib.asynccontextmanager
async def fleet(tmp: Path, children: int = 2) -> AsyncIterator[list[Running]]:
    async with contextlib.AsyncExitStack() as stack:
        members = []
        for name in ["parent", *(f"child{n}" for n in range(1, children + 1))]:
            state = tmp / name
            jobs = [QUICK, *replication_specs(state, name)]
            rt = await stack.enter_async_context(
                running_daemon(
                    state,
                    jobs,
                    replication=ReplicationConfig(name=name, cluster_id="c"),
                    http_address="127.0.0.1:0",
                )
            )
            members.append(rt)
        yield members


async def run_to_end(rt: Running, bean: str, op: str, **args: str) -> pb.RunInfo:
    named = {k: pb.Value(string_value=v) for k, v in args.items()}
    reply = await rt.stub.Invoke(pb.InvokeRequest(bean=bean, operation=op, named_arguments=named))
    last = None
    async with asyncio.timeout(30):
        async for info in rt.stub.WatchRun(pb.WatchRunRequest(run_id=reply.run.run_id)):
            last = info
    assert last is not None
    return last


def children_arg(members: list[Running]) -> str:
    return ";".join(f"child{i} true {rt.address}" for i, rt in enumerate(members[1:], start=1))


def ledger(rt: Running) -> SqlLedger:
    assert isinstance(rt.daemon.ledger, SqlLedger)
    return rt.daemon.ledger


def test_a_parent_consolidates_its_childrens_runs_holds_and_notes(short_tmp: Path) -> None:
    """After one synchronizeJobData run on the parent, its history shows every repository's
    runs, a pause made on one child holds on the other, and a note made on the parent is on
    every child; the table is written for `sync status`."""

    async def main() -> None:
        async with fleet(short_tmp) as members:
            parent, child1, child2 = members
            done = await run_to_end(child1, "QuickJob", "run")
            assert done.outcome == pb.RUN_OUTCOME_SUCCESS
            await child1.stub.Pause(pb.PauseRequest(bean="QuickJob"))
            ledger(parent).repository.write(NOTE, "n1", {"body": json.dumps({"text": "hi"})})
            sync = await run_to_end(
                parent,
                SYNC_BEAN,
                SYNC_OPERATION,
                parentUrl=parent.address,
                parentName="parent",
                children=children_arg(members),
            )
            assert sync.outcome == pb.RUN_OUTCOME_SUCCESS, sync.error_message
            everyone = ledger(parent).history(repository="*")
            assert done.run_id in {r.run_id for r in everyone}
            assert "QuickJob" in ledger(child2).holds()
            assert (NOTE, "n1") in ledger(child2).repository.snapshot()
            report = read_report(short_tmp / "parent")
            assert report is not None and report["status"] == 0
            assert [r["result"] for r in report["rows"]] == ["ok", "ok"]
            status = await parent.stub.GetSyncStatus(pb.GetSyncStatusRequest())
            assert status.last_status == 0
            assert [r.result for r in status.last_sync] == ["ok", "ok"]
            streams = {(c.peer_name, c.stream) for c in status.cursors}
            assert {("child1", "from_child"), ("child2", "acked_by_child")} <= streams
            async with (
                console_session(parent.daemon) as http,  # logged in, as `syncd serve` prints
                http.get(f"{parent.daemon.listening.http}/sync/api/v1/replication") as response,
            ):
                view = await response.json()
            assert view["enabled"] and view["lastStatus"] == 0
            assert [r["child_repository"] for r in view["lastSync"]] == ["child1", "child2"]
            runs = await parent.stub.RepositoryHistory(
                pb.RepositoryHistoryRequest(repository="child1")
            )
            assert [(r.run_id, r.repository) for r in runs.runs] == [(done.run_id, "child1")]

    asyncio.run(main())


def test_malformed_children_are_invalid_argument_naming_row_and_field(short_tmp: Path) -> None:
    """A row without a URL is refused before any run starts, naming row and field."""

    async def main() -> None:
        async with fleet(short_tmp, children=1) as members:
            parent = members[0]
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await parent.stub.Invoke(
                    pb.InvokeRequest(
                        bean=SYNC_BEAN,
                        operation=SYNC_OPERATION,
                        named_arguments={
                            "parentUrl": pb.Value(string_value=parent.address),
                            "children": pb.Value(
                                string_value=f"child1 true {members[1].address};child2 true"
                            ),
                        },
                    )
                )
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "row 2, field url" in (refused.value.details() or "")

    asyncio.run(main())


def test_an_unreachable_child_is_status_1_and_the_others_are_synced(short_tmp: Path) -> None:
    """A child whose daemon is not there fails its row; the run fails with status 1 and the
    reachable child is synchronised."""

    async def main() -> None:
        async with fleet(short_tmp, children=1) as members:
            parent, child1 = members
            ledger(child1).repository.write(NOTE, "c1", {"body": "{}"})
            gone = f"unix:{short_tmp / 'nobody.sock'}"
            sync = await run_to_end(
                parent,
                SYNC_BEAN,
                SYNC_OPERATION,
                parentUrl=parent.address,
                children=f"child1 true {child1.address};child2 true {gone}",
            )
            assert sync.outcome == pb.RUN_OUTCOME_FAILED
            assert sync.error_message.startswith("status 1")
            assert (NOTE, "c1") in ledger(parent).repository.snapshot()
            report = read_report(short_tmp / "parent")
            assert report is not None
            assert [r["result"] for r in report["rows"]] == ["ok", "failed"]

    asyncio.run(main())


def test_bad_replication_requests_are_invalid_argument(short_tmp: Path) -> None:
    """Garbage in a batch (unknown type, non-JSON body, bad stream, page limit) is refused
    with INVALID_ARGUMENT and changes nothing."""

    async def main() -> None:
        async with fleet(short_tmp, children=0) as members:
            stub = rpb_grpc.ReplicationStub(members[0].channel)
            before = await stub.GetInfo(rpb.GetInfoRequest())
            bad = [
                rpb.ApplyChangesRequest(source_id="x", source_epoch="e", stream="sideways"),
                rpb.ApplyChangesRequest(
                    source_id="x",
                    source_epoch="e",
                    stream="from_child",
                    to_cursor=1,
                    changes=[
                        rpb.Change(type="widget", id="1", version=rpb.Version(hlc=1, origin="x"))
                    ],
                ),
                rpb.ApplyChangesRequest(
                    source_id="x",
                    source_epoch="e",
                    stream="from_child",
                    to_cursor=1,
                    changes=[
                        rpb.Change(
                            type="note",
                            id="1",
                            version=rpb.Version(hlc=1, origin="x"),
                            body_json="{",
                        )
                    ],
                ),
            ]
            for request in bad:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await stub.ApplyChanges(request)
                assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.GetChanges(rpb.GetChangesRequest(limit=0))
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            after = await stub.GetInfo(rpb.GetInfoRequest())
            assert after.stable_watermark == before.stable_watermark

    asyncio.run(main())


def test_export_and_import_beans_carry_a_childs_changes_by_file(short_tmp: Path) -> None:
    """exportJobData on the child writes a bundle; importJobData on the parent applies it;
    importing it again succeeds and changes nothing; a corrupt file fails the run, explained."""

    async def main() -> None:
        async with fleet(short_tmp, children=1) as members:
            parent, child = members
            ledger(child).repository.write(NOTE, "by-file", {"body": "{}"})
            folder = short_tmp / "outbox"
            done = await run_to_end(
                child,
                EXPORT_BEAN,
                EXPORT_OPERATION,
                peer="parent",
                peerRole="parent",
                folder=str(folder),
            )
            assert done.outcome == pb.RUN_OUTCOME_SUCCESS, done.error_message
            (bundle,) = folder.glob("*.jsyn")
            for _ in range(2):
                done = await run_to_end(parent, IMPORT_BEAN, IMPORT_OPERATION, path=str(bundle))
                assert done.outcome == pb.RUN_OUTCOME_SUCCESS, done.error_message
            assert (NOTE, "by-file") in ledger(parent).repository.snapshot()
            broken = short_tmp / "broken.jsyn"
            broken.write_bytes(bundle.read_bytes()[:40])
            done = await run_to_end(parent, IMPORT_BEAN, IMPORT_OPERATION, path=str(broken))
            assert done.outcome == pb.RUN_OUTCOME_FAILED
            assert "corrupt" in done.error_message

    asyncio.run(main())


def test_scheduled_runs_take_their_arguments_from_the_config(tmp_path: Path) -> None:
    """`[replication] parent_url / children` become synchronizeJobData's defaults, so a
    scheduled run needs no arguments; a malformed configured row is a config error naming the
    key, the row and the field."""
    from syncd.errors import ConfigError

    def spec(children: tuple[str, ...]) -> JobSpec:
        config = Config(
            daemon=DaemonConfig(state_dir=tmp_path),
            replication=ReplicationConfig(
                name="hq", parent_url="grpc://127.0.0.1:7601", children=children
            ),
        )
        built = replication_pack(config).build(PackContext(state_dir=tmp_path, settings=None))
        return next(s for s in built if s.name == SYNC_BEAN)

    params = {p.name: p for p in spec(("ohio true grpc://ohio:7601 2011-08-08 12:00",)).parameters}
    assert params["parentUrl"].default == "grpc://127.0.0.1:7601"
    assert not params["parentUrl"].required and not params["children"].required
    assert params["children"].default == "ohio true grpc://ohio:7601 2011-08-08 12:00"
    with pytest.raises(ConfigError, match=r"replication\.children.*row 2, field url"):
        spec(("ohio true grpc://ohio:7601", "az true"))
