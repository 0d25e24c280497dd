"""Benchmarks only: why a benchmarked daemon's event loop was slow, callback by callback.

Python imports this at start-up in every process whose PYTHONPATH holds this folder, which
`bench._daemon.daemon(loop_stats=...)` arranges. When SYNCD_BENCH_LOOPSTAT names a file, every
asyncio callback is timed, and each one over 2 ms is kept with the moment it ended and what its
thread's own resource usage says it was doing meanwhile: *preempted* (involuntary context
switches: ready to run, but no core was free), *blocked* (voluntary ones: the interpreter lock, a
lock, I/O), both, or *cpu* (running all along). At exit each process that ran a loop writes
them to that file name with its pid appended (the daemon's fork server and job processes import
this too, and mostly run none).
"""

from __future__ import annotations

import os
from typing import Any

SLOW_S = 0.002


def _install(path: str) -> None:
    import asyncio.events
    import atexit
    import json
    import resource
    import time

    slow: list[tuple[float, float, str]] = []  # (monotonic end, seconds, kind)
    ran = [0]
    original = asyncio.events.Handle._run

    def timed(self: asyncio.events.Handle) -> None:
        began = time.perf_counter()
        before = resource.getrusage(resource.RUSAGE_THREAD)
        try:
            original(self)
        finally:
            took = time.perf_counter() - began
            ran[0] += 1
            if took > SLOW_S:
                after = resource.getrusage(resource.RUSAGE_THREAD)
                blocked = after.ru_nvcsw > before.ru_nvcsw
                preempted = after.ru_nivcsw > before.ru_nivcsw
                kind = {
                    (False, False): "cpu",
                    (True, False): "blocked",
                    (False, True): "preempted",
                    (True, True): "both",
                }[(blocked, preempted)]
                slow.append((time.monotonic(), took, kind))

    def dump() -> None:
        if not ran[0]:
            return
        document: dict[str, Any] = {"callbacks": ran[0], "slow": slow}
        with open(f"{path}.{os.getpid()}", "w") as out:
            json.dump(document, out)

    asyncio.events.Handle._run = timed  # type: ignore[method-assign]
    atexit.register(dump)


_PATH = os.environ.get("SYNCD_BENCH_LOOPSTAT")
if _PATH:
    _install(_PATH)
