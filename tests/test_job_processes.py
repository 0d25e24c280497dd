"""No process a job starts outlives its run or its daemon — tested on the real daemon.

Each job here starts three `sleep 65` processes: a plain child, one in its own session
(`setsid`, so outside any process group of the job) and a double-forked daemon (re-parented
away from the process that started it). Waits are on log lines and pidfds, never on sleeps.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import grpc
import pytest

from syncd.execution import _jobtrees, _proctree
from syncd.execution._proctree import ProcessId, wait_ended
from syncd_api.v1 import management_pb2 as pb
from syncd_api.v1 import management_pb2_grpc as pb_grpc
from tests.daemon_process import BOUND, DaemonProcess, daemon_process
from tests.packs.sample import sched_slice_ns
from tests.slices import kernel_default_slice

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not _proctree.has_proc(), reason="needs Linux /proc"),
]

GRANDCHILDREN = ("plain", "setsid", "daemonised")


def _config(**daemon: str) -> str:
    extra = "".join(f"{k} = {v}\n" for k, v in daemon.items())
    return (
        "[daemon]\n"
        'packs = ["tests.packs.sample:SPAWNING"]\n'
        "entry_points = false\n"
        'log_level = "debug"\n'
        f"{extra}"
    )


def _invoke(d: DaemonProcess, bean: str, **named: pb.Value) -> str:
    with grpc.insecure_channel(d.address) as channel:
        reply = pb_grpc.ManagementStub(channel).Invoke(
            pb.InvokeRequest(bean=bean, operation="run", named_arguments=named), timeout=BOUND
        )
    return str(reply.run.run_id)


def _id(pid: int) -> ProcessId:
    proc = _proctree.identify(pid)
    assert proc is not None, f"pid {pid} is not running"
    return proc


def _spawned(d: DaemonProcess, run_id: str) -> tuple[ProcessId, list[ProcessId]]:
    """The job's process and its three grandchildren, all running."""
    line = d.wait_for_event("test.spawned", run_id=run_id)
    return _id(line["job_pid"]), [_id(line[name]) for name in GRANDCHILDREN]


def _running(pid: int) -> bool:
    """The pid names a live process (a zombie counts as ended)."""
    proc = _proctree.identify(pid)
    return proc is not None and _proctree.is_alive(proc)


def _assert_ended(procs: list[ProcessId]) -> None:
    """Ended already: nothing is waited for beyond the kernel delivering a SIGKILL sent."""
    assert [p for p in procs if _proctree.is_alive(p)] == []


def _finished(d: DaemonProcess, run_id: str) -> dict[str, Any]:
    return d.wait_for_event("run.finished", run_id=run_id)


def test_sigkill_of_the_daemon_ends_every_process_its_jobs_started(short_tmp: Path) -> None:
    """The job's process sees its pipe to the daemon close, whatever killed the daemon, and ends
    its whole tree — the setsid child and the double-forked daemon too — and itself."""
    with daemon_process(short_tmp / "state", _config()) as d:
        run_id = _invoke(d, "SpawningJob")
        job, grandchildren = _spawned(d, run_id)
        d.proc.send_signal(signal.SIGKILL)
        assert d.proc.wait(BOUND) == -signal.SIGKILL
        assert wait_ended([job, *grandchildren], BOUND) == []


def test_a_new_daemon_ends_what_a_killed_predecessors_run_left(short_tmp: Path) -> None:
    """The daemon and its job's process both killed (the job's process frozen first, so its own
    death path never runs): the grandchildren survive, on record. The next daemon ends them before
    any job starts and notes them with the interrupted run."""
    state = short_tmp / "state"
    with daemon_process(state, _config()) as first:
        run_id = _invoke(first, "StubbornSpawningJob")
        job, grandchildren = _spawned(first, run_id)
        tree = sorted(p.pid for p in [job, *grandchildren])
        first.wait_for_event("job.tree_recorded", run_id=run_id, pids=tree)
        os.kill(job.pid, signal.SIGSTOP)
        first.proc.send_signal(signal.SIGKILL)
        assert first.proc.wait(BOUND) == -signal.SIGKILL
        os.kill(job.pid, signal.SIGKILL)
        assert wait_ended([job], BOUND) == []
    assert all(_proctree.is_alive(p) for p in grandchildren), "the simulation left no survivors"

    with daemon_process(state, _config()) as second:
        ended = second.wait_for_event("run.survivors_ended", run_id=run_id)
        assert ended["job"] == "StubbornSpawningJob"
        assert sorted(ended["pids"]) == sorted(p.pid for p in grandchildren)
        assert ended["names"] == ["sleep", "sleep", "sleep"]
        _assert_ended(grandchildren)
        with grpc.insecure_channel(second.address) as channel:
            run = pb_grpc.ManagementStub(channel).GetRun(
                pb.GetRunRequest(run_id=run_id), timeout=BOUND
            )
        assert run.outcome == pb.RUN_OUTCOME_INTERRUPTED
        assert "ended 3 process(es) the run had left running" in run.error_message
        assert list((state / _jobtrees.RECORD_DIR).glob("*.json")) == []
        assert second.stop() == 0


