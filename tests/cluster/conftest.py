"""Clusters of real daemon processes over a fresh PostgreSQL database per test.

`cluster` starts replicas (each its own process and state directory, all on one cluster
database), talks to them over their control sockets, and reads the probe job's notes — which
runs ran when, by the database's clock — straight from the database.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
import sqlalchemy as sa

from syncd.security import hash_token, new_token
from syncd_api.v1 import management_pb2 as pb
from syncd_api.v1 import management_pb2_grpc as pb_grpc
from tests.daemon_process import DaemonProcess, daemon_process
from tests.packs.cluster import GATE_KEY, NOTIFY_CHANNEL, SCHEMA
from tests.services import fresh_postgres_database

BOUND = 30.0
SCRAPER = new_token()


def libpq_url(url: str) -> str:
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass
class Replica:
    name: str
    process: DaemonProcess
    stack: contextlib.ExitStack
    channel: grpc.Channel
    stub: pb_grpc.ManagementStub

    @property
    def pid(self) -> int:
        return self.process.proc.pid

    def log_events(self, limit: int = 30) -> list[dict[str, Any]]:
        """The daemon's last log lines (for failure messages)."""
        return self.process.lines[-limit:]

    def wait_for_log(self, event: str, timeout: float = BOUND, **match: Any) -> dict[str, Any]:
        """The first log line with this event (and fields), waiting up to `timeout` (the
        harness reads the daemon's output all the time, so its pipe never fills)."""
        try:
            return self.process.wait_for_event(event, timeout, **match)
        except AssertionError:
            raise AssertionError(
                f"{self.name}: no {event} {match} within {timeout}s; last {self.log_events(8)}"
            ) from None

    def invoke(self, bean: str = "ProbeJob") -> pb.InvokeResponse:
        return self.stub.Invoke(pb.InvokeRequest(bean=bean, operation="run"), timeout=BOUND)

    def wait_finished(self, run_id: str) -> pb.RunInfo:
        """Follow the run until it is finished (WatchRun ends with its last state)."""
        last = None
        for info in self.stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=BOUND):
            last = info
        assert last is not None, run_id
        return last


