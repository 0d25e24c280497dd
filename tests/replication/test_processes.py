"""A parent and three children as real daemon processes on their own sockets: one child is
killed in the middle of a sync (status 1, the others synchronised), and the next cycle, once
it is back, completes it with nothing lost."""

from __future__ import annotations

import json
import signal
from contextlib import ExitStack
from pathlib import Path

import grpc

from syncd.ledger.sql import SqlLedger
from syncd.replication.model import NOTE, RUN
from syncd_api.v1 import management_pb2 as pb
from syncd_api.v1 import management_pb2_grpc as pb_grpc
from syncd_api.v1 import replication_pb2 as rpb
from syncd_api.v1 import replication_pb2_grpc as rpb_grpc
from tests.daemon_process import BOUND, DaemonProcess, daemon_process

CHILDREN = ("child1", "child2", "child3")
BIG = 300  # child3's notes: a pull of one record per page takes long enough to kill it in


def config(name: str, page_size: int = 1000) -> str:
    return (
        "[daemon]\nentry_points = false\n"
        f'[replication]\nname = "{name}"\ncluster_id = "fleet"\npage_size = {page_size}\n'
        'timeout = "5s"\nretries = 2\n'
    )


def seed(state_dir: Path, name: str, notes: int) -> None:
    """The state a repository had before this daemon started (its earlier life)."""
    state_dir.mkdir(parents=True, mode=0o700)
    ledger = SqlLedger(f"sqlite:///{state_dir / 'ledger.sqlite3'}")
    for i in range(notes):
        ledger.repository.write(NOTE, f"{name}-{i:04d}", {"body": json.dumps({"n": i})})
    ledger.close()


def start(stack: ExitStack, root: Path, name: str, page_size: int = 1000) -> DaemonProcess:
    (root / name).mkdir(exist_ok=True)
    return stack.enter_context(daemon_process(root / name / "state", config(name, page_size)))


def digest(address: str) -> dict[int, str]:
    """A repository's digest over the Replication service (a running daemon)."""
    with grpc.insecure_channel(address) as channel:
        reply = rpb_grpc.ReplicationStub(channel).GetDigest(
            rpb.GetDigestRequest(prefix_bits=4), timeout=BOUND
        )
        return dict(reply.buckets)


def sync(parent: DaemonProcess, children: str) -> str:
    with grpc.insecure_channel(parent.address) as channel:
        reply = pb_grpc.ManagementStub(channel).Invoke(
            pb.InvokeRequest(
                bean="SynchronizeJobData",
                operation="synchronizeJobData",
                named_arguments={
                    "parentUrl": pb.Value(string_value=parent.address),
                    "parentName": pb.Value(string_value="parent"),
                    "children": pb.Value(string_value=children),
                },
            ),
            timeout=BOUND,
        )
    return reply.run.run_id


def finished(parent: DaemonProcess, run_id: str) -> dict[str, object]:
    return parent.wait_for_event("run.finished", timeout=120, run_id=run_id)


def test_a_child_killed_mid_sync_is_status_1_and_the_next_cycle_completes_it(
    short_tmp: Path,
) -> None:
    """Status 1 with the others synced; after a restart of the child, status 0, and every
    record of every repository is on every repository."""
    root = short_tmp
    for name, notes in (("child1", 3), ("child2", 3), ("child3", BIG)):
        seed(root / name / "state", name, notes)
    with ExitStack() as stack:
        parent = start(stack, root, "parent", page_size=1)
        children = {name: start(stack, root, name) for name in CHILDREN}
        rows = ";".join(f"{n} true {c.address}" for n, c in children.items())
        run_id = sync(parent, rows)
        parent.wait_for_event("replication.page", timeout=120, child="child3", phase="pull")
        children["child3"].stop(signal.SIGKILL)
        end = finished(parent, run_id)
        assert end["outcome"] == "failed", end
        assert str(end.get("error", "")).startswith("status 1"), end
        report = json.loads((root / "parent/state/replication/last-sync.json").read_text())
        assert [r["result"] for r in report["rows"]] == ["ok", "ok", "failed"]
        assert digest(children["child1"].address) == digest(children["child2"].address)

        children["child3"] = start(stack, root, "child3")
        run_id = sync(parent, rows)
        end = finished(parent, run_id)
        assert end["outcome"] == "success", end
        rerun = sync(parent, rows)  # consolidates what the second cycle pulled last
        assert finished(parent, rerun)["outcome"] == "success"
        states = [d.state_dir for d in (parent, *children.values())]
    # The daemons are stopped: compare what each repository holds. The last sync's own run
    # record (written as it ends) reaches the children with the next cycle; all else is equal.
    held = [records(state) for state in states]
    for other in held[1:]:
        assert {k: v for k, v in other.items() if k[0] != RUN} == {
            k: v for k, v in held[0].items() if k[0] != RUN
        }
        assert set(held[0]) - set(other) <= {(RUN, rerun)}
    assert len([k for k in held[1] if k[0] == NOTE]) == 3 + 3 + BIG


def records(state: Path) -> dict[tuple[str, str], tuple[object, bool, dict[str, object]]]:
    ledger = SqlLedger(f"sqlite:///{state / 'ledger.sqlite3'}")
    try:
        snap = ledger.repository.snapshot()
    finally:
        ledger.close()
    return {k: (c.version, c.deleted, dict(c.body)) for k, c in snap.items()}
