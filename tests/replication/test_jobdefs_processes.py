"""A job definition changed at the parent reaches a child's scheduler: a parent and a child
daemon as processes; the parent's config changes and is reloaded (SIGHUP), a sync runs, and
the child's `syncctl next` shows the new time — no restart of the child."""

from __future__ import annotations

import json
import signal
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc

from syncd_api.v1 import management_pb2 as pb
from syncd_api.v1 import management_pb2_grpc as pb_grpc
from tests.daemon_process import (
    BOUND,
    DaemonProcess,
    daemon_process,
    e2e_config,
    without_catch_up,
)
from tests.replication.test_cli import syncctl
from tests.replication.test_processes import finished, sync


def _config(gate: Path, name: str, extra: str = "") -> str:
    return (
        e2e_config(gate)
        + f'[replication]\nname = "{name}"\ncluster_id = "fleet"\ntimeout = "5s"\nretries = 2\n'
        # Tombstones go as soon as every peer has them: the test sees the collection run.
        + 'tombstone_retention = "0s"\n'
        + extra
    )


def _definition(at: str) -> str:
    """What the parent publishes for `[jobs.QuickJob] at = "<at>"`."""
    fields = {"at": at, "enabled": True, "on_missed": "skip", "timeout": 0.0}
    return json.dumps(fields, sort_keys=True)


def _quick_fires(daemon: DaemonProcess) -> list[str]:
    listed = syncctl(daemon.address, "next", "--days", "1", "--json")
    assert listed.returncode == 0, listed.stderr
    return [f["at"][11:16] for f in json.loads(listed.stdout)["fires"] if f["bean"] == "QuickJob"]


def _hhmm(hours: float) -> str:
    """A time of day far enough from now that the job does not fire during the test."""
    return (datetime.now(UTC) + timedelta(hours=hours)).strftime("%H:%M")


def _reload(parent: DaemonProcess, config: str) -> None:
    (parent.state_dir.parent / "syncd.toml").write_text(without_catch_up(config))
    parent.proc.send_signal(signal.SIGHUP)


def test_a_definition_changed_at_the_parent_replans_the_child_after_a_sync(
    short_tmp: Path,
) -> None:
    """At start the parent publishes its tables; a sync replans the child (its `next` shows
    the parent's time; a table closing a dependency cycle is refused, in `sync status`); an
    edit and SIGHUP at the parent reach it with the next sync; the parent dropping its table
    hands the job back to the child's own table, and its tombstone is collected on both once
    each has what it needs (the retention is 0 here)."""
    own, first, second = _hhmm(4), _hhmm(7), _hhmm(10)
    gate = short_tmp / "gate"
    gate.mkdir()
    for name in ("parent", "child"):
        (short_tmp / name).mkdir()
    child_state = short_tmp / "child" / "state"
    row = f"child true unix:{child_state}/run/syncd.sock"
    # FailingJob's table at the parent would close a cycle with the child's own QuickJob table.
    parent_base = (
        _config(gate, "parent", f'children = ["{row}"]\n')
        + '[jobs.FailingJob]\nafter = ["QuickJob"]\n'
    )
    child_config = _config(
        gate, "child", f'[jobs.QuickJob]\nat = "{own}"\nafter = ["FailingJob"]\n'
    )

    def parent_config(at: str | None) -> str:
        return parent_base + (f'[jobs.QuickJob]\nat = "{at}"\n' if at else "")

    with ExitStack() as stack:
        child = stack.enter_context(daemon_process(child_state, child_config))
        parent = stack.enter_context(
            daemon_process(short_tmp / "parent" / "state", parent_config(first))
        )
        parent.wait_for_event("replication.jobdefs_published", written=["FailingJob", "QuickJob"])
        assert _quick_fires(child) == [own]  # nothing synchronised yet

        assert finished(parent, sync(parent, row))["outcome"] == "success"
        child.wait_for_event(
            "replication.jobdefs_applied", accepted={"QuickJob": _definition(first)}
        )
        assert _quick_fires(child) == [first]
        assert _quick_fires(parent) == [first]
        # The definition that would close a cycle is refused, visibly; the rest applies.
        refused = child.wait_for_event("replication.jobdef_refused", job="FailingJob")
        assert "dependency cycle" in refused["problem"]
        status = json.loads(syncctl(child.address, "sync", "status", "--json").stdout)
        assert [d["job"] for d in status["refused_definitions"]] == ["FailingJob"]
        assert "dependency cycle" in status["refused_definitions"][0]["problem"]

        # The parent's operator edits the table and reloads; the next sync carries it.
        _reload(parent, parent_config(second))
        parent.wait_for_event(
            "replication.jobdefs_published", definitions={"QuickJob": _definition(second)}
        )
        assert finished(parent, sync(parent, row))["outcome"] == "success"
        child.wait_for_event(
            "replication.jobdefs_applied", accepted={"QuickJob": _definition(second)}
        )
        assert _quick_fires(child) == [second]

        # The parent drops its table: the tombstone hands QuickJob back to the child's own.
        _reload(parent, parent_config(None))
        parent.wait_for_event("replication.jobdefs_published", removed=["QuickJob"])
        assert finished(parent, sync(parent, row))["outcome"] == "success"
        child.wait_for_event("replication.jobdefs_applied", accepted={})
        assert _quick_fires(child) == [own]

        # Every peer has the tombstone: the parent collected it after that sync; the child
        # once the parent's next pull has passed it (and acknowledged so).
        parent.wait_for_event("replication.tombstones_collected", purged=1)
        assert finished(parent, sync(parent, row))["outcome"] == "success"
        child.wait_for_event("replication.tombstones_collected", purged=1)
        assert _quick_fires(child) == [own]


