"""Where job bodies execute: a child process (the default: killable, no shared GIL) or a thread.

Both watch the run's cancellation: cooperative first (the body sees `ctx.is_cancelled()`), then,
after `cancel_grace`, a child process is killed with every process it started, however deep; a
thread cannot be killed and is abandoned (it is a daemon thread, so it cannot hold the process
open).

No process a job starts outlives its run or its daemon: the job's process is a subreaper (orphans
of its descendants re-parent to it, not to init), ends its whole tree when its body returns and
when the daemon dies (its pipe to the daemon reaches end-of-file, whatever signal killed the
daemon), and keeps a record of its tree in the state directory for the next daemon (_jobtrees).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import enum
import logging
import multiprocessing
import os
import signal
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

import structlog

from syncd.cpuslice import set_thread_slice
from syncd.enums import Trigger
from syncd.errors import RunCancelled
from syncd.execution import _joblog, _jobtrees, _niceness, _proctree
from syncd.execution._jobtrees import WATCH_INTERVAL
from syncd.job import JobSpec, RunContext
from syncd.observability.logs import relay_lines
from syncd.values import Value


class Ending(enum.Enum):
    """How a body's execution ended, before the coordinator maps it to an outcome."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"  # the body stopped cooperatively
    KILLED = "killed"  # a child process ignored cancellation and was killed
    ABANDONED = "abandoned"  # a thread ignored cancellation and was left behind


@dataclass(frozen=True, slots=True)
class Result:
    ending: Ending
    error_type: str = ""
    error_message: str = ""


class Reporter(Protocol):
    """What an executor tells the coordinator while a body runs (from any thread)."""

    def progress(self, done: int, total: int) -> None: ...
    def rows(self, read: int, written: int) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Execution:
    """One body to execute and the signals around it."""

    spec: JobSpec
    run_id: str
    fencing_token: int | None = None  # cluster mode: the claim's fencing token
    trigger: Trigger
    arguments: Mapping[str, Value]
    cancel_requested: threading.Event  # seen by the body
    cancel_signal: asyncio.Event  # wakes the executor on the loop
    cancel_grace: float
    reporter: Reporter


class Executor(Protocol):
    async def execute(self, job: Execution) -> Result: ...


def _failure(exc: BaseException) -> Result:
    if isinstance(exc, RunCancelled):
        return Result(Ending.CANCELLED, "RunCancelled", "cancelled on request")
    return Result(Ending.FAILED, type(exc).__name__, str(exc) or repr(exc))


class _ThreadContext:
    """RunContext for a body on a thread of the daemon."""

    def __init__(self, job: Execution) -> None:
        self._job = job
        self.log = structlog.get_logger("syncd.job").bind(
            job=job.spec.name, run_id=job.run_id, trigger=job.trigger.value
        )

    run_id = property(lambda self: self._job.run_id)
    fencing_token = property(lambda self: self._job.fencing_token)
    bean = property(lambda self: self._job.spec.name)
    trigger = property(lambda self: self._job.trigger)
    args = property(lambda self: self._job.arguments)
    settings = property(lambda self: self._job.spec.settings)

    def is_cancelled(self) -> bool:
        return self._job.cancel_requested.is_set()

    def raise_if_cancelled(self) -> None:
        if self._job.cancel_requested.is_set():
            raise RunCancelled

    def wait_cancelled(self, timeout: float) -> bool:
        return self._job.cancel_requested.wait(timeout)

    def report_progress(self, done: int, total: int | None = None) -> None:
        self._job.reporter.progress(done, total or 0)

    def add_rows(self, *, read: int = 0, written: int = 0) -> None:
        self._job.reporter.rows(read, written)


