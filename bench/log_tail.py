"""Live log tail: how long a line takes from being logged (inside a job's process) to reaching a
following `syncctl logs -f`, and how many lines per second one follower sustains.

    python -m bench.log_tail [--lines 20000] [--latency-lines 500]
"""

from __future__ import annotations

import argparse
import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc

from bench._daemon import daemon
from bench._stats import row, summary
from syncd_api.v1 import management_pb2 as pb
from syncd_api.v1 import management_pb2_grpc as pb_grpc

SYNCCTL = Path(sys.executable).with_name("syncctl")


def _follow(address: str, lines: int, gap: float) -> tuple[list[float], float, int]:
    """Start `syncctl logs -f`, make sure it is attached, run the chatter job, read to the end."""
    follower = subprocess.Popen(
        [
            str(SYNCCTL),
            "--address",
            address,
            "logs",
            "-f",
            "-n",
            "0",
            "--job",
            "ChatterJob",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert follower.stdout is not None
    received_lines: queue.Queue[tuple[float, bytes]] = queue.Queue()
    stdout = follower.stdout

    def pump() -> None:
        for line in stdout:
            received_lines.put((time.time(), line))  # stamped on arrival, not when examined

    threading.Thread(target=pump, daemon=True).start()
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.ManagementStub(channel)
        # Handshake: pausing a bean logs `bean.paused` with its name; once the follower prints
        # one, it is attached and will see every line of the run.
        for _ in range(100):
            stub.Pause(pb.PauseRequest(bean="ChatterJob"), timeout=10)
            stub.Resume(pb.PauseRequest(bean="ChatterJob"), timeout=10)
            try:
                received_lines.get(timeout=0.2)
                break
            except queue.Empty:
                continue
        else:
            raise RuntimeError("syncctl logs -f never attached")
        reply = stub.Invoke(
            pb.InvokeRequest(
                bean="ChatterJob",
                operation="run",
                named_arguments={
                    "lines": pb.Value(int_value=lines),
                    "gap": pb.Value(float_value=gap),
                },
            ),
            timeout=10,
        )
        for _ in stub.WatchRun(pb.WatchRunRequest(run_id=reply.run.run_id)):
            pass  # the run has ended: every line it logged is in the daemon
    latencies: list[float] = []
    received = 0
    first = last = 0.0
    while True:
        try:
            # Lines still in flight arrive within moments; a lost `bench.done` must not hang us.
            now, raw = received_lines.get(timeout=5)
        except queue.Empty:
            break
        event = json.loads(raw)
        if event.get("event") == "bench.line":
            received += 1
            latencies.append((now - float(event["sent"])) * 1000)
            first = first or now
            last = now
        if event.get("event") == "bench.done":
            break
    follower.terminate()
    follower.wait(10)
    rate = received / (last - first) if last > first else float("nan")
    return latencies, rate, lines - received


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--latency-lines", type=int, default=500)
    args = parser.parse_args(argv)
    config = '[daemon]\nentry_points = false\npacks = ["bench.packs:LOGS"]\n[logging]\nfile = "-"\n'
    with daemon(config) as (_proc, address):
        _follow(address, 10, 0.0)  # warm up: the fork server, the job module
        latency, _, _ = _follow(address, args.latency_lines, 0.002)
        _, rate, lost = _follow(address, args.lines, 0.0)
    print(
        f"log tail: job process → daemon → syncctl logs -f --json, {args.latency_lines} paced lines"
    )
    print(row("logged → printed by the follower", latency, "ms"))
    p99 = summary(latency)["p99"]
    print(f"  target p99 <= 50 ms: {'meets' if p99 <= 50 else 'MISSES'} ({p99:.2f} ms)")
    print(
        f"  sustained: {rate:,.0f} lines/s to one follower over {args.lines:,} lines, lost {lost}"
    )
    print(f"  target >= 5,000 lines/s: {'meets' if rate >= 5000 else 'MISSES'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
