"""The control plane while a job logs as fast as it can: GetStatus over the unix socket, idle and
while the job's process logs flat out, and how many lines a second the daemon takes from it
(each one rendered, written to the log file and offered to the tail).

    python -m bench.log_flood [--calls 2000] [--follow]

The job's process renders its lines and sends them in batches; the daemon hands each batch on
as it is, off the event loop (the log file has a writer thread of its own); what the loop still
does is hand lines to the tail's followers, in one callback for however many arrived meanwhile.
With --follow, a `syncctl logs -f` follows the job's lines all along (printing to a file).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc

from bench._daemon import daemon, status_latencies
from bench._stats import row, summary
from syncd_api.v1 import management_pb2 as pb
from syncd_api.v1 import management_pb2_grpc as pb_grpc

TARGET_P99_MS = 5.0
SYNCCTL = Path(sys.executable).with_name("syncctl")


def _last_line(stub: pb_grpc.ManagementStub) -> int:
    """The number of the job's newest line in the daemon's tail."""
    request = pb.TailLogsRequest(lines=1, follow=False, job="FloodJob")
    for batch in stub.TailLogs(request, timeout=10):
        for line in batch.lines:
            return int(json.loads(line.json).get("n", 0))
    return 0


def _wait_logging(stub: pb_grpc.ManagementStub) -> None:
    """Returns once the job's first lines have reached the tail (a following TailLogs)."""
    request = pb.TailLogsRequest(lines=0, follow=True, job="FloodJob")
    stream = stub.TailLogs(request, timeout=60)
    try:
        for batch in stream:
            if any(json.loads(line.json).get("event") == "bench.flood" for line in batch.lines):
                return
    finally:
        stream.cancel()  # type: ignore[no-untyped-call]  # grpc ships it untyped


class _Printed:
    """Counts what a follower prints, on a thread reading its stdout in big chunks (cheap
    for the benchmark's own process, which is timing the calls)."""

    def __init__(self, follower: subprocess.Popen[bytes]) -> None:
        assert follower.stdout is not None
        self._stdout = follower.stdout
        self.lines = 0
        self.started = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while chunk := os.read(self._stdout.fileno(), 1 << 16):
            self.lines += chunk.count(b"\n")
            self.started.set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--follow", action="store_true", help="a syncctl logs -f all along")
    args = parser.parse_args(argv)
    config = '[daemon]\nexecution = "process"\nentry_points = false\npacks = ["bench.packs:LOGS"]\n'
    with daemon(config) as (_proc, address), grpc.insecure_channel(address) as channel:
        stub = pb_grpc.ManagementStub(channel)
        status_latencies(stub, 200)  # warm up
        idle = status_latencies(stub, args.calls)
        follower = printed = None
        if args.follow:
            command = [str(SYNCCTL), "--address", address, "logs", "-f", "-n", "0"]
            follower = subprocess.Popen(
                [*command, "--job", "FloodJob", "--json"],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            printed = _Printed(follower)
        try:
            stub.Invoke(pb.InvokeRequest(bean="FloodJob", operation="run"), timeout=10)
            _wait_logging(stub)
            if printed is not None and not printed.started.wait(30):
                raise RuntimeError("syncctl logs -f printed nothing")
            first, began = _last_line(stub), time.monotonic()
            busy = status_latencies(stub, args.calls)
            last, seconds = _last_line(stub), time.monotonic() - began
            stub.Cancel(pb.CancelRequest(bean="FloodJob"), timeout=10)
        finally:
            if follower is not None:
                follower.terminate()
                follower.wait(10)
    print(f"log flood: GetStatus over the unix socket, {args.calls} sequential calls each")
    print(row("idle daemon", idle, "ms"))
    print(row("a job logging flat out", busy, "ms"))
    print(f"  lines taken from the job meanwhile: {(last - first) / seconds:,.0f}/s")
    if printed is not None:
        print(f"  with a syncctl logs -f following: it printed {printed.lines:,} lines in all")
    p99 = summary(busy)["p99"]
    verdict = "meets" if p99 <= TARGET_P99_MS else "MISSES"
    print(f"  target p99 <= {TARGET_P99_MS:g} ms while a job logs: {verdict} ({p99:.3f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