class ThreadExecutor:
    """Runs the body on a fresh daemon thread; cannot force-stop it."""

    async def execute(self, job: Execution) -> Result:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Result] = loop.create_future()
        ctx: RunContext = _ThreadContext(job)

        def settle(result: Result) -> None:
            if not done.done():
                done.set_result(result)

        def report(result: Result) -> None:
            # A closed loop: an abandoned body ended after its daemon stopped; its run was
            # recorded then, and nobody is left to tell.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, result)

        def work() -> None:
            set_thread_slice(0)  # the daemon's short slice is for its own threads, not jobs
            # Library logs from this thread carry the run's identity too.
            structlog.contextvars.bind_contextvars(
                job=job.spec.name, run_id=job.run_id, trigger=job.trigger.value
            )
            try:
                job.spec.body(ctx)
            except BaseException as exc:  # the body's failure is the run's outcome
                report(_failure(exc))
            else:
                report(Result(Ending.SUCCEEDED))

        thread = threading.Thread(
            target=contextvars.copy_context().run,
            args=(work,),
            name=f"job:{job.spec.name}",
            daemon=True,
        )
        # Off the loop: Thread.start() waits until the new thread has run, which on a busy
        # machine can be a whole scheduler time slice.
        await asyncio.to_thread(thread.start)
        cancelled = asyncio.ensure_future(job.cancel_signal.wait())
        try:
            pending: set[asyncio.Future[Any]] = {done, cancelled}
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if done.done():
                return done.result()
            try:
                async with asyncio.timeout(job.cancel_grace):
                    return await asyncio.shield(done)
            except TimeoutError:
                return Result(
                    Ending.ABANDONED,
                    "Abandoned",
                    f"the job ignored cancellation for {job.cancel_grace:g}s; its thread was left",
                )
        finally:
            cancelled.cancel()


# --- child processes -----------------------------------------------------------------------


class _ChildContext:
    """RunContext inside the child process: everything goes to the parent over the pipe."""

    def __init__(
        self, outbox: _joblog.Outbox, payload: dict[str, Any], cancel: threading.Event
    ) -> None:
        self._outbox = outbox  # shared with the log lines: one sender on the pipe
        self._payload = payload
        self._cancel = cancel
        self.log = structlog.get_logger("syncd.job").bind(
            job=payload["bean"], run_id=payload["run_id"], trigger=payload["trigger"]
        )

    def send(self, message: tuple[Any, ...]) -> None:
        self._outbox.send(message)

    run_id = property(lambda self: self._payload["run_id"])
    fencing_token = property(lambda self: self._payload["fencing_token"])
    bean = property(lambda self: self._payload["bean"])
    trigger = property(lambda self: Trigger(self._payload["trigger"]))
    args = property(lambda self: self._payload["args"])
    settings = property(lambda self: self._payload["settings"])

    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def raise_if_cancelled(self) -> None:
        if self._cancel.is_set():
            raise RunCancelled

    def wait_cancelled(self, timeout: float) -> bool:
        return self._cancel.wait(timeout)

    def report_progress(self, done: int, total: int | None = None) -> None:
        self.send(("progress", done, total or 0))

    def add_rows(self, *, read: int = 0, written: int = 0) -> None:
        self.send(("rows", read, written))


def _child_main(
    conn: Connection, body: Callable[[RunContext], None], payload: dict[str, Any]
) -> None:
    """Entry point of the job's child process."""
    os.setpgrp()  # its own process group, apart from the daemon's terminal signals
    # The control plane first (daemon.job_nice); inherited below. Usually it is inherited
    # already, from the fork server (_niceness).
    _niceness.defer(0, payload["nice"])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon decides when the job stops
    # Orphans of the body's processes (a double-forked daemon) re-parent to us, not to init,
    # so they stay in the tree that this process and the daemon end.
    reaper = _proctree.become_subreaper()
    # Programs the body starts inherit this, so they can be found even outside our tree.
    os.environ[_proctree.RUN_MARKER] = payload["run_id"]
    cancel = threading.Event()
    outbox = _joblog.Outbox(conn)
    # Before any logger is bound: lines rendered here, as the daemon would render them.
    _joblog.configure_job_logging(outbox, payload["log_level"])
    # Library (stdlib) loggers in the job go to the daemon too, with the run's identity.
    structlog.contextvars.bind_contextvars(
        job=payload["bean"], run_id=payload["run_id"], trigger=payload["trigger"]
    )
    ctx = _ChildContext(outbox, payload, cancel)
    watch: _jobtrees.TreeWatch | None = None
    if payload["tree_record"]:
        watch = _jobtrees.TreeWatch(
            Path(payload["tree_record"]),
            payload["run_id"],
            payload["bean"],
            on_change=lambda tree: ctx.log.debug(
                "job.tree_recorded", pids=sorted(p.pid for p in tree)
            ),
        )
        watch.start()

    def listen() -> None:
        # One thread both listens to the daemon and keeps the tree's record: a thread fewer
        # in every job's process, each of which cost its start and its teardown.
        try:
            while True:
                # While the body runs, wait for the daemon a watch interval at a time.
                if watch is not None and not watch.stopped and not conn.poll(WATCH_INTERVAL):
                    watch.snapshot()
                    continue
                if conn.recv() == ("cancel",):
                    cancel.set()
        except (EOFError, OSError):
            _end_own_tree()  # the daemon is gone: neither we nor anything we started outlive it
            os._exit(70)

    threading.Thread(target=listen, name="syncd-control", daemon=True).start()
    try:
        body(ctx)
    except RunCancelled:
        ended = (Ending.CANCELLED.value, "RunCancelled", "cancelled on request")
    except BaseException as exc:
        ctx.log.error("job.crashed", error=str(exc), traceback=traceback.format_exc())
        result = _failure(exc)
        ended = (result.ending.value, result.error_type, result.error_message)
    else:
        ended = (Ending.SUCCEEDED.value, "", "")
    if watch is not None:
        watch.stop()
    # A run's processes end with it: what the body left running would go on beside its re-run.
    left = _end_own_tree()
    if left:
        ctx.log.warning(
            "job.processes_ended", pids=sorted(p.pid for p in left), names=sorted(left.values())
        )
    # Whether the tree it ended was all the run's: as a subreaper, nothing could leave it.
    ctx.send(("ended", *ended, reaper))
    outbox.close()  # everything sent before the process ends


