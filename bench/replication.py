"""Benchmark: SynchronizeJobData between a parent and one child.

    python -m bench.replication [--records 1000000] [--steady 100000] [--page 5000]
                                [--backends sqlite,postgresql] [--modes daemons,one-process]

For each backend and mode: a parent repository is filled with N records (run-sized note bodies,
written as batches from a synthetic source through the same conditional upsert a pull uses); a
child is seeded by one cycle (every record pushed to it); then M new records at the parent are
synchronised (the steady state); then cycles with nothing to move are timed. Figures against
the targets of the replication specification: seeding 1,000,000 records in under 2 minutes, at
least 20,000 records/s per child in the steady state, a no-change cycle under 200 ms per child.

Modes: `daemons` is what a deployment sees: the parent and the child each a `syncd serve`
process with a TCP listener and a token (bench/_repl_daemons.py), the cycle in this process as
it would run in the SynchronizeJobData job's process, every call over gRPC. `one-process` (the
earlier form, a contrast): the parent repository used directly, the child's Replication servicer
on a loopback port, all in this process and its one interpreter lock.

The machine may be shared: each figure also gives the CPU seconds spent on it (daemons: the
parent's, the child's and this process's; one-process: every thread of this one), which moves
less with other work than wall time does, and the load average. On PostgreSQL, when the server
runs on this machine (its processes visible here), the daemons' steady state also gives the CPU
its processes spent meanwhile (all of them: other clients' work counts too; a process that
ends meanwhile is not counted).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc

from bench import _repl_daemons
from bench._cpu import process_cpu
from bench._postgres import fresh_database, unreachable_reason
from syncd.ledger.recorder import LedgerRecorder
from syncd.ledger.sql import SqlLedger
from syncd.replication.children import ChildRow
from syncd.replication.cycle import Synchronizer
from syncd.replication.model import FROM_CHILD, NOTE, Change, Version, new_id
from syncd.retry import Backoff
from syncd.rpc.replclient import GrpcPeer
from syncd.rpc.replication import ReplicationServicer, replication_handlers

TARGET_SEED_S = 120.0
TARGET_STEADY_RPS = 20_000.0
TARGET_QUIET_MS = 200.0
BATCH = 5000
MODES = ("daemons", "one-process")


def _body(i: int) -> dict[str, str]:
    text = json.dumps(
        {
            "subject": f"run:20261122T0{i % 10}0500-{i:06x}",
            "text": f"checked after the night run {i}; rows as expected, nothing to redo",
            "author": "uid:1000",
            "at": "2026-11-22T06:00:00+00:00",
        }
    )
    return {"body": text}


def fill(ledger: SqlLedger, start: int, count: int, source: str) -> float:
    """`count` new records at `ledger` (as if pulled from `source`); returns seconds taken."""
    repo = ledger.repository
    begun = time.perf_counter()
    cursor = repo.cursor(source, "e", FROM_CHILD) or 0
    base_ms = int(time.time() * 1000) - 60_000
    for first in range(start, start + count, BATCH):
        n = min(BATCH, start + count - first)
        changes = [
            Change(
                type=NOTE,
                id=new_id(base_ms + i // 1000),
                version=Version(((base_ms + i // 1000) << 16) + i % 1000, source),
                body=_body(i),
            )
            for i in range(first, first + n)
        ]
        repo.apply_changes(
            source_id=source,
            source_epoch="e",
            stream=FROM_CHILD,
            from_cursor=cursor,
            to_cursor=cursor + n,
            changes=changes,
        )
        cursor += n
    return time.perf_counter() - begun


@contextmanager
def served(ledger: SqlLedger) -> Iterator[str]:
    """The repository behind a real gRPC server on a loopback port, on its own loop."""
    ready = threading.Event()
    stop: list[asyncio.Event] = []
    address: list[str] = []

    async def serve() -> None:
        recorder = LedgerRecorder(ledger)
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", 64 << 20),
                ("grpc.max_send_message_length", 64 << 20),
            ]
        )
        server.add_generic_rpc_handlers(
            (replication_handlers(ReplicationServicer(ledger.repository, recorder)),)
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        address.append(f"127.0.0.1:{port}")
        stop.append(asyncio.Event())
        ready.set()
        await stop[0].wait()
        await server.stop(None)
        await recorder.close()

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    ready.wait(30)
    try:
        yield address[0]
    finally:
        loop.call_soon_threadsafe(stop[0].set)
        thread.join(30)
        loop.close()


def cycle(parent: SqlLedger, child_url: str, page: int) -> tuple[float, int]:
    peer = GrpcPeer("child", child_url, timeout=300)
    try:
        sync = Synchronizer(
            parent.repository,
            lambda _row: peer,
            page_limit=page,
            parallel=1,
            backoff=Backoff(initial=0.1, maximum=1.0, attempts=2),
        )
        begun = time.perf_counter()
        report = sync.run([ChildRow("child", True, "true", child_url, None)])
        took = time.perf_counter() - begun
    finally:
        peer.close()
    (row,) = report.rows
    assert report.status == 0, row.error
    return took, row.pushed + row.pulled


class Cpu:
    """CPU seconds of this process (all threads) over a phase, and the load when it began."""

    def __init__(self) -> None:
        self.load = os.getloadavg()[0]
        self.begun = time.process_time()

    def note(self, records: int) -> str:
        spent = time.process_time() - self.begun
        return (
            f"[cpu {spent:.1f}s, {records / max(spent, 1e-9):,.0f} records per cpu-second;"
            f" load {self.load:.1f}]"
        )


def _steady_line(label: str, moved: int, took: float) -> str:
    rate = moved / took
    return (
        f"[{label}] steady state: {moved:,} records in {took:.2f}s"
        f" ({rate:,.0f} records/s per child); target >= {TARGET_STEADY_RPS:,.0f}"
        f" -> {'met' if rate >= TARGET_STEADY_RPS else 'missed'}"
        f" (ratio {rate / TARGET_STEADY_RPS:.2f})"
    )


def _seed_line(label: str, moved: int, took: float) -> str:
    scaled = took * 1_000_000 / max(moved, 1)
    return (
        f"[{label}] seed of the child: {moved:,} records in {took:.1f}s"
        f" ({moved / took:,.0f} records/s); target < {TARGET_SEED_S:.0f}s for"
        f" 1,000,000 -> {'met' if scaled < TARGET_SEED_S else 'missed'}"
        f" (scaled to 1M: {scaled:.0f}s, ratio {scaled / TARGET_SEED_S:.2f})"
    )


def _quiet_line(label: str, times_ms: list[float]) -> str:
    each = ", ".join(f"{t:.0f}" for t in times_ms)
    times_ms = sorted(times_ms)
    median = times_ms[len(times_ms) // 2]
    return (
        f"[{label}] no-change cycle: median {median:.1f} ms, max {times_ms[-1]:.1f} ms"
        f" over {len(times_ms)} (in order: {each}); target < {TARGET_QUIET_MS:.0f} ms ->"
        f" {'met' if median < TARGET_QUIET_MS else 'missed'}"
        f" (ratio {median / TARGET_QUIET_MS:.2f})"
    )


def _filled(label: str, url: str, start: int, count: int) -> str:
    ledger = SqlLedger(url)
    try:
        cpu = Cpu()
        took = fill(ledger, start, count, "seed-source")
    finally:
        ledger.close()
    return (
        f"[{label}] parent filled: {count:,} records in {took:.1f}s"
        f" ({count / took:,.0f} records/s applied) {cpu.note(count)}"
    )


def run_one_process(name: str, parent_url: str, child_url: str, args: argparse.Namespace) -> None:
    """The parent, the child's servicer and the cycle in this one process (one interpreter
    lock): the contrast to `run_daemons`, not how a deployment runs."""
    label = f"{name} one-process"
    print(_filled(label, parent_url, 0, args.records), flush=True)
    parent, child = SqlLedger(parent_url), SqlLedger(child_url)
    try:
        with served(child) as address:
            cpu = Cpu()
            seed_s, moved = cycle(parent, address, args.page)
            print(f"{_seed_line(label, moved, seed_s)} {cpu.note(moved)}", flush=True)
            fill(parent, args.records, args.steady, "seed-source")
            cpu = Cpu()
            steady_s, moved = cycle(parent, address, args.page)
            print(f"{_steady_line(label, moved, steady_s)} {cpu.note(moved)}", flush=True)
            cycle(parent, address, args.page)  # the steady cycle's own run echoes settle
            quiet = [cycle(parent, address, args.page)[0] * 1000 for _ in range(args.quiet)]
            print(_quiet_line(label, quiet), flush=True)
    finally:
        parent.close()
        child.close()


def run_daemons(
    name: str, folder: Path, parent_url: str, child_url: str, args: argparse.Namespace
) -> None:
    """As deployed: the parent and the child daemons as processes on TCP, the cycle here."""
    label = f"{name} daemons"
    print(_filled(label, parent_url, 0, args.records), flush=True)
    with _repl_daemons.pair(folder, parent_url, child_url, args.page) as daemons:
        before = daemons.cpu()
        seed_s, moved = daemons.cycle()
        print(f"{_seed_line(label, moved, seed_s)} {_cpu3(before, daemons.cpu(), moved)}")
        # Written by this process into the running parent's store, as its own writers would.
        _filled(label, parent_url, args.records, args.steady)
        before, server = daemons.cpu(), _server_cpu()
        steady_s, moved = daemons.cycle()
        spent = _server_spent(server, _server_cpu())
        extra = f" [postgres server cpu {spent:.1f}s]" if name == "postgresql" and server else ""
        print(
            f"{_steady_line(label, moved, steady_s)} {_cpu3(before, daemons.cpu(), moved)}{extra}"
        )
        daemons.cycle()  # the steady cycle's own run echoes settle
        quiet = [daemons.cycle()[0] * 1000 for _ in range(args.quiet)]
        print(_quiet_line(label, quiet), flush=True)


def _server_cpu() -> dict[int, float]:
    """User + system CPU seconds of each PostgreSQL server process visible here, by process id
    (from /proc; Linux); empty when there is none."""
    found: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
        except OSError:
            continue  # ended meanwhile, or not ours to read
        cpu = process_cpu(int(entry.name))
        if cpu is not None:
            found[int(entry.name)] = cpu
    return found


def _server_spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU the server's processes spent between two readings: a process that ended meanwhile
    is not counted (nor is its CPU before the first reading, as it would be by two sums)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def _cpu3(before: tuple[float, ...], after: tuple[float, ...], records: int) -> str:
    parent, child, cycle_cpu = (a - b for a, b in zip(after, before, strict=True))
    total = parent + child + cycle_cpu
    return (
        f"[cpu parent {parent:.1f}s, child {child:.1f}s, cycle {cycle_cpu:.1f}s:"
        f" {records / max(total, 1e-9):,.0f} records per cpu-second; load {os.getloadavg()[0]:.1f}]"
    )


def run_backend(name: str, args: argparse.Namespace) -> None:
    for mode in args.modes.split(","):
        if mode not in MODES:
            raise SystemExit(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
        if name == "sqlite":
            with tempfile.TemporaryDirectory(prefix="syncd-bench-repl-") as tmp:
                folder = Path(tmp)
                parent = _repl_daemons.sqlite_url(folder, "parent")
                child = _repl_daemons.sqlite_url(folder, "child")
                if mode == "daemons":
                    run_daemons(name, folder, parent, child, args)
                else:
                    run_one_process(name, parent, child, args)
        else:
            with fresh_database() as parent, fresh_database() as child:
                if mode == "daemons":
                    with tempfile.TemporaryDirectory(prefix="syncd-bench-repl-") as tmp:
                        run_daemons(name, Path(tmp), parent, child, args)
                else:
                    run_one_process(name, parent, child, args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replication")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--steady", type=int, default=100_000)
    parser.add_argument("--page", type=int, default=5000)
    parser.add_argument("--quiet", type=int, default=20)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument(
        "--modes",
        default="daemons,one-process",
        help="daemons: parent and child daemons as processes on TCP, the cycle in this one (as"
        " deployed); one-process: all of it in this process (a contrast)",
    )
    args = parser.parse_args(argv)
    for backend in args.backends.split(","):
        if backend == "postgresql":
            reason = unreachable_reason()
            if reason:
                print(f"[postgresql] skipped: {reason}")
                continue
        elif backend != "sqlite":
            print(f"unknown backend {backend!r}")
            return 2
        run_backend(backend, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
