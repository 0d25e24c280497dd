"""Jobs for tests. Their bodies do real (small) work and synchronise on events, never sleeps.

In-process tests hold a `Gates` object to release or observe a body. Subprocess tests use the
`e2e` pack, whose bodies block on a FIFO in a directory named by the pack's settings.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from syncd.beans.model import Parameter
from syncd.config import Settings
from syncd.job import JobPack, JobSpec, PackContext, RunContext
from syncd.values import Value, ValueType

BOUND = 30.0  # every wait in a body is bounded, so a broken test cannot hang the run


@dataclass
class Gates:
    """Events shared between a test and the bodies it starts."""

    started: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    body_threads: list[str] = field(default_factory=list)


def gated_body(ctx: RunContext) -> None:
    """Counts to `rows`, then waits for the test to release it (or for cancellation)."""
    gates: Gates = ctx.settings
    gates.body_threads.append(threading.current_thread().name)
    rows = _count(ctx, "rows", 0)
    for done in range(1, rows + 1):
        ctx.add_rows(read=1, written=1)
        ctx.report_progress(done, rows)
    gates.started.set()
    while not gates.release.is_set():
        if ctx.wait_cancelled(0.05):
            ctx.raise_if_cancelled()
    ctx.log.info("test.gated.released")


def stubborn_body(ctx: RunContext) -> None:
    """Ignores cancellation: only the test's release ends it."""
    gates: Gates = ctx.settings
    gates.started.set()
    gates.release.wait(BOUND)


def failing_body(ctx: RunContext) -> None:
    raise ValueError(f"bad input row {ctx.args.get('row')}")


def quick_body(ctx: RunContext) -> None:
    total = _count(ctx, "rows", 0) or 3
    for done in range(1, total + 1):
        ctx.add_rows(read=1)
        ctx.report_progress(done, total)


def _count(ctx: RunContext, name: str, default: int) -> int:
    value = ctx.args.get(name)
    return value if isinstance(value, int) else default


def _positive(value: Value) -> Value:
    if isinstance(value, int) and value < 0:
        raise ValueError("must not be negative")
    return value


ROWS = Parameter(
    name="rows", type=ValueType.INT, description="rows to process", default=0, validate=_positive
)


def gated_job(gates: Gates, name: str = "GatedJob") -> JobSpec:
    return JobSpec(
        name=name,
        trigger_operation="gatedJob",
        body=gated_body,
        description="Waits for the test.",
        parameters=(ROWS,),
        job_key="gatedJob",
        settings=gates,
    )


def stubborn_job(gates: Gates) -> JobSpec:
    return JobSpec(
        name="StubbornJob",
        trigger_operation="stubbornJob",
        body=stubborn_body,
        description="Ignores cancellation.",
        settings=gates,
    )


FAILING = JobSpec(
    name="FailingJob",
    trigger_operation="failingJob",
    body=failing_body,
    description="Always fails.",
    parameters=(Parameter(name="row", type=ValueType.INT, default=7),),
)
QUICK = JobSpec(
    name="QuickJob",
    trigger_operation="quickJob",
    body=quick_body,
    description="Counts a few rows.",
    parameters=(ROWS,),
)


def ignoring_body(ctx: RunContext) -> None:
    """Ignores cancellation entirely (module-level, so it can run in a child process)."""
    ctx.report_progress(0, 1)
    threading.Event().wait(BOUND)


def spinning_body(ctx: RunContext) -> None:
    """Burns CPU until cancelled, checking at each step (a cooperative CPU-bound job)."""
    total = 0
    while not ctx.is_cancelled():
        total += sum(i * i for i in range(10_000))
        ctx.add_rows(read=1)
    ctx.raise_if_cancelled()


def chatty_body(ctx: RunContext) -> None:
    """Logs from the job's own process, and a library warning too."""
    import logging
    import os

    ctx.log.info("test.chatty", pid_differs=os.getpid() != ctx.settings)
    logging.getLogger("some.library").warning("pool %s recycled", 3)


def leveled_body(ctx: RunContext) -> None:
    """One line at debug and one at info, from the job's own process (with its niceness)."""
    ctx.log.debug("test.leveled", level="debug")
    ctx.log.info("test.leveled", level="info", nice=os.nice(0))


