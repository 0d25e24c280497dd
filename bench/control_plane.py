"""Control-plane latency while a CPU-bound job runs: GetStatus over the unix socket, idle and
during the job, with the job in a child process (the default) and, for contrast, in a thread.
Then the ledger under load: GetStatus and GetRun while the CPU-bound job runs and short runs
start and end 20 times a second, on a PostgreSQL ledger (skipped, with the reason printed, when
PostgreSQL is unreachable) and, for contrast, on the embedded SQLite ledger, with the CPU a short
run costs the daemon, its job process and the fork server (from /proc, measured over the first
runs while no other calls are made): a figure the machine's other load does not move.

    python -m bench.control_plane [--calls 2000] [--rate 20] [--loop-stats]

--loop-stats also times every callback of the loaded daemons' event loops (bench/loopstat_site;
it costs the daemon a little CPU, so it is off by default) and prints, for the calls' window,
how many took over 2 ms and why: preempted (no core was free), blocked (the interpreter lock,
I/O) or on CPU.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import grpc

from bench._cpu import TreeCpu, tree_cpu
from bench._daemon import daemon, status_latencies
from bench._postgres import fresh_database, unreachable_reason
from bench._run_load import RunLoad, ended_by
from bench._stats import row, summary
from syncd_api.v1 import management_pb2 as pb
from syncd_api.v1 import management_pb2_grpc as pb_grpc

TARGET_P99_MS = 5.0
# Short runs over which the CPU a run costs is measured, before the latency calls start.
COST_RUNS = 100


def _start_cpu_job(stub: pb_grpc.ManagementStub) -> None:
    """Starts CpuJob and returns once it is burning CPU."""
    reply = stub.Invoke(pb.InvokeRequest(bean="CpuJob", operation="run"), timeout=10)
    for info in stub.WatchRun(pb.WatchRunRequest(run_id=reply.run.run_id), timeout=30):
        if info.rows_read > 0:
            break  # the job is burning CPU now


def _measure(execution: str, calls: int) -> tuple[list[float], list[float]]:
    config = (
        f'[daemon]\nexecution = "{execution}"\nentry_points = false\npacks = ["bench.packs:CPU"]\n'
    )
    with daemon(config) as (_proc, address), grpc.insecure_channel(address) as channel:
        stub = pb_grpc.ManagementStub(channel)
        status_latencies(stub, 200)  # warm up
        idle = status_latencies(stub, calls)
        _start_cpu_job(stub)
        busy = status_latencies(stub, calls)
        stub.Cancel(pb.CancelRequest(bean="CpuJob"), timeout=10)
    return idle, busy


class Loaded:
    """Figures of one ledger-under-load scenario."""

    def __init__(self, status: list[float], get_run: list[float], rate: float) -> None:
        self.status = status
        self.get_run = get_run
        self.asked_rate = rate
        self.started_rate = 0.0
        self.ended_rate = 0.0
        self.refused = 0
        self.behind = 0
        self.cost: TreeCpu | None = None  # CPU seconds over `cost_runs` short runs
        self.cost_runs = 0
        self.slow: Counter[str] | None = None  # callbacks over 2 ms during the calls, by kind
        self.slow_5ms = 0

    @property
    def p99(self) -> float:
        return max(summary(self.status)["p99"], summary(self.get_run)["p99"])


def _measure_loaded(
    ledger_url: str,
    calls: int,
    rate: float,
    loop_stats: bool = False,
    job_nice: int | None = None,
) -> Loaded:
    """GetStatus and GetRun (of the newest short run), alternately, `calls` of each, while the
    CPU-bound job runs and the load generator starts `rate` short runs a second."""
    with tempfile.TemporaryDirectory(prefix="sd-loopstat-") as tmp:
        stats = Path(tmp) / "loop" if loop_stats else None
        figures, pid, window = _run_loaded(ledger_url, calls, rate, stats, job_nice)
        if stats is not None:
            _read_loop_stats(figures, Path(f"{stats}.{pid}"), window)
    return figures


def _read_loop_stats(figures: Loaded, path: Path, window: tuple[float, float]) -> None:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return  # the daemon wrote none: printed as not measured
    during = [(took, kind) for end, took, kind in document["slow"] if window[0] <= end <= window[1]]
    figures.slow = Counter(kind for _, kind in during)
    figures.slow_5ms = sum(1 for took, _ in during if took > 0.005)


def _run_loaded(
    ledger_url: str, calls: int, rate: float, stats: Path | None, job_nice: int | None = None
) -> tuple[Loaded, int, tuple[float, float]]:
    ledger = f'[ledger]\nurl = "{ledger_url}"\n' if ledger_url else ""
    nice = f"job_nice = {job_nice}\n" if job_nice is not None else ""  # None: the default
    config = (
        '[daemon]\nexecution = "process"\nentry_points = false\n'
        + nice
        + 'packs = ["bench.packs:CPU", "bench.packs:SHORT"]\n'
        + ledger
    )
    with (
        daemon(config, loop_stats=stats) as (proc, address),
        grpc.insecure_channel(address) as channel,
        grpc.insecure_channel(address) as load_channel,
    ):
        stub = pb_grpc.ManagementStub(channel)
        status_latencies(stub, 200)  # warm up
        _start_cpu_job(stub)
        load = RunLoad(load_channel, rate)
        load.start()
        status: list[float] = []
        get_run: list[float] = []
        cost: TreeCpu | None = None
        window_began = time.monotonic()
        try:
            # What the runs cost in CPU, with no calls but theirs: a figure the machine's
            # other load does not move, unlike the latencies.
            first = load.wait_started(1, 30)
            before = tree_cpu(proc.pid)
            last = load.wait_started(first + COST_RUNS, 60)
            after = tree_cpu(proc.pid)
            if before is not None and after is not None:
                cost = after - before
            window_began = time.monotonic()
            for _ in range(calls):
                start = time.perf_counter()
                stub.GetStatus(pb.GetStatusRequest(), timeout=10)
                status.append((time.perf_counter() - start) * 1000)
                request = pb.GetRunRequest(run_id=load.latest_run_id)
                start = time.perf_counter()
                stub.GetRun(request, timeout=10)
                get_run.append((time.perf_counter() - start) * 1000)
        finally:
            window = (window_began, time.monotonic())
            window_end = time.time()
            result = load.stop()
        figures = Loaded(status, get_run, rate)
        seconds = result.seconds or float("nan")
        figures.started_rate = len(result.started) / seconds
        figures.ended_rate = ended_by(stub, result.started, window_end) / seconds
        figures.refused = result.refused
        figures.behind = result.behind
        figures.cost, figures.cost_runs = cost, last - first
        stub.Cancel(pb.CancelRequest(bean="CpuJob"), timeout=10)
    return figures, proc.pid, window


def _verdict(p99: float) -> str:
    return f"{'meets' if p99 <= TARGET_P99_MS else 'MISSES'} ({p99:.3f} ms)"


_SLOW_KINDS = ("preempted", "blocked", "both", "cpu")


def _print_loaded(name: str, figures: Loaded) -> None:
    print(row(f"GetStatus, {name} ledger, loaded", figures.status, "ms"))
    print(row(f"GetRun, {name} ledger, loaded", figures.get_run, "ms"))
    print(
        f"  short runs: asked {figures.asked_rate:g}/s, started {figures.started_rate:.1f}/s, "
        f"ended {figures.ended_rate:.1f}/s (refused {figures.refused}, late starts {figures.behind})"
    )
    if figures.slow is not None:
        kinds = ", ".join(f"{kind} {figures.slow[kind]}" for kind in _SLOW_KINDS)
        print(
            f"  event loop during the calls: {sum(figures.slow.values())} callbacks over 2 ms "
            f"({kinds}), {figures.slow_5ms} over 5 ms"
        )
    if figures.cost is None or not figures.cost_runs:
        print("  CPU per short run: not measured (no /proc)")
        return
    ms = {k: getattr(figures.cost, k) * 1000 / figures.cost_runs for k in TreeCpu.__slots__}
    print(
        f"  CPU per short run (over {figures.cost_runs}): daemon {ms['daemon']:.1f} ms, "
        f"job process {ms['reaped_jobs']:.1f} ms, fork server {ms['fork_server']:.1f} ms; "
        f"total {sum(ms.values()):.1f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=20.0, help="short runs started per second")
    parser.add_argument(
        "--loop-stats", action="store_true", help="time the loaded daemons' event-loop callbacks"
    )
    parser.add_argument(
        "--no-contrast",
        action="store_true",
        help="skip the PostgreSQL run with job_nice = 0 (jobs on equal terms with the daemon)",
    )
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
        f"  target p99 <= {TARGET_P99_MS:g} ms with the default (process) executor: {_verdict(p99)}"
    )
    print(f"  thread/process p99 ratio while busy: {results['thread']['p99'] / p99:.1f}x")

    print(
        f"ledger under load: GetStatus and GetRun alternately, {args.calls} calls each, while the "
        f"CPU-bound job runs and {args.rate:g} short runs/s start and end"
    )
    postgres: Loaded | None = None
    reason = unreachable_reason()
    if reason:
        print(f"  PostgreSQL ledger: skipped: {reason}")
    else:
        with fresh_database() as url:
            postgres = _measure_loaded(url, args.calls, args.rate, args.loop_stats)
        _print_loaded("PostgreSQL", postgres)
        print(f"  target GetStatus/GetRun p99 <= {TARGET_P99_MS:g} ms: {_verdict(postgres.p99)}")
        if not args.no_contrast:
            with fresh_database() as url:
                equal = _measure_loaded(url, args.calls, args.rate, args.loop_stats, job_nice=0)
            _print_loaded("PostgreSQL (job_nice = 0)", equal)
            print(
                f"  with jobs on equal terms: p99 {equal.p99:.3f} ms; the default (job_nice = 10)"
                f" gives {postgres.p99 / equal.p99:.2f}x that"
            )
    sqlite = _measure_loaded("", args.calls, args.rate, args.loop_stats)
    _print_loaded("SQLite", sqlite)
    print(f"  target GetStatus/GetRun p99 <= {TARGET_P99_MS:g} ms: {_verdict(sqlite.p99)}")
    if postgres is not None:
        print(f"  PostgreSQL/SQLite p99 ratio under load: {postgres.p99 / sqlite.p99:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
