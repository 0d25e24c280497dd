"""Cold-start latency of `syncctl status`, against a bare gRPC client and `supervisorctl status`.

Starts a real daemon (`python -m syncd --state-dir <tmp> serve`, start-up catch-up off so the
hour does not matter) and a real supervisord, then
times fresh processes, interleaved round by round so drift on a noisy machine hits all three
alike:

* `syncctl status` (the installed console script),
* a bare gRPC client: `python -c` importing grpc and the health stubs, one Health.Check,
* `supervisorctl status` against supervisord with one trivial program.

Each process's CPU time (user + system, from the kernel's accounting of the reaped child) is
printed beside its wall time: on a machine shared with other work it moves far less than the
wall time does, so the CPU ratio is the steadier comparison of the clients' own work.

Then it leaves the daemon idle and reads its RSS and CPU time from /proc. Targets (issue 2):
syncctl <= 1.10 x the bare client and <= supervisorctl; idle RSS <= 80 MB; idle CPU < 0.5 %.

    python -m bench.cli_latency [--runs 10] [--idle-seconds 30] [--check]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bench._daemon import bench_config
from bench._stats import percentile

START_TIMEOUT = 30.0  # seconds a server may take to come up
STOP_TIMEOUT = 15.0

SYNCCTL_VS_GRPC = 1.10
SYNCCTL_VS_SUPERVISORCTL = 1.0
RSS_LIMIT_MB = 80.0
CPU_LIMIT_PERCENT = 0.5

HEALTH_CHECK = """\
import sys
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
channel = grpc.insecure_channel(sys.argv[1])
reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
channel.close()
sys.exit(0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1)
"""

SUPERVISOR_CONF = """\
[unix_http_server]
file={dir}/supervisor.sock
chmod=0700

[supervisord]
nodaemon=true
logfile={dir}/supervisord.log
pidfile={dir}/supervisord.pid
childlogdir={dir}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{dir}/supervisor.sock

[program:idle]
command=sleep 1000000
startsecs=0
autorestart=false
"""


class BenchError(Exception):
    """Something the benchmark needs did not work; the message says what."""


@dataclass
class Sample:
    name: str
    argv: list[str]
    times: list[float]
    cpu: list[float] = field(default_factory=list)  # user + system seconds of each run


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: Sequence[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one fresh process, which must exit 0.

    The CPU time is what reaping this child added to RUSAGE_CHILDREN: the daemon and
    supervisord, also children, are reaped only at the end."""
    cpu_before = _children_cpu()
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    cpu = _children_cpu() - cpu_before
    if done.returncode != 0:
        raise BenchError(
            f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode(errors='replace')}"
        )
    return elapsed, cpu


class Daemon:
    """`python -m syncd serve` in a temp state dir; ready once it logs daemon.started."""

    def __init__(self, state_dir: Path, env: dict[str, str], config_text: str = "") -> None:
        self.state_dir = state_dir
        self.address = f"unix:{state_dir / 'run' / 'syncd.sock'}"
        self._ready = threading.Event()
        self._lines: list[str] = []
        # The default jobs, without start-up catch-up: whatever the hour, the daemon idles.
        config = state_dir.parent / "syncd-bench.toml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(bench_config(config_text), encoding="utf-8")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "syncd",
                "--config",
                str(config),
                "--state-dir",
                str(state_dir),
                "serve",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
        )
        # Drain the log on a thread: it signals readiness and keeps the pipe from filling up.
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str] | None) -> None:
        if stream is None:
            return
        for line in stream:
            self._lines.append(line)
            try:
                event = json.loads(line).get("event")
            except (ValueError, AttributeError):
                continue
            if event == "daemon.started":
                self._ready.set()
        self._ready.set()  # the daemon exited: wake the waiter, which checks poll()

    def wait_ready(self) -> None:
        if not self._ready.wait(START_TIMEOUT) or self.proc.poll() is not None:
            log = "".join(self._lines[-20:])
            raise BenchError(f"syncd did not start within {START_TIMEOUT:g}s:\n{log}")

    def stop(self) -> None:
        stop_process(self.proc)
        self._reader.join(STOP_TIMEOUT)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    @property
    def log_lines(self) -> list[str]:
        """What the daemon logged (all of it once stopped)."""
        return list(self._lines)


