"""Run the benchmarks: `python -m bench [name ...]` (all of them when none is named).

Each prints its figures and the ratios against its named baselines.
"""

from __future__ import annotations

import importlib
import sys

BENCHES = [
    "cli_latency",
    "peer_relay",
    "scheduler_lateness",
    "control_plane",
    "log_flood",
    "nightly_chain",
    "cluster",
    "replication",
]


def main(argv: list[str] | None = None) -> int:
    names = (sys.argv[1:] if argv is None else argv) or BENCHES
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        print(
            f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHES)}",
            file=sys.stderr,
        )
        return 2
    status = 0
    for name in names:
        print(f"\n=== bench/{name} ===", flush=True)
        module = importlib.import_module(f"bench.{name}")
        status |= module.main([])
    return status


if __name__ == "__main__":
    raise SystemExit(main())
