"""The forced exit (a second stop signal): what is still running is recorded and let go of,
each step bounded, before the process leaves with `os._exit`."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from syncd.enums import RunOutcome, RunState
from syncd.execution.executors import Executor, ProcessExecutor
from syncd.execution.run import Run
from syncd.ledger.recorder import LedgerRecorder

if TYPE_CHECKING:  # cluster mode only; imported there when configured
    from syncd.cluster import ClusterRunClaim

FORCED_EXIT_WRITE_S = 2.0  # how long a forced exit waits for the ledger to take the ends
FORCED_EXIT_RELEASE_S = 2.0  # and then for the cluster database to take its claims back


def forced_exit_ends(
    runs: Iterable[Run],
    now: datetime,
    recorder: LedgerRecorder,
    cluster: ClusterRunClaim | None,
    executors: Iterable[Executor],
) -> dict[str, int | None]:
    """Record `runs` cancelled and, in a cluster, give their claims back; the log fields."""
    ends = [
        run.update(
            state=RunState.FINISHED,
            outcome=RunOutcome.CANCELLED,
            ended_at=now,
            error_type="ForcedExit",
            error_message="the daemon was stopped by a second signal",
        )
        for run in runs
    ]
    # Through the one writer, bounded: a locked or lost ledger cannot hold the exit up
    # (what stays unwritten is finished `interrupted` at the next start).
    unwritten = recorder.flush_blocking(ends, timeout=FORCED_EXIT_WRITE_S)
    released = kept = 0
    if cluster is not None and not unwritten:
        # The ends are recorded: give the claims up so another replica may run the jobs now,
        # not once the leases expire — after this daemon's job processes are gone (a thread's
        # body ends with the process, just after). A run whose end could not be written keeps
        # its lease: its expiry records it interrupted elsewhere.
        for executor in executors:
            if isinstance(executor, ProcessExecutor):
                executor.end_all()
        released, kept = cluster.release_all_blocking(FORCED_EXIT_RELEASE_S)
    return {
        "unwritten": unwritten or None,
        "claims_released": released or None,
        "claims_kept": kept or None,
    }