def test_a_run_that_returns_ends_what_it_left_running(short_tmp: Path) -> None:
    """A body that returns with its children still running: they end before the run does."""
    with daemon_process(short_tmp / "state", _config()) as d:
        run_id = _invoke(d, "SpawningJob", finish=pb.Value(bool_value=True))
        # The body returns at once, so its processes may be gone before the line is read: the
        # pids are checked by number (a pid is not reused within the test's few seconds).
        spawned = d.wait_for_event("test.spawned", run_id=run_id)
        grandchildren = sorted(spawned[name] for name in GRANDCHILDREN)
        assert _finished(d, run_id)["outcome"] == "success"
        ended = d.wait_for_event("job.processes_ended", run_id=run_id)
        assert sorted(ended["pids"]) == grandchildren
        assert [pid for pid in grandchildren if _running(pid)] == []
        job = _proctree.identify(spawned["job_pid"])  # None: it has already ended
        assert job is None or wait_ended([job], BOUND) == []
        assert list((d.state_dir / _jobtrees.RECORD_DIR).glob("*.json")) == []
        assert d.stop() == 0


def test_a_job_process_that_dies_abruptly_has_what_it_started_ended_by_the_daemon(
    short_tmp: Path,
) -> None:
    """Killed before it could end its own tree, the job's process leaves its processes
    re-parented away (to init): the daemon finds them by the tree record and the run's marker,
    and ends them before the run is reported ended."""
    with daemon_process(short_tmp / "state", _config()) as d:
        run_id = _invoke(d, "SpawningJob")
        job, grandchildren = _spawned(d, run_id)
        tree = sorted(p.pid for p in [job, *grandchildren])
        d.wait_for_event("job.tree_recorded", run_id=run_id, pids=tree)
        os.kill(job.pid, signal.SIGKILL)
        finished = _finished(d, run_id)
        assert finished["outcome"] == "failed"
        ended = d.wait_for_event("job.processes_ended", run_id=run_id)
        assert sorted(ended["pids"]) == sorted(p.pid for p in grandchildren)
        _assert_ended(grandchildren)
        assert list((d.state_dir / _jobtrees.RECORD_DIR).glob("*.json")) == []
        assert d.stop() == 0


@pytest.mark.parametrize(
    ("bean", "how", "outcome"),
    [
        ("SpawningJob", "cancel", "cancelled"),  # the body stops cooperatively
        ("StubbornSpawningJob", "cancel", "cancelled"),  # killed after cancel_grace
        ("StubbornSpawningJob", "timeout", "timed_out"),  # killed after timeout + cancel_grace
    ],
)
def test_cancel_and_timeout_end_every_process_of_the_run(
    short_tmp: Path, bean: str, how: str, outcome: str
) -> None:
    config = _config(cancel_grace='"300ms"') + (
        f'[jobs.{bean}]\ntimeout = "1s"\n' if how == "timeout" else ""
    )
    with daemon_process(short_tmp / "state", config) as d:
        run_id = _invoke(d, bean)
        job, grandchildren = _spawned(d, run_id)
        if how == "cancel":
            with grpc.insecure_channel(d.address) as channel:
                pb_grpc.ManagementStub(channel).Cancel(pb.CancelRequest(bean=bean), timeout=BOUND)
        assert _finished(d, run_id)["outcome"] == outcome
        _assert_ended(grandchildren)
        assert wait_ended([job], BOUND) == []
        assert d.stop() == 0


def test_sigterm_ends_every_process_of_a_stuck_run(short_tmp: Path) -> None:
    """Shutdown: the stubborn run is cancelled, then killed with its tree; exit 0."""
    config = _config(shutdown_grace='"200ms"', cancel_grace='"200ms"')
    with daemon_process(short_tmp / "state", config) as d:
        run_id = _invoke(d, "StubbornSpawningJob")
        job, grandchildren = _spawned(d, run_id)
        assert d.stop() == 0
        assert _finished(d, run_id)["outcome"] == "cancelled"
        assert wait_ended([job, *grandchildren], BOUND) == []


@pytest.mark.parametrize("console_script", [True, False], ids=["syncd-command", "python-m"])
def test_a_job_process_does_not_run_the_daemons_command_line_again(
    short_tmp: Path, console_script: bool
) -> None:
    """Started by the installed `syncd` command, the daemon's main module is that script, and
    multiprocessing would run it again in every job process, importing the daemon's command
    line there (six times a short job's CPU). The job's process holds none of it."""
    config = '[daemon]\npacks = ["tests.packs.sample:MAIN_PROBE"]\nentry_points = false\n'
    with daemon_process(short_tmp / "state", config, console_script=console_script) as d:
        run_id = _invoke(d, "MainProbeJob")
        probe = d.wait_for_event("test.main_probe", run_id=run_id)
        assert (probe["main_run_again"], probe["cli_loaded"]) == (False, False)
        assert _finished(d, run_id)["outcome"] == "success"
        assert d.stop() == 0


@pytest.mark.parametrize("asked_us", [400, 0])
def test_the_daemons_threads_take_the_configured_slice_and_its_jobs_the_kernels_default(
    short_tmp: Path, asked_us: int
) -> None:
    """daemon.cpu_slice_us: the daemon's threads ask the kernel for a short time slice, so that
    a control-plane call preempts a running job sooner; the fork server hands its job
    processes the kernel's default again."""
    default = kernel_default_slice()
    config = (
        '[daemon]\npacks = ["tests.packs.sample:MAIN_PROBE"]\nentry_points = false\n'
        f"cpu_slice_us = {asked_us}\n"
    )
    with daemon_process(short_tmp / "state", config) as d:
        pid = d.proc.pid
        assert sched_slice_ns(f"/proc/{pid}/task/{pid}/sched") == (asked_us * 1000 or default)
        run_id = _invoke(d, "MainProbeJob")
        assert d.wait_for_event("test.main_probe", run_id=run_id)["slice_ns"] == default
        assert _finished(d, run_id)["outcome"] == "success"
        assert d.stop() == 0
