"""A real daemon process under a barrage of refused calls carrying 100 KB each: its memory stays
bounded, its log lines stay short, it starts no run, and `syncctl logs` still reads the tail.

(The issue's numbers: 150 such calls used to grow the daemon from 74 MiB to 1,047 MiB, and then
`syncctl logs -n 50` failed with "message larger than max".)
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import grpc
import pytest

from syncd_api.v1 import management_pb2 as pb
from syncd_api.v1 import management_pb2_grpc as pb_grpc
from tests.daemon_process import BOUND, daemon_process, e2e_config

pytestmark = pytest.mark.e2e

SYNCCTL = Path(sys.executable).with_name("syncctl")
CALLS = 1000
SIZE = 100 * 1024
RSS_LIMIT_MIB = 150
LINE_LIMIT = 16 * 1024  # what the daemon's own log lines may reach, with every field cut


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _requests() -> Iterator[pb.InvokeRequest]:
    """Refused calls of ~100 KB: a huge bean name, parameter name, value and JSON in turn."""
    big = "é" * (SIZE // 2)  # two bytes each in UTF-8: non-ASCII, as in the report
    for n in range(CALLS):
        match n % 4:
            case 0:
                yield pb.InvokeRequest(bean=big + str(n), operation="run")
            case 1:
                named = {big + str(n): pb.Value(string_value="1")}
                yield pb.InvokeRequest(bean="QuickJob", operation="run", named_arguments=named)
            case 2:
                named = {"rows": pb.Value(string_value=big + str(n))}
                yield pb.InvokeRequest(bean="QuickJob", operation="run", named_arguments=named)
            case _:
                named = {"row": pb.Value(json_value="[" * SIZE)}
                yield pb.InvokeRequest(bean="FailingJob", operation="run", named_arguments=named)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc/<pid>/status")
def test_refused_calls_keep_the_daemon_small(short_tmp: Path) -> None:
    with daemon_process(short_tmp / "state", e2e_config(short_tmp)) as process:
        before = rss_mib(process.proc.pid)
        codes: dict[str, int] = {}
        with grpc.insecure_channel(process.address) as channel:
            stub = pb_grpc.ManagementStub(channel)
            for request in _requests():
                try:
                    stub.Invoke(request, timeout=BOUND)
                except grpc.RpcError as exc:
                    call = cast(Any, exc)
                    assert len(call.details() or "") < 1000
                    name = call.code().name
                    codes[name] = codes.get(name, 0) + 1
                else:
                    raise AssertionError(f"accepted: {str(request)[:200]}")
            after = rss_mib(process.proc.pid)
            history = stub.History(pb.HistoryRequest(limit=100), timeout=BOUND)
        assert codes == {"NOT_FOUND": CALLS // 4, "INVALID_ARGUMENT": CALLS - CALLS // 4}
        assert not history.runs, "a refused call started a run"
        assert after <= RSS_LIMIT_MIB, f"RSS {before:.0f} MiB before, {after:.0f} MiB after"

        # The tail holds those refusals, and the operator can still read it.
        env = dict(os.environ, SYNCD_STATE_DIR=str(process.state_dir))
        env.pop("SYNCD_ADDRESS", None)
        logs = subprocess.run(
            [str(SYNCCTL), "logs", "-n", "50"],
            capture_output=True,
            text=True,
            env=env,
            timeout=BOUND,
            check=False,
        )
        assert logs.returncode == 0, logs.stderr
        assert "rpc.refused" in logs.stdout

        process.stop()
        process.close()
        refused = [line for line in process.lines if line.get("event") == "rpc.refused"]
        assert len(process.lines) >= CALLS and process.longest <= LINE_LIMIT, (
            len(process.lines),
            process.longest,
        )
        assert refused and all(len(line["error"]) < 1000 for line in refused)


def test_syncctl_names_a_non_ascii_argument_clearly(short_tmp: Path) -> None:
    """`--arg séconds=1` used to exit 1 with gRPC's "Invalid metadata": now exit 5, named."""
    with daemon_process(short_tmp / "state", e2e_config(short_tmp)) as process:
        env = dict(os.environ, SYNCD_STATE_DIR=str(process.state_dir))
        env.pop("SYNCD_ADDRESS", None)
        for name in ("séconds", "x" * 20_000):
            ran = subprocess.run(
                [str(SYNCCTL), "run", "QuickJob", "run", "--arg", f"{name}=1"],
                capture_output=True,
                text=True,
                env=env,
                timeout=BOUND,
                check=False,
            )
            assert ran.returncode == 5, ran.stderr
            assert f"no parameter named '{name[:200]}" in ran.stderr
            assert len(ran.stderr) < 1000
        process.stop()