def shaped_body(ctx: RunContext) -> None:
    """Lines whose shape the daemon's chain used to give them: a field over the limit, an
    exception, a library warning, a stack."""
    import logging

    ctx.log.info("test.shaped", big="x" * 5_000, n=7, nested={"a": [1, 2]})
    try:
        raise ValueError("shaped failure")
    except ValueError:
        ctx.log.exception("test.failed")
    logging.getLogger("some.library").warning("pool %s recycled", 3)
    ctx.log.info("test.stack", stack_info=True)


FLOOD_LINES = 3_000


def flood_body(ctx: RunContext) -> None:
    """Logs FLOOD_LINES numbered lines as fast as it can, from the job's own process."""
    for n in range(FLOOD_LINES):
        ctx.log.info("test.flood", n=n)


IGNORING = JobSpec(
    name="IgnoringJob",
    trigger_operation="ignoringJob",
    body=ignoring_body,
    description="Ignores cancel.",
)
CHATTY = JobSpec(
    name="ChattyJob",
    trigger_operation="chattyJob",
    body=chatty_body,
    description="Logs.",
    settings=os.getpid(),
)
LEVELED = JobSpec(
    name="LeveledJob",
    trigger_operation="leveledJob",
    body=leveled_body,
    description="Logs at two levels.",
)
SHAPED = JobSpec(
    name="ShapedJob",
    trigger_operation="shapedJob",
    body=shaped_body,
    description="Logs lines of every shape.",
)
FLOOD = JobSpec(
    name="FloodJob",
    trigger_operation="floodJob",
    body=flood_body,
    description="Logs flat out.",
)
SPINNING = JobSpec(
    name="SpinningJob",
    trigger_operation="spinningJob",
    body=spinning_body,
    description="Burns CPU.",
)


def chain_jobs(gates: Gates) -> list[JobSpec]:
    """A small dependency graph: Owner, Emp → Train → Index; Failing → Index too."""

    def spec(name: str, at: str, after: tuple[str, ...] = (), body: object = quick_body) -> JobSpec:
        return JobSpec(
            name=name,
            trigger_operation=name[0].lower() + name[1:],
            body=body,  # type: ignore[arg-type]
            description=name,
            parameters=(ROWS,),
            default_at=at,
            default_after=after,
            settings=gates,
        )

    return [
        spec("Owner", "00:05"),
        spec("Emp", "00:09"),
        spec("Train", "00:29", ("Emp",)),
        spec("Index", "01:29", ("Owner", "Train")),
    ]


# --- the subprocess pack -------------------------------------------------------------------


class E2ESettings(Settings, frozen=True):
    gate_dir: str = ""


def fifo_body(ctx: RunContext) -> None:
    """Blocks until the test writes to `<gate_dir>/<bean>.fifo` (a FIFO), then succeeds."""
    settings: E2ESettings = ctx.settings
    fifo = Path(settings.gate_dir) / f"{ctx.bean}.fifo"
    ctx.report_progress(0, 1)
    with fifo.open("rb") as gate:  # open blocks until the test opens it for writing
        gate.read()
    ctx.add_rows(read=1, written=1)
    ctx.report_progress(1, 1)


# A double-forked daemon: the middle process makes a new session, forks and exits, so the
# grandchild is re-parented and in no process group of the job. It prints its pid, then execs.
_DAEMONISE = """
import os
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.write(1, f"{os.getpid()}\\n".encode())
        os.dup2(os.open(os.devnull, os.O_RDWR), 1)
        os.execvp("sleep", ["sleep", "65"])
    os._exit(0)
os.wait()
"""


def spawning_body(ctx: RunContext) -> None:
    """Starts three `sleep 65` processes — a plain child, one in its own session (setsid) and a
    double-forked daemon — logs their pids, then ends at once (`finish`), waits for cancel, or,
    as StubbornSpawningJob, ignores cancel."""
    import subprocess
    import sys

    plain = subprocess.Popen(["sleep", "65"])
    setsid = subprocess.Popen(["sleep", "65"], start_new_session=True)
    with subprocess.Popen([sys.executable, "-c", _DAEMONISE], stdout=subprocess.PIPE) as middle:
        assert middle.stdout is not None
        daemonised = int(middle.stdout.readline())
    ctx.log.info(
        "test.spawned",
        job_pid=os.getpid(),
        plain=plain.pid,
        setsid=setsid.pid,
        daemonised=daemonised,
    )
    if ctx.args.get("finish"):
        return
    if ctx.bean.startswith("Stubborn"):
        threading.Event().wait(BOUND)
        return
    ctx.wait_cancelled(BOUND)
    ctx.raise_if_cancelled()