def _invoke(daemon: DaemonProcess, bean: str, operation: str, **args: str) -> str:
    with grpc.insecure_channel(daemon.address) as channel:
        reply = pb_grpc.ManagementStub(channel).Invoke(
            pb.InvokeRequest(
                bean=bean,
                operation=operation,
                named_arguments={k: pb.Value(string_value=v) for k, v in args.items()},
            ),
            timeout=BOUND,
        )
    return reply.run.run_id


def test_a_bundle_from_the_parent_is_applied_by_the_childs_daemon_which_replans(
    short_tmp: Path,
) -> None:
    """A disconnected child: the parent exports a bundle, the child's ImportJobData hands it to
    its own daemon (the daemon logs the import: its one writer applied it), which replans."""
    own, first = _hhmm(4), _hhmm(7)
    gate = short_tmp / "gate"
    gate.mkdir()
    for name in ("parent", "child"):
        (short_tmp / name).mkdir()
    parent_config = (
        _config(gate, "parent", 'children = ["child false grpc://offline.example:7601"]\n')
        + f'[jobs.QuickJob]\nat = "{first}"\n'
    )
    outbox = short_tmp / "outbox"
    with ExitStack() as stack:
        child = stack.enter_context(
            daemon_process(
                short_tmp / "child" / "state",
                _config(gate, "child", f'[jobs.QuickJob]\nat = "{own}"\n'),
            )
        )
        parent = stack.enter_context(daemon_process(short_tmp / "parent" / "state", parent_config))
        parent.wait_for_event("replication.jobdefs_published", written=["QuickJob"])
        exported = _invoke(
            parent,
            "ExportJobData",
            "exportJobData",
            peer="child",
            peerRole="child",
            folder=str(outbox),
        )
        assert finished(parent, exported)["outcome"] == "success"
        (bundle,) = outbox.glob("*.jsyn")

        imported = _invoke(child, "ImportJobData", "importJobData", path=str(bundle))
        assert finished(child, imported)["outcome"] == "success"
        child.wait_for_event("replication.bundle_imported", logger="syncd.rpc", repeat=False)
        child.wait_for_event(
            "replication.jobdefs_applied", accepted={"QuickJob": _definition(first)}
        )
        assert _quick_fires(child) == [first]
