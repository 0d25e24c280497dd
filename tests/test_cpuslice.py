"""A thread's CPU time slice (daemon.cpu_slice_us): asked for, inherited by the threads it
starts, given back; job threads run with the kernel's default."""

from __future__ import annotations

import asyncio

from syncd.cpuslice import set_thread_slice, thread_slice_ns
from syncd.execution.executors import Ending, ThreadExecutor
from syncd.job import JobSpec, RunContext
from tests.executions import execute
from tests.slices import in_thread, kernel_default_slice


def test_a_thread_takes_the_slice_it_asks_for_and_its_new_threads_inherit_it() -> None:
    default = kernel_default_slice()

    def ask() -> tuple[int | None, int | None, bool, int | None]:
        set_thread_slice(250)
        inherited = in_thread(thread_slice_ns)
        own = thread_slice_ns()
        given_back = set_thread_slice(0)
        return own, inherited, given_back, thread_slice_ns()

    assert in_thread(ask) == (250_000, 250_000, True, default)


def test_a_job_thread_runs_with_the_kernels_default_not_the_daemons_slice() -> None:
    default = kernel_default_slice()
    seen: list[int | None] = []

    def body(_ctx: RunContext) -> None:
        seen.append(thread_slice_ns())

    spec = JobSpec(name="SliceJob", trigger_operation="sliceJob", body=body, description="")

    async def run() -> Ending:
        return (await execute(ThreadExecutor(), spec)).ending

    def as_the_daemon() -> Ending:
        set_thread_slice(300)  # as `syncd serve` does before its loop starts
        return asyncio.run(run())

    assert in_thread(as_the_daemon) is Ending.SUCCEEDED
    assert seen == [default]