def _e2e_jobs(pctx: PackContext) -> list[JobSpec]:
    settings: E2ESettings = pctx.settings
    if settings.gate_dir:
        for name in ("FifoJob", "OtherFifoJob"):
            fifo = Path(settings.gate_dir) / f"{name}.fifo"
            if not fifo.exists():
                os.mkfifo(fifo)
    jobs = [
        JobSpec(
            name=name,
            trigger_operation=name[0].lower() + name[1:],
            body=fifo_body,
            description="Waits on its FIFO.",
            settings=settings,
        )
        for name in ("FifoJob", "OtherFifoJob")
    ]
    return [*jobs, FAILING, QUICK]


E2E = JobPack(name="e2e", build=_e2e_jobs, settings_type=E2ESettings, description="Test jobs.")


def _spawning_jobs(_pctx: PackContext) -> list[JobSpec]:
    return [
        JobSpec(
            name=name,
            trigger_operation=name[0].lower() + name[1:],
            body=spawning_body,
            description="Starts grandchildren that try to escape.",
            parameters=(Parameter(name="finish", type=ValueType.BOOL, default=False),),
        )
        for name in ("SpawningJob", "StubbornSpawningJob")
    ]


# Loaded beside E2E by the process-tree tests only, so other tests' bean lists stay as they are.
SPAWNING = JobPack(
    name="spawning", build=_spawning_jobs, description="Jobs whose processes try to escape."
)


def main_probe_body(ctx: RunContext) -> None:
    """Logs what of the daemon's command line the job's process holds: multiprocessing runs a
    script main again in each child (as a module named `__mp_main__`) unless it is named as a
    module."""
    import sys

    ctx.log.info(
        "test.main_probe",
        main_run_again=sys.modules["__main__"].__name__ == "__mp_main__",
        cli_loaded="syncd.__main__" in sys.modules,
        slice_ns=sched_slice_ns("/proc/thread-self/sched"),
    )


def sched_slice_ns(path: str) -> int | None:
    """A thread's CPU time slice as /proc shows it (`se.slice`), or None (no such line)."""
    try:
        with open(path) as sched:
            lines = sched.read().splitlines()
    except OSError:
        return None
    for line in lines:
        name, _, value = line.partition(":")
        if name.strip() == "se.slice":
            return int(value.strip())
    return None


MAIN_PROBE = JobPack(
    name="mainprobe",
    build=lambda _pctx: [
        JobSpec(
            name="MainProbeJob",
            trigger_operation="mainProbeJob",
            body=main_probe_body,
            description="Says what its process holds of the daemon's (command line, slice).",
        )
    ],
    description="A job that reports its process's main module.",
)


# --- syncctl's in-process tests -------------------------------------------------------------


@dataclass
class Held:
    """A job the test holds: `release` lets its runs end (set by default, so a run ends at
    once); each run "takes" `takes` seconds of the test's wall clock (`advance`), then
    succeeds or, with `fails`, fails as a bad input row would. A `stubborn` run ignores
    cancellation (only the release ends it)."""

    advance: Callable[[float], None]
    fails: bool = False
    stubborn: bool = False
    release: threading.Event = field(default_factory=threading.Event)
    started: threading.Event = field(default_factory=threading.Event)
    takes: float = 75.0

    def __post_init__(self) -> None:
        self.release.set()


def held_body(ctx: RunContext) -> None:
    """Counts to `rows`, waits for the test's release (or a cancel), then ends as `Held` says."""
    held: Held = ctx.settings
    rows = _count(ctx, "rows", 0)
    for done in range(1, rows + 1):
        ctx.add_rows(read=1)
        ctx.report_progress(done, rows)
    held.started.set()
    if held.stubborn:
        held.release.wait(BOUND)
    while not held.release.is_set():
        if ctx.wait_cancelled(0.05):
            ctx.raise_if_cancelled()
    held.advance(held.takes)
    if held.fails:
        raise ValueError("bad input row 7")


def held_job(held: Held, name: str, description: str = "") -> JobSpec:
    """A job named `name` (trigger `<name>Job`, lower-cased) whose runs the test holds."""
    return JobSpec(
        name=name,
        trigger_operation=f"{name[0].lower()}{name[1:]}Job",
        body=held_body,
        description=description,
        parameters=(ROWS,),
        settings=held,
    )
