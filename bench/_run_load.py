"""A load generator for the control-plane benchmark: short runs started over gRPC on a steady
schedule from a thread, round-robin over the short beans, with what it achieved counted."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import grpc

from bench.packs import SHORT_BEANS
from syncd_api.v1 import management_pb2 as pb
from syncd_api.v1 import management_pb2_grpc as pb_grpc


@dataclass
class LoadResult:
    seconds: float = 0.0
    started: list[str] = field(default_factory=list)  # run ids, oldest first
    refused: int = 0  # the bean was still running its previous short run
    behind: int = 0  # starts that were due before the previous Invoke returned


class RunLoad:
    """Starts `rate` short runs a second until stopped; `latest_run_id` is the newest one."""

    def __init__(self, channel: grpc.Channel, rate: float) -> None:
        self._stub = pb_grpc.ManagementStub(channel)
        self._period = 1.0 / rate
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._started = threading.Condition(self._lock)
        self._latest = ""
        self.result = LoadResult()
        self._thread = threading.Thread(target=self._run, name="bench-run-load", daemon=True)

    @property
    def latest_run_id(self) -> str:
        with self._lock:
            return self._latest

    def start(self) -> None:
        self._thread.start()

    def wait_started(self, count: int, timeout: float) -> int:
        """Wait until `count` runs have started in all (bounded); returns how many have."""
        with self._started:
            self._started.wait_for(lambda: len(self.result.started) >= count, timeout)
            return len(self.result.started)

    def stop(self) -> LoadResult:
        self._stop.set()
        self._thread.join(30)
        return self.result

    def _run(self) -> None:
        began = time.monotonic()
        n = 0
        while not self._stop.is_set():
            due = began + n * self._period
            # A steady schedule: wait for the slot (on the stop event, so stopping is prompt);
            # a late slot is started at once and counted, never skipped.
            delay = due - time.monotonic()
            if delay > 0:
                if self._stop.wait(delay):
                    break
            elif n:
                self.result.behind += 1
            self._invoke(f"ShortJob{n % SHORT_BEANS}")
            n += 1
        self.result.seconds = time.monotonic() - began

    def _invoke(self, bean: str) -> None:
        try:
            reply = self._stub.Invoke(pb.InvokeRequest(bean=bean, operation="run"), timeout=10)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
                raise
            self.result.refused += 1
            return
        with self._started:
            self.result.started.append(reply.run.run_id)
            self._latest = reply.run.run_id
            self._started.notify_all()


def ended_by(stub: pb_grpc.ManagementStub, run_ids: list[str], deadline_wall: float) -> int:
    """How many of `run_ids` had ended by `deadline_wall` (epoch seconds); waits (bounded) for
    each run to finish so the count is final."""
    ended = 0
    for run_id in run_ids:
        info = stub.GetRun(pb.GetRunRequest(run_id=run_id), timeout=10)
        if info.state != pb.RUN_STATE_FINISHED:
            for info in stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=30):
                if info.state == pb.RUN_STATE_FINISHED:
                    break
        if info.HasField("ended_at") and info.ended_at.ToNanoseconds() / 1e9 <= deadline_wall:
            ended += 1
    return ended
