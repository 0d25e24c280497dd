"""A small, real Management server for syncctl's tests.

`MiniDaemon` implements syncd.v1.Management over a real gRPC server on a temporary unix socket,
with just enough behaviour to exercise the client: two job beans, runs that a test finishes
through WatchRun, and the daemon's error contract (NOT_FOUND with suggestions, INVALID_ARGUMENT
naming the parameter, FAILED_PRECONDITION + `syncd-run-id` for "already running", UNAVAILABLE
while draining). End-to-end behaviour against the real daemon is tested elsewhere.
"""

from __future__ import annotations

import difflib
import shutil
import tempfile
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from syncd_api.v1 import management_pb2 as pb
from syncd_api.v1 import management_pb2_grpc as pb_grpc

DOMAIN = "sync.mbean"
STARTED = 1_700_000_000  # a fixed instant for every timestamp the server reports


@dataclass
class JobBean:
    name: str
    trigger: str
    succeeds: bool
    description: str = ""

    @property
    def object_name(self) -> str:
        return f"{DOMAIN}:name={self.name}"

    def ref(self) -> pb.BeanRef:
        return pb.BeanRef(
            object_name=self.object_name, name=self.name, description=self.description
        )


@dataclass
class Call:
    """One RPC the server received."""

    method: str
    request: object
    metadata: dict[str, str]


