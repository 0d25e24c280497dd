"""The real daemon as a subprocess: start-up, signals, exit codes, refusal of a second one."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from syncd_api.v1 import management_pb2 as pb
from syncd_api.v1 import management_pb2_grpc as pb_grpc
from tests.daemon_process import BOUND, ROOT, daemon_env, daemon_process, e2e_config

pytestmark = pytest.mark.e2e


def _stub(address: str) -> tuple[grpc.Channel, pb_grpc.ManagementStub]:
    channel = grpc.insecure_channel(address)
    return channel, pb_grpc.ManagementStub(channel)


def _release(gate_dir: Path, bean: str) -> None:
    with (gate_dir / f"{bean}.fifo").open("wb") as fifo:  # blocks until the body opens it
        fifo.write(b"go")


def test_sigterm_stops_an_idle_daemon_cleanly(short_tmp: Path) -> None:
    """SIGTERM: draining, stopped, exit 0, socket gone."""
    with daemon_process(short_tmp / "state", e2e_config(short_tmp)) as d:
        started = d.wait_for_event("daemon.started")
        assert started["addresses"] == [d.address]
        assert set(started["beans"]) >= {"Daemon", "FifoJob", "QuickJob"}
        assert d.stop() == 0
        d.wait_for_event("daemon.stopped")
    assert not (short_tmp / "state" / "run" / "syncd.sock").exists()


def test_the_daemon_keeps_its_start_up_heap_out_of_later_full_collections(
    short_tmp: Path,
) -> None:
    """Once serving, `syncd serve` freezes what start-up built, so a full collection under run
    load walks only what came after (it took 60-80 ms on the loop's thread before)."""
    with daemon_process(short_tmp / "state", e2e_config(short_tmp), "--log-level", "debug") as d:
        settled = d.wait_for_event("daemon.heap_settled")
        assert settled["frozen"] > 10_000
        assert d.stop() == 0


def test_a_running_job_finishes_within_the_grace(short_tmp: Path) -> None:
    """A job under way at SIGTERM is allowed to finish and is recorded as a success."""
    with daemon_process(short_tmp / "state", e2e_config(short_tmp)) as d:
        channel, stub = _stub(d.address)
        with channel:
            reply = stub.Invoke(
                pb.InvokeRequest(bean="FifoJob", operation="fifoJob"), timeout=BOUND
            )
        d.proc.send_signal(signal.SIGTERM)
        d.wait_for_event("daemon.draining")
        _release(short_tmp, "FifoJob")
        finished = d.wait_for_event("run.finished", run_id=reply.run.run_id)
        assert finished["outcome"] == "success"
        assert d.proc.wait(BOUND) == 0


def test_a_stuck_job_is_cancelled_and_recorded_after_the_grace(short_tmp: Path) -> None:
    """A body that never returns is cancelled after shutdown_grace + cancel_grace; exit 0."""
    config = e2e_config(short_tmp, shutdown_grace='"200ms"', cancel_grace='"200ms"')
    with daemon_process(short_tmp / "state", config) as d:
        channel, stub = _stub(d.address)
        with channel:
            reply = stub.Invoke(pb.InvokeRequest(bean="FifoJob", operation="run"), timeout=BOUND)
        assert d.stop() == 0
        finished = d.wait_for_event("run.finished", run_id=reply.run.run_id)
        assert finished["outcome"] == "cancelled"
        assert finished["error_type"] == "ShutdownCancelled"


def test_a_second_signal_forces_exit(short_tmp: Path) -> None:
    """While draining with a stuck job, a second SIGTERM exits at once, non-zero."""
    config = e2e_config(short_tmp, shutdown_grace='"60s"')
    with daemon_process(short_tmp / "state", config) as d:
        channel, stub = _stub(d.address)
        with channel:
            stub.Invoke(pb.InvokeRequest(bean="FifoJob", operation="run"), timeout=BOUND)
        d.proc.send_signal(signal.SIGTERM)
        d.wait_for_event("daemon.draining")
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(BOUND) == 128 + signal.SIGTERM
        d.wait_for_event("daemon.forced_exit")


def test_a_second_daemon_exits_3_naming_the_holder(short_tmp: Path) -> None:
    """A second daemon on the same state dir exits 3 and the first keeps its socket."""
    with daemon_process(short_tmp / "state", e2e_config(short_tmp)) as first:
        second = subprocess.run(
            [sys.executable, "-m", "syncd", "serve"],
            env=daemon_env(short_tmp / "state"),
            cwd=ROOT,
            capture_output=True,
            timeout=BOUND,
            check=False,
        )
        assert second.returncode == 3
        assert f"held by pid {first.proc.pid}" in second.stderr.decode()
        channel, stub = _stub(first.address)
        with channel:
            assert stub.ListBeans(pb.ListBeansRequest(), timeout=BOUND).beans
        assert first.stop() == 0


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("[daemon]\nshutdown_grase = 1\n", "config: daemon.shutdown_grase: unknown key"),
        (
            '[daemon]\ntcp_address = "10.1.2.3:80"\n',
            "daemon.tcp_address: 10.1.2.3 is not a loopback",
        ),
        ('[daemon]\npacks = ["no_such_module:PACK"]\n', "job pack 'no_such_module:PACK'"),
        ("[packs.nope]\nx = 1\n", "config: packs.nope: no job pack named 'nope'"),
        (
            '[daemon]\npacks = ["tests.packs.sample:E2E"]\n[packs.e2e]\ngate_dir = 3\n',
            "packs.e2e.gate_dir: expected a string",
        ),
    ],
)
def test_bad_config_exits_2_naming_the_key(short_tmp: Path, config: str, message: str) -> None:
    """Bad configuration is refused before anything starts, with the key path."""
    path = short_tmp / "bad.toml"
    path.write_text(config)
    done = subprocess.run(
        [sys.executable, "-m", "syncd", "--config", str(path), "serve"],
        env=daemon_env(short_tmp / "state"),
        cwd=ROOT,
        capture_output=True,
        timeout=BOUND,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr.decode()
    assert not (short_tmp / "state" / "run").exists()


def test_check_config_lists_the_jobs(short_tmp: Path) -> None:
    """`syncd check-config` validates and names the jobs it would serve."""
    path = short_tmp / "ok.toml"
    path.write_text(e2e_config(short_tmp))
    done = subprocess.run(
        [sys.executable, "-m", "syncd", "--config", str(path), "check-config"],
        env=daemon_env(short_tmp / "state"),
        cwd=ROOT,
        capture_output=True,
        timeout=BOUND,
        check=True,
    )
    assert "FifoJob, OtherFifoJob, FailingJob, QuickJob" in done.stdout.decode()


def test_a_killed_daemon_leaves_no_run_running(short_tmp: Path) -> None:
    """SIGKILL mid-run; on restart the run is `interrupted` and tonight's job is caught up."""
    config = e2e_config(short_tmp) + (
        '[scheduler]\ncatch_up_window = "00:00-24:00"\n[jobs.FifoJob]\nat = "00:00"\n'
    )
    with daemon_process(short_tmp / "state", config) as first:
        started = first.wait_for_event("run.started", job="FifoJob")
        assert started["trigger"] == "startup"
        first.proc.send_signal(signal.SIGKILL)
        assert first.proc.wait(BOUND) == -signal.SIGKILL
    with daemon_process(short_tmp / "state", config) as second:
        interrupted = second.wait_for_event("run.interrupted", run_id=started["run_id"])
        assert interrupted["job"] == "FifoJob"
        again = second.wait_for_event("run.started", job="FifoJob")
        assert again["run_id"] != started["run_id"]
        _release(short_tmp, "FifoJob")
        finished = second.wait_for_event("run.finished", run_id=again["run_id"])
        assert finished["outcome"] == "success"
        channel, stub = _stub(second.address)
        with channel:
            old = stub.GetRun(pb.GetRunRequest(run_id=started["run_id"]), timeout=BOUND)
        assert old.outcome == pb.RUN_OUTCOME_INTERRUPTED
        assert old.HasField("ended_at")
        assert second.stop() == 0


def test_no_second_listener_can_share_the_tcp_port(short_tmp: Path) -> None:
    """The TCP listener does not set SO_REUSEPORT: another socket asking to share the port
    (as a second daemon's gRPC server would) is refused, so calls never go to a stranger."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = e2e_config(short_tmp, tcp_address=f'"127.0.0.1:{port}"')
    with daemon_process(short_tmp / "state", config) as daemon:
        with socket.socket() as rival:
            rival.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            with pytest.raises(OSError, match="in use"):
                rival.bind(("127.0.0.1", port))
        assert daemon.stop() == 0
