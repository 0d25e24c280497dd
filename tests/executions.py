"""A run as the run service hands it to an executor, for tests that drive an executor alone."""

from __future__ import annotations

import asyncio
import threading
import uuid

from syncd.enums import Trigger
from syncd.execution.executors import Execution, Executor, Reporter, Result
from syncd.job import JobSpec

BOUND = 30.0


class QuietReporter:
    """Progress and rows go nowhere."""

    def progress(self, done: int, total: int) -> None:
        pass

    def rows(self, read: int, written: int) -> None:
        pass


def execution(spec: JobSpec, run_id: str = "", reporter: Reporter | None = None) -> Execution:
    """A manual run of `spec`; made on the event loop that will run it (its cancel signal is
    that loop's)."""
    return Execution(
        spec=spec,
        run_id=run_id or f"r-{uuid.uuid4().hex}",
        trigger=Trigger.MANUAL,
        arguments={},
        cancel_requested=threading.Event(),
        cancel_signal=asyncio.Event(),
        cancel_grace=BOUND,
        reporter=reporter or QuietReporter(),
    )


async def execute(executor: Executor, spec: JobSpec, run_id: str = "") -> Result:
    """Run `spec` to its end on `executor`, within BOUND."""
    async with asyncio.timeout(BOUND):
        return await executor.execute(execution(spec, run_id))