@dataclass
class MiniDaemon(pb_grpc.ManagementServicer):
    """The servicer; tests read `calls` and flip `draining`."""

    beans: dict[str, JobBean] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    runs: dict[str, pb.RunInfo] = field(default_factory=dict)
    running: dict[str, str] = field(default_factory=dict)  # bean name -> run id
    draining: bool = False
    address: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _record(self, method: str, request: object, context: grpc.ServicerContext) -> Call:
        metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        call = Call(method, request, metadata)
        with self._lock:
            self.calls.append(call)
        return call

    def _bean(self, name: str, context: grpc.ServicerContext) -> JobBean:
        short = name.removeprefix(f"{DOMAIN}:name=")
        if short in self.beans:
            return self.beans[short]
        close = difflib.get_close_matches(short, list(self.beans), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        context.abort(grpc.StatusCode.NOT_FOUND, f"no bean named {name!r}{hint}")

    def ListBeans(
        self, request: pb.ListBeansRequest, context: grpc.ServicerContext
    ) -> pb.ListBeansResponse:
        self._record("ListBeans", request, context)
        return pb.ListBeansResponse(beans=[b.ref() for b in self.beans.values()])

    def DescribeBean(
        self, request: pb.DescribeBeanRequest, context: grpc.ServicerContext
    ) -> pb.BeanInfo:
        self._record("DescribeBean", request, context)
        bean = self._bean(request.bean, context)
        rows = pb.ParameterInfo(name="rows", type=pb.VALUE_TYPE_INT, required=False)
        return pb.BeanInfo(
            ref=bean.ref(),
            operations=[
                pb.OperationInfo(
                    name=bean.trigger,
                    parameters=[rows],
                    return_type=pb.VALUE_TYPE_RUN,
                    impact=pb.IMPACT_ACTION,
                    description="Start a run.",
                ),
                pb.OperationInfo(
                    name="isCurrentlyRunning",
                    return_type=pb.VALUE_TYPE_BOOL,
                    impact=pb.IMPACT_INFO,
                ),
            ],
            attributes=[
                pb.AttributeInfo(name="State", type=pb.VALUE_TYPE_STRING),
                pb.AttributeInfo(name="LastSuccessAt", type=pb.VALUE_TYPE_TIMESTAMP),
            ],
        )

    def Invoke(self, request: pb.InvokeRequest, context: grpc.ServicerContext) -> pb.InvokeResponse:
        call = self._record("Invoke", request, context)
        bean = self._bean(request.bean, context)
        if request.operation == "isCurrentlyRunning":
            return pb.InvokeResponse(result=pb.Value(bool_value=bean.name in self.running))
        if request.operation not in (bean.trigger, "run"):
            context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"bean {bean.object_name} has no operation {request.operation!r}",
            )
        given = [*request.arguments, *request.named_arguments.values()]
        unknown = set(request.named_arguments) - {"rows"}
        if unknown or len(given) > 1:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{bean.trigger}: takes one parameter (rows), got {len(given)}",
            )
        if given and not given[0].string_value.isdigit():
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"parameter 'rows' of {bean.trigger}: expected a whole number, "
                f"got {given[0].string_value!r}",
            )
        if self.draining:
            context.abort(grpc.StatusCode.UNAVAILABLE, "draining: new runs are refused")
        with self._lock:
            if bean.name in self.running:
                active = self.running[bean.name]
                context.set_trailing_metadata((("syncd-run-id", active),))
                context.abort(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"Already running: {bean.name} has run {active} under way",
                )
            run_id = f"run-{len(self.runs) + 1}"
            run = pb.RunInfo(
                run_id=run_id,
                bean=bean.name,
                operation=bean.trigger,
                trigger=pb.TRIGGER_MANUAL,
                state=pb.RUN_STATE_RUNNING,
                actor=call.metadata.get("syncd-actor", ""),
            )
            run.started_at.FromSeconds(STARTED)
            self.runs[run_id] = run
            self.running[bean.name] = run_id
        chain = [b for b in self.beans if b != bean.name] if request.with_dependants else []
        return pb.InvokeResponse(
            result=pb.Value(string_value=run_id), run=run, message="Just started", chain=chain
        )

    def GetAttributes(
        self, request: pb.GetAttributesRequest, context: grpc.ServicerContext
    ) -> pb.GetAttributesResponse:
        self._record("GetAttributes", request, context)
        bean = self._bean(request.bean, context)
        state = pb.Value(string_value="running" if bean.name in self.running else "idle")
        success = pb.Value()
        success.timestamp_value.FromSeconds(STARTED)
        values = {"State": state, "LastSuccessAt": success}
        names = list(request.names) or list(values)
        missing = [n for n in names if n not in values]
        if missing:
            context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"bean {bean.object_name} has no attribute {missing[0]!r}",
            )
        return pb.GetAttributesResponse(
            ref=bean.ref(), attributes=[pb.Attribute(name=n, value=values[n]) for n in names]
        )

    def GetStatus(
        self, request: pb.GetStatusRequest, context: grpc.ServicerContext
    ) -> pb.GetStatusResponse:
        self._record("GetStatus", request, context)
        reply = pb.GetStatusResponse(daemon=pb.DaemonInfo(version="test", pid=1))
        for bean in self.beans.values():
            status = reply.beans.add(ref=bean.ref(), state=pb.BEAN_STATE_IDLE)
            if bean.name in self.running:
                status.state = pb.BEAN_STATE_RUNNING
                status.current_run.CopyFrom(self.runs[self.running[bean.name]])
        return reply

    def GetRun(self, request: pb.GetRunRequest, context: grpc.ServicerContext) -> pb.RunInfo:
        self._record("GetRun", request, context)
        if request.run_id not in self.runs:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no run {request.run_id!r}")
        return self.runs[request.run_id]

    def WatchRun(
        self, request: pb.WatchRunRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.RunInfo]:
        """The run as it is, one progress step, then its end (by the bean's nature)."""
        self._record("WatchRun", request, context)
        if request.run_id not in self.runs:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no run {request.run_id!r}")
        run = self.runs[request.run_id]
        yield run
        progress = pb.RunInfo()
        progress.CopyFrom(run)
        progress.progress_done, progress.progress_total = 1, 2
        yield progress
        finished = pb.RunInfo()
        finished.CopyFrom(progress)
        finished.state = pb.RUN_STATE_FINISHED
        finished.ended_at.FromSeconds(STARTED + 75)
        if self.beans[run.bean].succeeds:
            finished.outcome = pb.RUN_OUTCOME_SUCCESS
            finished.progress_done = 2
        else:
            finished.outcome = pb.RUN_OUTCOME_FAILED
            finished.error_type, finished.error_message = "ValueError", "bad input row 7"
        with self._lock:
            self.runs[run.run_id] = finished
            self.running.pop(run.bean, None)
        yield finished

    # The RPCs syncctl does not call yet: answered as a server without them would.

    def Cancel(self, request: pb.CancelRequest, context: grpc.ServicerContext) -> pb.CancelResponse:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "Cancel")

    def RunAll(self, request: pb.RunAllRequest, context: grpc.ServicerContext) -> pb.RunAllResponse:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "RunAll")

    def History(
        self, request: pb.HistoryRequest, context: grpc.ServicerContext
    ) -> pb.HistoryResponse:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "History")

    def Pause(self, request: pb.PauseRequest, context: grpc.ServicerContext) -> pb.PauseResponse:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "Pause")

    def Resume(self, request: pb.PauseRequest, context: grpc.ServicerContext) -> pb.PauseResponse:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "Resume")

    def ListFires(
        self, request: pb.ListFiresRequest, context: grpc.ServicerContext
    ) -> pb.ListFiresResponse:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "ListFires")

    def TailLogs(
        self, request: pb.TailLogsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.LogLine]:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "TailLogs")

    def WatchEvents(
        self, request: pb.WatchEventsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.DaemonEvent]:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "WatchEvents")


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """A temp dir with a short path: unix socket paths must stay under 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="sc-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def mini_daemon(sock_dir: Path) -> Iterator[MiniDaemon]:
    """A MiniDaemon serving on `<sock_dir>/syncd.sock` with beans Alpha (succeeds) and Broken."""
    servicer = MiniDaemon(
        beans={
            "Alpha": JobBean("Alpha", "alphaJob", succeeds=True, description="First job."),
            "Broken": JobBean("Broken", "brokenJob", succeeds=False),
        },
        address=f"unix:{sock_dir / 'syncd.sock'}",
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_ManagementServicer_to_server(servicer, server)
    server.add_insecure_port(servicer.address)
    server.start()
    try:
        yield servicer
    finally:
        server.stop(grace=None).wait(10)