class Supervisor:
    """supervisord with one idle program, on a unix socket in the temp dir."""

    def __init__(self, directory: Path, bin_dir: Path, env: dict[str, str]) -> None:
        self.env = env
        self.conf = directory / "supervisord.conf"
        self.conf.write_text(SUPERVISOR_CONF.format(dir=directory), encoding="utf-8")
        self.ctl = [str(bin_dir / "supervisorctl"), "-c", str(self.conf), "status"]
        self.proc = subprocess.Popen(
            [str(bin_dir / "supervisord"), "-c", str(self.conf)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait_ready(self) -> None:
        # supervisorctl itself is the readiness probe: status exits 0 once `idle` is RUNNING.
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"supervisord exited with {self.proc.returncode}")
            done = subprocess.run(self.ctl, env=self.env, capture_output=True)
            if done.returncode == 0:
                return
        raise BenchError(f"supervisord did not start within {START_TIMEOUT:g}s")

    def stop(self) -> None:
        stop_process(self.proc)


def stop_process(proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    """SIGTERM, a bounded wait, then SIGKILL."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(STOP_TIMEOUT)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no VmRSS for pid {pid}")


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process, from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rpartition(")")[2].split()  # the command name may contain spaces
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of stat(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def report(
    samples: Sequence[Sample], out: Callable[[str], None]
) -> tuple[dict[str, float], dict[str, float]]:
    """Prints the wall and CPU tables; returns the medians of each, by sample name."""
    runs = len(samples[0].times)
    medians: dict[str, float] = {}
    cpu_medians: dict[str, float] = {}
    for title, attribute, into in (
        ("wall ms", "times", medians),
        ("CPU ms", "cpu", cpu_medians),  # user + system
    ):
        out(f"cold start, {runs} runs each ({title})".ljust(40) + "median      p90      min")
        for sample in samples:
            seconds: list[float] = getattr(sample, attribute)
            ms = [t * 1000 for t in seconds]
            into[sample.name] = statistics.median(ms)
            out(
                f"  {sample.name:<34} {statistics.median(ms):8.1f} {percentile(ms, 90):8.1f}"
                f" {min(ms):8.1f}"
            )
    return medians, cpu_medians


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cli_latency", description=__doc__)
    parser.add_argument("--runs", type=int, default=10, help="timed runs per command (>= 10)")
    parser.add_argument(
        "--idle-seconds", type=float, default=30.0, help="idle window for the daemon's CPU"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.idle_seconds <= 0:
        parser.error("--runs and --idle-seconds must be positive")

    bin_dir = Path(sys.executable).parent
    syncctl = bin_dir / "syncctl"
    for tool in (syncctl, bin_dir / "supervisord", bin_dir / "supervisorctl"):
        if not tool.exists():
            print(f"missing {tool} (install the project with its bench extra)", file=sys.stderr)
            return 2

    workdir = Path(tempfile.mkdtemp(prefix="syncd-bench-"))  # short: unix socket paths
    # Time the tools as installed: with bytecode caches (pip compiles a wheel's modules), so
    # PYTHONDONTWRITEBYTECODE is dropped and the warm-up call writes any missing ones.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SYNCD_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    daemon_env = dict(env, SYNCD_HTTP_ADDRESS="127.0.0.1:0")  # never clash on the default port
    daemon: Daemon | None = None
    supervisor: Supervisor | None = None
    try:
        daemon = Daemon(workdir / "state", daemon_env)
        supervisor = Supervisor(workdir, bin_dir, env)
        daemon.wait_ready()
        supervisor.wait_ready()
        samples = [
            Sample("syncctl status", [str(syncctl), "--address", daemon.address, "status"], []),
            Sample(
                "bare gRPC health check", [sys.executable, "-c", HEALTH_CHECK, daemon.address], []
            ),
            Sample("supervisorctl status", supervisor.ctl, []),
        ]
        for sample in samples:  # one untimed call each: page cache and .pyc files warm
            timed(sample.argv, env)
        for round_ in range(args.runs):
            # Rotate the order each round so no command always runs first.
            for sample in samples[round_ % 3 :] + samples[: round_ % 3]:
                wall, cpu = timed(sample.argv, env)
                sample.times.append(wall)
                sample.cpu.append(cpu)

        print()
        medians, cpu_medians = report(samples, print)
        to_grpc = medians["syncctl status"] / medians["bare gRPC health check"]
        to_supervisor = medians["syncctl status"] / medians["supervisorctl status"]
        cpu_to_grpc = cpu_medians["syncctl status"] / cpu_medians["bare gRPC health check"]
        print()
        print("ratios of medians")
        print(
            f"  syncctl / bare gRPC client        {to_grpc:6.2f}   "
            f"(target <= {SYNCCTL_VS_GRPC:.2f}: {verdict(to_grpc <= SYNCCTL_VS_GRPC)})"
        )
        print(
            f"  syncctl / supervisorctl           {to_supervisor:6.2f}   "
            f"(target <= {SYNCCTL_VS_SUPERVISORCTL:.2f}: "
            f"{verdict(to_supervisor <= SYNCCTL_VS_SUPERVISORCTL)})"
        )
        print(
            f"  syncctl / bare gRPC client, CPU   {cpu_to_grpc:6.2f}   "
            f"(the same target on CPU time: {verdict(cpu_to_grpc <= SYNCCTL_VS_GRPC)})"
        )

        pid = daemon.proc.pid
        before_cpu, before_wall = cpu_seconds(pid), time.monotonic()
        time.sleep(args.idle_seconds)  # the measurement window itself
        used, wall = cpu_seconds(pid) - before_cpu, time.monotonic() - before_wall
        cpu_percent = 100 * used / wall
        rss = rss_mb(pid)
        print()
        print(f"idle daemon (pid {pid}, {threads(pid)} threads)")
        print(
            f"  RSS                               {rss:6.1f} MB   "
            f"(target <= {RSS_LIMIT_MB:g} MB: {verdict(rss <= RSS_LIMIT_MB)})"
        )
        print(
            f"  CPU over {wall:.0f} s idle               {cpu_percent:6.3f} %    "
            f"(target < {CPU_LIMIT_PERCENT:g} %: {verdict(cpu_percent < CPU_LIMIT_PERCENT)})"
        )
        met = (
            to_grpc <= SYNCCTL_VS_GRPC
            and to_supervisor <= SYNCCTL_VS_SUPERVISORCTL
            and rss <= RSS_LIMIT_MB
            and cpu_percent < CPU_LIMIT_PERCENT
        )
        return 1 if args.check and not met else 0
    except BenchError as error:
        print(f"bench failed: {error}", file=sys.stderr)
        return 1
    finally:
        if supervisor is not None:
            supervisor.stop()
        if daemon is not None:
            daemon.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
