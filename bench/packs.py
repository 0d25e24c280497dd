"""Job packs used only by benchmarks."""

from __future__ import annotations

from syncd.job import JobPack, JobSpec, PackContext, RunContext


def burn(ctx: RunContext) -> None:
    """Pure-Python CPU work until cancelled: the worst case for a GIL-sharing daemon."""
    done = 0
    while not ctx.is_cancelled():
        sum(i * i for i in range(20_000))
        done += 1
        if done % 50 == 0:
            ctx.add_rows(read=50)
    ctx.raise_if_cancelled()


def _jobs(_ctx: PackContext) -> list[JobSpec]:
    return [
        JobSpec(name="CpuJob", trigger_operation="cpuJob", body=burn, description="Burns CPU."),
    ]


CPU = JobPack(name="bench", build=_jobs, description="Benchmark jobs.")
