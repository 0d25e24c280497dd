"""Control-plane latency while a CPU-bound job runs: GetStatus over the unix socket, idle and
during the job, with the job in a child process (the default) and, for contrast, in a thread.

    python -m bench.control_plane [--calls 2000]
"""

from __future__ import annotations

import argparse
import time

import grpc

from bench._daemon import daemon
from bench._stats import row, summary
from syncd_api.v1 import management_pb2 as pb
from syncd_api.v1 import management_pb2_grpc as pb_grpc


def _latencies(stub: pb_grpc.ManagementStub, calls: int) -> list[float]:
    out = []
    for _ in range(calls):
        start = time.perf_counter()
        stub.GetStatus(pb.GetStatusRequest(), timeout=10)
        out.append((time.perf_counter() - start) * 1000)
    return out


def _measure(execution: str, calls: int) -> tuple[list[float], list[float]]:
    config = (
        f'[daemon]\nexecution = "{execution}"\nentry_points = false\npacks = ["bench.packs:CPU"]\n'
    )
    with daemon(config) as (_proc, address), grpc.insecure_channel(address) as channel:
        stub = pb_grpc.ManagementStub(channel)
        _latencies(stub, 200)  # warm up
        idle = _latencies(stub, calls)
        stub.Invoke(pb.InvokeRequest(bean="CpuJob", operation="run"), timeout=10)
        for info in stub.WatchRun(
            pb.WatchRunRequest(
                run_id=stub.GetStatus(pb.GetStatusRequest()).beans[0].current_run.run_id
            )
        ):
            if info.rows_read > 0:
                break  # the job is burning CPU now
        busy = _latencies(stub, calls)
        stub.Cancel(pb.CancelRequest(bean="CpuJob"), timeout=10)
    return idle, busy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args(argv)
    print(f"control plane: GetStatus over the unix socket, {args.calls} sequential calls each")
    results = {}
    for execution in ("process", "thread"):
        idle, busy = _measure(execution, args.calls)
        results[execution] = summary(busy)
        print(row(f"idle daemon ({execution} executor)", idle, "ms"))
        print(row(f"CPU-bound job in a {execution}", busy, "ms"))
    p99 = results["process"]["p99"]
    print(
        f"  target p99 <= 5 ms with the default (process) executor: {'meets' if p99 <= 5 else 'MISSES'} ({p99:.3f} ms)"
    )
    print(f"  thread/process p99 ratio while busy: {results['thread']['p99'] / p99:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
