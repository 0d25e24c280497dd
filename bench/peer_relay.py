"""The cost of peer identity on the control socket: the SO_PEERCRED relay in front of gRPC.

One event loop, as in the daemon: a grpc.aio server with the standard health service on a
unix socket, and the relay (`syncd.security.PeerRelay`) accepting on a second socket and
splicing to it. A client process makes warm Health.Check calls on one channel, alternating
blocks of calls direct and through the relay, and a fresh-channel call (connect + one call)
each way; this prints the latencies and the ratios relay / direct.

    python -m bench.peer_relay [--calls 2000] [--fresh 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2_grpc

from bench._stats import row, summary
from syncd.security import PeerRelay

CLIENT = """\
import json, sys, time
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
direct, relayed, calls, fresh = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
out = {"warm_direct": [], "warm_relay": [], "fresh_direct": [], "fresh_relay": []}
channels = {k: grpc.insecure_channel(a) for k, a in (("direct", direct), ("relay", relayed))}
stubs = {k: health_pb2_grpc.HealthStub(c) for k, c in channels.items()}
request = health_pb2.HealthCheckRequest()
for stub in stubs.values():
    stub.Check(request, timeout=10)  # connect first: warm means warm
block = 100
for start in range(0, calls, block):
    for key in ("direct", "relay") if (start // block) % 2 == 0 else ("relay", "direct"):
        for _ in range(block):
            t = time.perf_counter()
            stubs[key].Check(request, timeout=10)
            out["warm_" + key].append(time.perf_counter() - t)
for i in range(fresh):
    for key, address in (("direct", direct), ("relay", relayed))[:: 1 if i % 2 == 0 else -1]:
        t = time.perf_counter()
        with grpc.insecure_channel(address) as channel:
            health_pb2_grpc.HealthStub(channel).Check(request, timeout=10)
        out["fresh_" + key].append(time.perf_counter() - t)
print(json.dumps(out))
"""


async def measure(calls: int, fresh: int) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory(prefix="relay-") as tmp:
        internal, public = Path(tmp) / "internal.sock", Path(tmp) / "public.sock"
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)  # type: ignore[attr-defined]
        server.add_insecure_port(f"unix:{internal}")
        await server.start()
        relay = PeerRelay(public, internal)
        await relay.start()
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", CLIENT, f"unix:{internal}", f"unix:{public}",
                str(calls), str(fresh), stdout=subprocess.PIPE,
            )  # fmt: skip
            out, _ = await proc.communicate()
            assert proc.returncode == 0, "the client failed"
            result: dict[str, list[float]] = json.loads(out)
            return result
        finally:
            await relay.stop()
            await server.stop(None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.peer_relay")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--fresh", type=int, default=100)
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args.calls, args.fresh))
    ms = {k: [v * 1e3 for v in values] for k, values in result.items()}
    for key in ("warm_direct", "warm_relay", "fresh_direct", "fresh_relay"):
        print(row(key.replace("_", " "), ms[key], "ms"))
    for kind in ("warm", "fresh"):
        direct, relayed = summary(ms[f"{kind}_direct"]), summary(ms[f"{kind}_relay"])
        print(
            f"{kind}: relay/direct p50 {relayed['p50'] / direct['p50']:.2f}x"
            f" (+{(relayed['p50'] - direct['p50']) * 1e3:.0f} us),"
            f" p99 {relayed['p99'] / direct['p99']:.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