def _end_own_tree() -> dict[_proctree.ProcessId, str]:
    me = _proctree.identify(os.getpid())
    if me is None:  # no /proc: only the daemon's process-group kill reaches the body's children
        return {}
    if not _proctree.has_children():  # a subreaper without children has no descendants
        return {}
    return _proctree.end_tree(me, include_root=False)


_LOG = structlog.get_logger("syncd.job")


# The fork server preloads this module: what this reads once, each job process inherits.
_proctree.prepare()


class ProcessExecutor:
    """Runs the body in a child process from a fork server; kills its tree if it ignores cancel.

    With a `record_dir`, each run's process tree is recorded there while it runs, so that a
    daemon started after this one was killed can end what the run left (see _jobtrees).
    """

    def __init__(
        self,
        preload: list[str] | None = None,
        record_dir: Path | None = None,
        log_level: int = logging.NOTSET,
        nice: int = 0,
    ) -> None:
        self._mp = multiprocessing.get_context("forkserver")
        # Every job process unpickles its ends of the pipe as popen_forkserver's objects: not
        # preloaded, that module and popen_fork were imported again in each one (~1 ms of CPU).
        self._mp.set_forkserver_preload(
            [
                "multiprocessing.popen_forkserver",
                "syncd.execution.executors",
                *(preload or []),
                "syncd.execution._forkserver",
            ]
        )
        self._record_dir = record_dir
        self._log_level = log_level  # the daemon's: what the job logs below it is dropped
        self._nice = _niceness.absolute(nice)  # daemon.job_nice above the daemon's own
        self._fork_server = _niceness.ForkServerDeferral(self._nice)
        # By run id, while its child runs: what a forced exit ends (`end_all`).
        self._live: dict[str, tuple[_proctree.ProcessId, Path | None]] = {}

    def end_all(self) -> int:
        """Forced exit: kill every running job's process tree now (blocking); how many.
        Before this daemon gives its cluster claims up, so no job of its outlives them."""
        live = list(self._live.items())
        for run_id, (root, record) in live:
            self._kill(root, run_id, record)
        return len(live)

    async def execute(self, job: Execution) -> Result:
        loop = asyncio.get_running_loop()
        parent, child = self._mp.Pipe(duplex=True)
        record: Path | None = None
        if self._record_dir is not None:
            try:
                self._record_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
                record = _jobtrees.record_path(self._record_dir, job.run_id)
            except OSError as exc:  # the run still ends its tree; only a successor can't
                _LOG.warning("job.tree_unrecorded", job=job.spec.name, error=str(exc)[:200])
        payload = {
            "run_id": job.run_id,
            "fencing_token": job.fencing_token,
            "bean": job.spec.name,
            "trigger": job.trigger.value,
            "args": dict(job.arguments),
            "settings": job.spec.settings,
            "tree_record": str(record) if record is not None else "",
            "log_level": self._log_level,
            "nice": self._nice,
        }
        proc = self._mp.Process(
            target=_child_main,
            args=(child, job.spec.body, payload),
            name=f"syncd-job:{job.spec.name}",
        )
        ended: asyncio.Future[Result] = loop.create_future()

        def settle(result: Result) -> None:
            if not ended.done():
                ended.set_result(result)

        def read() -> None:
            """Relays the child's messages until its end of the pipe closes."""
            final: Result | None = None
            ended_whole_tree = False  # the job's process says it ended its tree as a subreaper
            try:
                while True:
                    message = parent.recv()
                    kind = message[0]
                    if kind == "progress":
                        job.reporter.progress(message[1], message[2])
                    elif kind == "rows":
                        job.reporter.rows(message[1], message[2])
                    elif kind == "logs":
                        # Rendered by the job's process: handed on as they are, off the event
                        # loop, one batch at a time; the log file's bounded queue slows a job
                        # that logs faster than the disk takes it (its pipe fills), and
                        # loses nothing.
                        relay_lines(message[1], self._log_level)
                    elif kind == "ended":
                        final = Result(Ending(message[1]), message[2], message[3])
                        ended_whole_tree = bool(message[4])
            except (EOFError, OSError):
                pass
            proc.join()
            # The job's process ends its own tree; this catches what a process that died
            # abruptly (killed, out of memory) left, before the run is reported ended.
            killed = self._end_leftovers(job.run_id, record, ended_whole_tree=ended_whole_tree)
            if killed:
                with contextlib.suppress(RuntimeError):  # the loop has closed
                    loop.call_soon_threadsafe(_log_leftovers, job, killed)
            if final is None:
                code = proc.exitcode
                final = Result(
                    Ending.FAILED, "ChildDied", f"the job's process exited with status {code}"
                )
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody to tell
                loop.call_soon_threadsafe(settle, final)

        reader = threading.Thread(target=read, name=f"job-relay:{job.spec.name}", daemon=True)

        def launch() -> _proctree.ProcessId:
            # Off the loop, all of it: the first start also starts the fork server, and
            # Thread.start() blocks until the new thread has run, which on a busy machine
            # can be a whole scheduler time slice.
            proc.start()
            child.close()
            reader.start()
            assert proc.pid is not None  # started
            stat = _proctree.read_stat(proc.pid)
            if stat is None:
                return _proctree.ProcessId(proc.pid, -1)
            self._fork_server.job_started(stat)
            return _proctree.ProcessId(proc.pid, stat.start)

        root = await asyncio.to_thread(launch)
        self._live[job.run_id] = (root, record)
        cancelled = asyncio.ensure_future(job.cancel_signal.wait())
        try:
            pending: set[asyncio.Future[Any]] = {ended, cancelled}
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if ended.done():
                return ended.result()
            with contextlib.suppress(OSError):  # a child already gone: its reader settles it
                parent.send(("cancel",))
            try:
                async with asyncio.timeout(job.cancel_grace):
                    return await asyncio.shield(ended)
            except TimeoutError:
                # Off the loop: freezing a large tree and waiting for it to die takes a moment.
                await asyncio.to_thread(self._kill, root, job.run_id, record)
                await asyncio.shield(ended)
                return Result(
                    Ending.KILLED,
                    "Killed",
                    f"the job ignored cancellation for {job.cancel_grace:g}s and was killed",
                )
        finally:
            self._live.pop(job.run_id, None)
            cancelled.cancel()
            if not ended.done():  # our own task was cancelled: do not leave the child behind
                self._kill(root, job.run_id, record)
            parent.close()

    @staticmethod
    def _kill(root: _proctree.ProcessId, run_id: str, record: Path | None) -> None:
        """Kill the job's process and every process it started, however deep."""
        if not _proctree.has_proc():  # elsewhere, the process group is what we can reach
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(root.pid, signal.SIGKILL)
            return
        recorded = _jobtrees.read_record(record) if record is not None else None
        extra = [*(recorded.processes if recorded else ()), *_proctree.marked(run_id)]
        _proctree.end_tree(root, include_root=True, extra=extra)

    @staticmethod
    def _end_leftovers(
        run_id: str, record: Path | None, *, ended_whole_tree: bool
    ) -> dict[_proctree.ProcessId, str]:
        if ended_whole_tree:
            # The job's process ended its tree before it reported its end: as the subreaper of
            # all it started, nothing of the run could leave that tree while it lived. No scan
            # of /proc (every process's environment, ~0.5 ms) at the end of every run.
            if record is not None:
                _jobtrees.forget(record)
            return {}
        if record is not None:
            return _jobtrees.end_recorded(record)[1]
        return _proctree.end_tree(None, include_root=False, extra=_proctree.marked(run_id))


def _log_leftovers(job: Execution, killed: Mapping[_proctree.ProcessId, str]) -> None:
    _LOG.warning(
        "job.processes_ended",
        job=job.spec.name,
        run_id=job.run_id,
        pids=sorted(p.pid for p in killed),
        names=sorted(killed.values()),
    )
