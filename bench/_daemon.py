"""Start a real syncd daemon for a benchmark and stop it afterwards."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from syncd_api.v1 import management_pb2 as pb
from syncd_api.v1 import management_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[1]

# A benchmark measures the daemon, not the night's jobs: without this, a daemon started between
# 00:00 and 07:00 UTC (the catch-up window) would run every due job at once, against whatever
# source data the benchmark has (none), and its figures and checks would depend on the hour.
NO_CATCH_UP = "catch_up = false"


def bench_config(config_text: str = "") -> str:
    """`config_text` with start-up catch-up off, unless it says otherwise itself."""
    if re.search(r"^\s*catch_up\s*=", config_text, re.MULTILINE):
        return config_text  # the benchmark decides
    header = re.search(r"^\[scheduler\][ \t]*$", config_text, re.MULTILINE)
    if header:
        end = header.end()
        return f"{config_text[:end]}\n{NO_CATCH_UP}{config_text[end:]}"
    return f"{config_text.rstrip()}\n[scheduler]\n{NO_CATCH_UP}\n".lstrip()


@contextmanager
def daemon(
    config_text: str = "", timeout: float = 30.0, loop_stats: Path | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A daemon in a fresh state dir, catch-up off (see bench_config); yields (process,
    address) once it is ready. With `loop_stats`, its event loop's slow callbacks are written
    to `<loop_stats>.<pid>` when it exits (see bench/loopstat_site)."""
    with tempfile.TemporaryDirectory(prefix="sd-bench-") as tmp:
        state = Path(tmp) / "state"
        config = Path(tmp) / "syncd.toml"
        config.write_text(bench_config(config_text))
        env = dict(
            os.environ,
            SYNCD_STATE_DIR=str(state),
            PYTHONPATH=str(ROOT),
            SYNCD_HTTP_ADDRESS="127.0.0.1:0",
        )
        if loop_stats is not None:
            env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "bench" / "loopstat_site"), str(ROOT)])
            env["SYNCD_BENCH_LOOPSTAT"] = str(loop_stats)
        proc = subprocess.Popen(
            [sys.executable, "-m", "syncd", "--config", str(config), "serve"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            assert proc.stdout is not None
            sel = selectors.DefaultSelector()
            sel.register(proc.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + timeout
            buffer = b""
            address = None
            while address is None and time.monotonic() < deadline:
                if not sel.select(deadline - time.monotonic()):
                    break
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                buffer += chunk
                for line in buffer.split(b"\n")[:-1]:
                    try:
                        event = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    if event.get("event") == "daemon.started":
                        address = event["addresses"][0]
                buffer = buffer.rsplit(b"\n", 1)[-1]
            sel.close()
            if address is None:
                raise RuntimeError("the daemon did not start")
            # Keep draining stdout so the daemon never blocks on a full pipe.
            drain = subprocess.Popen(["cat"], stdin=proc.stdout, stdout=subprocess.DEVNULL)
            try:
                yield proc, address
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
                drain.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def status_latencies(stub: pb_grpc.ManagementStub, calls: int) -> list[float]:
    """`calls` sequential GetStatus calls; each one's latency in milliseconds."""
    out = []
    for _ in range(calls):
        start = time.perf_counter()
        stub.GetStatus(pb.GetStatusRequest(), timeout=10)
        out.append((time.perf_counter() - start) * 1000)
    return out
