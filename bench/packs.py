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


def chatter(ctx: RunContext) -> None:
    """Logs `lines` lines, each carrying the wall time it was logged at; `pace` lines per ms
    budget is not enforced: the follower measures what arrives."""
    import time

    lines = int(ctx.args.get("lines") or 1000)  # type: ignore[arg-type]
    gap = float(ctx.args.get("gap") or 0.0)  # type: ignore[arg-type]
    for n in range(lines):
        ctx.log.info("bench.line", n=n, sent=time.time())
        if gap:
            time.sleep(gap)  # pacing for the latency measurement, inside the bench job
    ctx.log.info("bench.done", n=lines)


def flood(ctx: RunContext) -> None:
    """Logs numbered lines as fast as it can until cancelled: the worst case for the daemon,
    which renders, writes and tails every one of them."""
    n = 0
    while not ctx.is_cancelled():
        for _ in range(1000):
            ctx.log.info("bench.flood", n=n)
            n += 1
    ctx.raise_if_cancelled()


def _log_jobs(_ctx: PackContext) -> list[JobSpec]:
    from syncd.beans.model import Parameter
    from syncd.values import ValueType

    return [
        JobSpec(
            name="ChatterJob",
            trigger_operation="chatterJob",
            body=chatter,
            description="Logs lines for the tail benchmark.",
            parameters=(
                Parameter(name="lines", type=ValueType.INT, default=1000),
                Parameter(name="gap", type=ValueType.FLOAT, default=0.0),
            ),
        ),
        JobSpec(
            name="FloodJob",
            trigger_operation="floodJob",
            body=flood,
            description="Logs flat out until cancelled, for the log flood benchmark.",
        ),
    ]


LOGS = JobPack(name="benchlogs", build=_log_jobs, description="Log benchmark jobs.")


# Enough beans that 20 starts a second never wait on one still finishing: a bean runs once at a
# time, and a run's start and end each take a ledger round trip and a child process.
SHORT_BEANS = 8


def blink(ctx: RunContext) -> None:
    """A run that starts and ends at once: the load is the run's bookkeeping, not its work."""
    ctx.add_rows(read=1)


def _short_jobs(_ctx: PackContext) -> list[JobSpec]:
    return [
        JobSpec(
            name=f"ShortJob{n}",
            trigger_operation=f"shortJob{n}",
            body=blink,
            description="Starts and ends at once.",
        )
        for n in range(SHORT_BEANS)
    ]


SHORT = JobPack(name="benchshort", build=_short_jobs, description="Short benchmark jobs.")


def hold(ctx: RunContext) -> None:
    """Runs until cancelled (or its replica dies): the run a failover takes over."""
    while not ctx.wait_cancelled(3600):
        pass
    ctx.raise_if_cancelled()


def _cluster_jobs(_ctx: PackContext) -> list[JobSpec]:
    return [
        JobSpec(
            name="BlinkJob", trigger_operation="blinkJob", body=blink, description="Ends at once."
        ),
        JobSpec(
            name="HoldJob",
            trigger_operation="holdJob",
            body=hold,
            description="Runs until cancelled.",
        ),
    ]


CLUSTER = JobPack(name="benchcluster", build=_cluster_jobs, description="Cluster benchmark jobs.")