@dataclass
class Cluster:
    url: str  # SQLAlchemy URL of the cluster database
    root: Path
    replicas: dict[str, Replica] = field(default_factory=dict)
    gate: psycopg.Connection | None = None
    # The instant every sped-up replica clock counts from (SYNCD_CLOCK_ANCHOR): replicas of
    # one rate then stay exactly their offsets apart.
    anchor: datetime = field(default_factory=lambda: datetime.now(UTC))
    doors: list[psycopg.Connection] = field(default_factory=list)  # replicas held at join

    @property
    def libpq(self) -> str:
        return libpq_url(self.url)

    def start(
        self,
        name: str,
        *,
        ttl: str = "3s",
        every: str | None = None,
        at: str | None = None,
        catch_up: bool = False,
        clock_offset: float = 0.0,
        clock_rate: float = 1.0,
        stubborn: bool = False,
        url: str | None = None,
        wait_ready: bool = True,
        shutdown_grace: str = "2s",
        execution: str = "thread",
    ) -> Replica:
        """Start replica `name` (a daemon process) in the cluster."""
        state = self.root / name / "state"
        state.mkdir(parents=True, exist_ok=True)
        job = f'[jobs.ProbeJob]\nevery = "{every}"\n' if every else ""
        job = f'[jobs.ProbeJob]\nat = "{at}"\n' if at else job
        config = (
            "[daemon]\n"
            'packs = ["tests.packs.cluster:CLUSTER"]\n'
            "entry_points = false\n"
            f'execution = "{execution}"\n'
            f'shutdown_grace = "{shutdown_grace}"\n'
            'cancel_grace = "1s"\n'
            "[cluster]\n"
            f'url = "{url or self.url}"\n'
            f'replica = "{name}"\n'
            f'lease_ttl = "{ttl}"\n'
            "[scheduler]\n"
            f"catch_up = {'true' if catch_up else 'false'}\n"
            'catch_up_window = "00:00-24:00"\n'
            # A viewer's token, as Prometheus scrapes /metrics with (SCRAPER).
            "[[auth.tokens]]\n"
            'name = "prometheus"\n'
            'role = "viewer"\n'
            f'sha256 = "{hash_token(SCRAPER)}"\n'
            "[packs.cluster]\n"
            f'url = "{self.libpq}"\n'
            f"stubborn = {'true' if stubborn else 'false'}\n"
            f"{job}"
        )
        env = {"SYNCD_CLOCK_OFFSET": str(clock_offset)} if clock_offset else {}
        if clock_rate != 1.0:
            env |= {
                "SYNCD_CLOCK_RATE": str(clock_rate),
                "SYNCD_CLOCK_ANCHOR": self.anchor.isoformat(),
            }
        stack = contextlib.ExitStack()
        process = stack.enter_context(daemon_process(state, config, wait_ready=wait_ready, env=env))
        channel = stack.enter_context(grpc.insecure_channel(process.address))
        replica = Replica(name, process, stack, channel, pb_grpc.ManagementStub(channel))
        self.replicas[name] = replica
        if wait_ready:  # a member from here on (it joins just after it starts serving)
            replica.wait_for_log("cluster.joined")
        return replica

    def start_held_at_join(self, name: str, **options: Any) -> tuple[Replica, Callable[[], None]]:
        """Start replica `name` held just before it joins the cluster: it serves (it logs
        `daemon.started`), but its join — and so its start-up catch-up — waits until the
        returned `admit()`. The hold is a lock on the replica's row, the first thing a join
        locks (bounded there by a third of the lease TTL)."""
        door = psycopg.connect(self.libpq)
        self.doors.append(door)
        door.execute(
            "INSERT INTO syncd_cluster_replicas"
            " (name, incarnation, host, pid, version, started_at, heartbeat_at, left_at)"
            " VALUES (%s, '', '', 0, '', now(), now(), now()) ON CONFLICT (name) DO NOTHING",
            (name,),
        )
        door.commit()
        door.execute("SELECT 1 FROM syncd_cluster_replicas WHERE name = %s FOR UPDATE", (name,))
        replica = self.start(name, wait_ready=False, **options)

        def admit() -> None:
            door.commit()
            door.close()
            self.doors.remove(door)

        return replica, admit

    def stop(self, name: str, sig: int = signal.SIGTERM) -> int:
        replica = self.replicas.pop(name)
        try:
            return replica.process.stop(sig)
        finally:
            replica.stack.close()

    def close(self) -> None:
        for door in self.doors:  # a held replica can then join, and stop
            door.close()
        for name in list(self.replicas):
            with contextlib.suppress(Exception):
                self.stop(name)
        if self.gate is not None:
            self.gate.close()

    # --- the gate and the probe's notes ---------------------------------------------------

    def hold_gate(self, key: int = GATE_KEY) -> datetime:
        """Hold the probe's gate (runs wait at it); the database's time it was taken."""
        if self.gate is None:
            self.gate = psycopg.connect(self.libpq, autocommit=True)
        row = self.gate.execute("SELECT pg_advisory_lock(%s), clock_timestamp()", (key,)).fetchone()
        assert row is not None
        taken: datetime = row[1]
        return taken

    def release_gate(self, key: int = GATE_KEY) -> datetime:
        assert self.gate is not None
        row = self.gate.execute(
            "SELECT pg_advisory_unlock(%s), clock_timestamp()", (key,)
        ).fetchone()
        assert row is not None and row[0], "the gate was not held"
        released: datetime = row[1]
        return released

    @contextlib.contextmanager
    def probe_endings(self) -> Iterator[Callable[[str], None]]:
        """While open: `wait(run_id)` returns once that probe run has ended (it notifies)."""
        with psycopg.connect(self.libpq, autocommit=True) as conn:
            conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
            ended: set[str] = set()

            def wait(run_id: str) -> None:
                if run_id in ended:
                    return
                for note in conn.notifies(timeout=BOUND):
                    ended.add(note.payload)
                    if note.payload == run_id:
                        return
                raise AssertionError(f"probe run {run_id} did not end within {BOUND}s")

            yield wait

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.libpq, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def probes(self) -> list[tuple[Any, ...]]:
        """(run_id, token, pid, began, ended, published, refused_by), by start."""
        return self.query(
            "SELECT run_id, token, pid, began, ended, published, refused_by"
            " FROM cluster_probe ORDER BY began"
        )

    def overlapping_runs(self) -> list[tuple[Any, ...]]:
        """Pairs of probe runs that were under way at the same time (there must be none)."""
        return self.query(
            "SELECT a.run_id, b.run_id FROM cluster_probe a JOIN cluster_probe b"
            " ON a.run_id < b.run_id"
            " AND a.began < coalesce(b.ended, 'infinity')"
            " AND b.began < coalesce(a.ended, 'infinity')"
        )


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with fresh_postgres_database() as url:
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            conn.execute(SCHEMA)
        harness = Cluster(url=url, root=tmp_path)
        try:
            yield harness
        finally:
            harness.close()
