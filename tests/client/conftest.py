"""syncctl's tests run the client in-process against the real daemon, served from a thread
(tests/harness.py) with two sample jobs the test holds (tests/packs/sample.py): Alpha, which
succeeds, and Broken, which fails with "bad input row 7". The daemon's wall clock stands at
STARTED and moves only as runs end (each "takes" 75 s), so what syncctl prints is exact.

What the client sent is recorded on the client side, by an interceptor on its channel: the
daemon is the one implementation of the contract.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import io
import json
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from syncctl import cli
from syncd.config import JobConfig
from syncd.daemon import Daemon
from syncd.events import Event
from syncd_api.v1 import management_pb2 as pb
from syncd_api.v1 import management_pb2_grpc as pb_grpc
from tests.harness import daemon_in_thread
from tests.packs.sample import Held, held_job
from tests.waiting import BOUND, FOLLOWING, set_within

STARTED = 1_700_000_000  # the daemon's wall clock at start: 2023-11-14T22:13:20Z
NOW = float(STARTED + 90)  # the clock the CLI is given in these tests
# The id of the first run of a test: the daemon's clock stands at STARTED when it starts.
FIRST_RUN = r"20231114T221320-[0-9a-f]{6}"
SERVICE = "/syncd.v1.Management/"


@dataclass
class Result:
    code: int
    out: str
    err: str


class InterruptAfter(io.StringIO):
    """Stdout that raises KeyboardInterrupt on its n-th line: Ctrl-C, as a follower sees it."""

    def __init__(self, lines: int) -> None:
        super().__init__()
        self.left = lines
        self.interrupted = threading.Event()

    def write(self, text: str) -> int:
        written = super().write(text)
        self.left -= text.count("\n")
        if self.left <= 0:
            self.interrupted.set()
            raise KeyboardInterrupt
        return written


class TestClock:
    """Wall time that stands still unless moved (runs move it as they end); monotonic time and
    waits are real, so the daemon's timers behave as always."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += timedelta(seconds=seconds)

    def monotonic(self) -> float:
        return time.monotonic()

    async def wait(self, event: asyncio.Event, timeout: float | None) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            return False
        return True


@dataclass
class Call:
    """One RPC syncctl sent: the method's short name, the request, its metadata."""

    method: str
    request: Any
    metadata: dict[str, str]


if TYPE_CHECKING:  # generic in the stubs only
    _UnaryInterceptor = grpc.UnaryUnaryClientInterceptor[Any, Any]
    _StreamInterceptor = grpc.UnaryStreamClientInterceptor[Any, Any]
else:
    _UnaryInterceptor = grpc.UnaryUnaryClientInterceptor
    _StreamInterceptor = grpc.UnaryStreamClientInterceptor


class _Recorder(_UnaryInterceptor, _StreamInterceptor):
    """Notes every call on the channel, then lets it through unchanged."""

    def __init__(self, calls: list[Call], following: Callable[[str], threading.Event]) -> None:
        self._calls = calls
        self._following = following

    def _note(self, details: grpc.ClientCallDetails, request: Any) -> None:
        metadata = {k: v for k, v in details.metadata or () if isinstance(v, str)}
        self._calls.append(Call(details.method.removeprefix(SERVICE), request, metadata))

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        self._note(details, request)
        return continuation(details, request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        self._note(details, request)
        call = continuation(details, request)
        signal = self._following(details.method.removeprefix(SERVICE))

        def headers() -> None:
            # The daemon's "syncd-following" header: the stream is subscribed, so whatever
            # happens from now on reaches it. A failed call has none, and signals nothing.
            with contextlib.suppress(grpc.RpcError):
                if FOLLOWING in list(call.initial_metadata() or ()):
                    signal.set()

        threading.Thread(target=headers, name="following", daemon=True).start()
        return call


@dataclass
class LiveDaemon:
    """The daemon under test, and what the test holds: Alpha's and Broken's runs, the clock,
    the calls syncctl made."""

    address: str
    daemon: Daemon
    clock: TestClock
    alpha: Held
    broken: Held
    loop: asyncio.AbstractEventLoop
    plain_channel: Callable[..., grpc.Channel]  # a channel whose calls are not recorded
    calls: list[Call] = field(default_factory=list)
    _following: dict[str, threading.Event] = field(default_factory=dict)

    def following(self, method: str) -> threading.Event:
        """Set once a `method` stream syncctl opened has been told the daemon follows it."""
        return self._following.setdefault(method, threading.Event())

    def on_loop(self, action: Callable[[], object]) -> None:
        """Run `action` on the daemon's event loop (its hubs live there), and wait for it."""

        async def call() -> None:
            action()

        asyncio.run_coroutine_threadsafe(call(), self.loop).result(BOUND)

    def publish(self, *events: Event) -> None:
        """Events, as the daemon's event hub hands them to every watcher."""
        def publish() -> None:
            for event in events:
                self.daemon.coordinator.events.publish(event)

        self.on_loop(publish)

    def log(self, *lines: str) -> None:
        """JSON lines, as the daemon's log hands them to its log hub."""
        def append() -> None:
            for line in lines:
                self.daemon.log_hub.append(line, json.loads(line))

        self.on_loop(append)

    @contextlib.contextmanager
    def once_following(self, method: str, action: Callable[[], object]) -> Iterator[None]:
        """While the block runs syncctl: once its `method` stream is subscribed, do `action`
        (from another thread, as something happening in the daemon would)."""
        failures: list[BaseException] = []
        signal = self.following(method)
        signal.clear()

        def act() -> None:
            try:
                set_within(signal, f"syncctl's {method} to be followed")
                action()
            except BaseException as error:  # reported to the test below
                failures.append(error)

        thread = threading.Thread(target=act, name="once-following", daemon=True)
        thread.start()
        try:
            yield
        finally:
            thread.join(BOUND * 2)
        if failures:
            raise failures[0]

    def run_plain(self, bean: str, **arguments: str) -> str:
        """A run of `bean` started and followed to its end outside syncctl; its id."""
        (self.alpha if bean == "Alpha" else self.broken).release.set()  # it is let end
        with self.plain_channel(self.address) as channel:
            stub = pb_grpc.ManagementStub(channel)
            named = {k: pb.Value(string_value=v) for k, v in arguments.items()}
            reply = stub.Invoke(
                pb.InvokeRequest(bean=bean, operation="run", named_arguments=named), timeout=BOUND
            )
            for _update in stub.WatchRun(
                pb.WatchRunRequest(run_id=reply.run.run_id), timeout=BOUND
            ):
                pass
        run_id: str = reply.run.run_id
        return run_id

    def requests(self, method: str) -> list[Any]:
        return [call.request for call in self.calls if call.method == method]

    def hold(self, bean: str = "Alpha") -> Held:
        """From now on, `bean`'s runs stay under way until released (or cancelled)."""
        held = self.alpha if bean == "Alpha" else self.broken
        held.release.clear()
        held.started.clear()
        return held

    def drain(self) -> None:
        """Ask the daemon to stop, and wait until it says it is draining (health NOT_SERVING);
        a held run keeps it draining until the test ends."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        self.loop.call_soon_threadsafe(self.daemon.request_stop)
        with self.plain_channel(self.address) as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(), timeout=BOUND
            )
            for change in watch:
                if change.status == health_pb2.HealthCheckResponse.NOT_SERVING:
                    watch.cancel()
                    return
        raise AssertionError("the daemon never said it was draining")

    def start(self, bean: str = "Alpha") -> str:
        """Start a run that stays under way (until released) and return its id."""
        held = self.hold(bean)
        result = syncctl(["run", bean, "run"], daemon=self)
        assert result.code == 0, result.err
        set_within(held.started, f"{bean}'s run to start")
        return result.out.strip()


def syncctl(
    argv: Sequence[str],
    *,
    daemon: LiveDaemon | MiniDaemon | None = None,
    tty: bool = False,
    env: dict[str, str] | None = None,
    stdout: io.StringIO | None = None,
    stdin: str = "",
) -> Result:
    """Run the CLI in-process with captured streams; `daemon` supplies --address."""
    out, err = stdout or io.StringIO(), io.StringIO()
    args = [*argv, "--address", daemon.address] if daemon else list(argv)
    code = cli.run(
        args,
        stdout=out,
        stderr=err,
        stdin=io.StringIO(stdin),
        environ=env or {},
        tty=tty,
        now=lambda: NOW,
    )
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """A temp dir with a short path: unix socket paths must stay under 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="sc-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# Alpha every 6 hours, Broken daily (what `next` lists); Broken depends on Alpha.
TIMETABLE = {"Alpha": JobConfig(every="6h"), "Broken": JobConfig(at="00:13", after=("Alpha",))}


@pytest.fixture
def daemon(sock_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveDaemon]:
    """The real daemon with Alpha (succeeds) and Broken (fails), syncctl's calls recorded."""
    clock = TestClock(datetime.fromtimestamp(STARTED, UTC))
    alpha, broken = Held(clock.advance), Held(clock.advance)
    jobs = [held_job(alpha, "Alpha", "First job."), held_job(broken, "Broken")]
    with daemon_in_thread(sock_dir / "state", jobs, clock=clock, job_tables=TIMETABLE) as served:
        plain = grpc.insecure_channel
        live = LiveDaemon(served.address, served.daemon, clock, alpha, broken, served.loop, plain)

        def recorded(target: str, *args: Any, **kwargs: Any) -> grpc.Channel:
            channel = plain(target, *args, **kwargs)
            if target != live.address:  # only what reaches this daemon is its calls
                return channel
            return grpc.intercept_channel(channel, _Recorder(live.calls, live.following))

        monkeypatch.setattr(grpc, "insecure_channel", recorded)
        try:
            yield live
        finally:
            # A held run must not outlive the test: let it end before the daemon stops.
            alpha.release.set()
            broken.release.set()


# ---- MiniDaemon: being retired; files not yet moved to the real daemon use it -------

DOMAIN = "sync.mbean"
LEVELS = ("debug", "info", "warning", "error", "critical")


def log_json(event: str, level: str = "info", **fields: object) -> str:
    """One line as the daemon logs it."""
    return json.dumps(
        {
            "timestamp": "2023-11-14T22:13:20.123456Z",
            "level": level,
            "event": event,
            "logger": "syncd.runs",
            **fields,
        }
    )


def event(kind: str, bean: str = "", run_id: str = "", **fields: object) -> pb.DaemonEvent:
    message = pb.DaemonEvent(kind=kind, bean=bean, run_id=run_id, **fields)  # type: ignore[arg-type]
    message.at.FromSeconds(STARTED)
    return message


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
class MiniDaemon(pb_grpc.ManagementServicer):
    """The servicer; tests read `calls` and flip `draining`."""

    beans: dict[str, JobBean] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    runs: dict[str, pb.RunInfo] = field(default_factory=dict)
    running: dict[str, str] = field(default_factory=dict)  # bean name -> run id
    draining: bool = False
    address: str = ""
    holds: dict[str, int] = field(default_factory=dict)  # bean or "*" -> since (seconds)
    log_lines: list[str] = field(default_factory=list)  # the daemon's log, oldest first
    # TailLogs with follow: these (json, missed) after the backlog; then, with hold_streams,
    # the stream stays open until the client goes away, else it ends (as at a shutdown).
    follow_lines: list[tuple[str, int]] = field(default_factory=list)
    # WatchEvents: sent to each watcher as soon as it has subscribed.
    initial_events: list[pb.DaemonEvent] = field(default_factory=list)
    hold_streams: bool = True
    # RunAll waits (bounded) for this many watchers before it publishes the runs' events, so
    # a `run-all --wait` test does not depend on which handler thread runs first.
    expect_watchers: int = 0
    # Which of RunAll's events reach watchers: "all"; "none" (the watcher subscribed too late);
    # "after-first" (the first job's events were lost, the later ones arrive).
    run_all_events: str = "all"
    # False: RunAll plans but runs nothing (as a daemon stopping right after it answered).
    run_all_runs: bool = True
    # Set: every streaming call waits (bounded) for it before answering at all, as a daemon
    # that is up but takes no new calls.
    stall_streams: threading.Event | None = None
    _watchers: list[queue.Queue[pb.DaemonEvent | None]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _watchers_changed: threading.Condition = field(default_factory=threading.Condition)

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
            finished = [
                r for r in self.runs.values() if r.bean == bean.name and r.HasField("ended_at")
            ]
            if finished:
                status.last_outcome = finished[-1].outcome
                status.last_error = finished[-1].error_message
            if bean.name in self.running:
                run = self.runs[self.running[bean.name]]
                status.current_run.CopyFrom(run)
                cancelling = run.state == pb.RUN_STATE_CANCELLING
                status.state = pb.BEAN_STATE_CANCELLING if cancelling else pb.BEAN_STATE_RUNNING
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
        self._stream_answer(context)
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
        if run.state == pb.RUN_STATE_CANCELLING:
            finished.outcome = pb.RUN_OUTCOME_CANCELLED
            finished.error_type = "Cancelled"
        elif self.beans[run.bean].succeeds:
            finished.outcome = pb.RUN_OUTCOME_SUCCESS
            finished.progress_done = 2
        else:
            finished.outcome = pb.RUN_OUTCOME_FAILED
            finished.error_type, finished.error_message = "ValueError", "bad input row 7"
        with self._lock:
            self.runs[run.run_id] = finished
            self.running.pop(run.bean, None)
        yield finished

    def Cancel(self, request: pb.CancelRequest, context: grpc.ServicerContext) -> pb.CancelResponse:
        self._record("Cancel", request, context)
        bean = self._bean(request.bean, context)
        with self._lock:
            if bean.name not in self.running:
                return pb.CancelResponse(cancelling=False)
            run = self.runs[self.running[bean.name]]
            run.state = pb.RUN_STATE_CANCELLING
            return pb.CancelResponse(cancelling=True, run=run)

    def _finished_run(self, bean: JobBean) -> pb.RunInfo:
        """A run of `bean` that has already ended, by the bean's nature, in the ledger. It
        starts at the CLI's "now" (NOW), as a run started by this request would."""
        run = pb.RunInfo(
            run_id=f"run-{len(self.runs) + 1}",
            bean=bean.name,
            operation=bean.trigger,
            trigger=pb.TRIGGER_MANUAL,
            state=pb.RUN_STATE_FINISHED,
            rows_read=3,
        )
        run.started_at.FromSeconds(int(NOW))
        run.ended_at.FromSeconds(int(NOW) + 5)
        if bean.succeeds:
            run.outcome = pb.RUN_OUTCOME_SUCCESS
        else:
            run.outcome = pb.RUN_OUTCOME_FAILED
            run.error_type, run.error_message = "ValueError", "bad input row 7"
        self.runs[run.run_id] = run
        return run

    def RunAll(self, request: pb.RunAllRequest, context: grpc.ServicerContext) -> pb.RunAllResponse:
        self._record("RunAll", request, context)
        if self.draining:
            context.abort(grpc.StatusCode.UNAVAILABLE, "draining: new runs are refused")
        with self._watchers_changed:
            self._watchers_changed.wait_for(
                lambda: len(self._watchers) >= self.expect_watchers, BOUND
            )
        jobs = list(self.beans)
        if not self.run_all_runs:
            return pb.RunAllResponse(jobs=jobs)
        for number, name in enumerate(jobs):
            with self._lock:
                run = self._finished_run(self.beans[name])
            if self.run_all_events == "none" or (
                self.run_all_events == "after-first" and number == 0
            ):
                continue
            self.publish(event("run.started", name, run.run_id, message="manual"))
            self.publish(event("run.finished", name, run.run_id, outcome=enum_name(run.outcome)))
        return pb.RunAllResponse(jobs=jobs)

    def History(
        self, request: pb.HistoryRequest, context: grpc.ServicerContext
    ) -> pb.HistoryResponse:
        self._record("History", request, context)
        bean = self._bean(request.bean, context).name if request.bean else None
        if not 0 <= request.limit <= 10_000:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "parameter 'limit' of History: must be 1-10000"
            )
        runs = [r for r in reversed(self.runs.values()) if bean is None or r.bean == bean]
        return pb.HistoryResponse(runs=runs[: request.limit or 20])

    def _hold_target(self, request: pb.PauseRequest, context: grpc.ServicerContext) -> str:
        return "*" if request.bean in ("", "*") else self._bean(request.bean, context).name

    def _holds(self) -> pb.PauseResponse:
        reply = pb.PauseResponse()
        for name, since in self.holds.items():
            reply.holds[name].FromSeconds(since)
        return reply

    def Pause(self, request: pb.PauseRequest, context: grpc.ServicerContext) -> pb.PauseResponse:
        self._record("Pause", request, context)
        self.holds.setdefault(self._hold_target(request, context), STARTED)
        return self._holds()

    def Resume(self, request: pb.PauseRequest, context: grpc.ServicerContext) -> pb.PauseResponse:
        self._record("Resume", request, context)
        self.holds.pop(self._hold_target(request, context), None)
        return self._holds()

    def ListFires(
        self, request: pb.ListFiresRequest, context: grpc.ServicerContext
    ) -> pb.ListFiresResponse:
        """Alpha every 6 hours from STARTED + 1h, Broken daily at STARTED + 2h."""
        self._record("ListFires", request, context)
        days = request.days or 1.0
        if not 0 < days <= 366:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "parameter 'days' of ListFires: must be more than 0 and at most 366",
            )
        end = STARTED + days * 86400
        fires: list[tuple[int, str]] = []
        for name, first, every in (("Alpha", 3600, 6 * 3600), ("Broken", 7200, 86400)):
            if name in self.holds or "*" in self.holds:
                continue
            fires += [(at, name) for at in range(STARTED + first, int(end) + 1, every)]
        reply = pb.ListFiresResponse()
        for at, name in sorted(fires):
            reply.fires.add(bean=name).at.FromSeconds(at)
        return reply

    def _stream_answer(self, context: grpc.ServicerContext) -> None:
        """Answer a stream's set-up (its headers) at once, as the daemon does on subscribing;
        unless the test stalls streams."""
        if self.stall_streams is not None:
            self.stall_streams.wait(BOUND)
        context.send_initial_metadata((("syncd-following", "1"),))

    def _until_client_leaves(self, context: grpc.ServicerContext) -> None:
        gone = threading.Event()
        context.add_callback(gone.set)
        gone.wait(BOUND)

    def TailLogs(
        self, request: pb.TailLogsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.LogLines]:
        self._record("TailLogs", request, context)
        if request.level and request.level.lower() not in LEVELS:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"parameter 'level' of TailLogs: expected one of {', '.join(LEVELS)}",
            )
        if request.lines < 0:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "parameter 'lines' of TailLogs: must not be negative",
            )
        job = self._bean(request.job, context).name if request.job else ""
        self._stream_answer(context)
        minimum = LEVELS.index(request.level.lower()) if request.level else 0

        def keep(text: str) -> bool:
            line = json.loads(text)
            return (
                (not job or line.get("job") == job)
                and (not request.run_id or line.get("run_id") == request.run_id)
                and LEVELS.index(line.get("level", "info")) >= minimum
            )

        kept = [line for line in self.log_lines if keep(line)]
        backlog = kept[-request.lines :] if request.lines else []
        seq = 0
        for seq, text in enumerate(backlog, start=1):
            yield pb.LogLines(lines=[pb.LogLine(json=text, seq=seq)])
        if not request.follow:
            return
        for text, missed in self.follow_lines:
            if keep(text):
                seq += 1 + missed
                yield pb.LogLines(lines=[pb.LogLine(json=text, seq=seq, missed=missed)])
        if self.hold_streams:
            self._until_client_leaves(context)

    def publish(self, message: pb.DaemonEvent) -> None:
        """Send an event to every watcher (as the daemon's event hub does)."""
        with self._watchers_changed:
            for watcher in self._watchers:
                watcher.put(message)

    def WatchEvents(
        self, request: pb.WatchEventsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.DaemonEvent]:
        self._record("WatchEvents", request, context)
        bean = self._bean(request.bean, context).name if request.bean else ""
        self._stream_answer(context)
        inbox: queue.Queue[pb.DaemonEvent | None] = queue.Queue()
        for initial in self.initial_events:
            inbox.put(initial)
        if not self.hold_streams:
            inbox.put(None)
        context.add_callback(lambda: inbox.put(None))
        with self._watchers_changed:
            self._watchers.append(inbox)
            self._watchers_changed.notify_all()
        try:
            while (message := inbox.get(timeout=BOUND)) is not None:
                if not bean or message.bean in (bean, "*", ""):
                    yield message
        finally:
            with self._watchers_changed:
                self._watchers.remove(inbox)


def enum_name(outcome: int) -> str:
    """RUN_OUTCOME_SUCCESS -> "success", as the daemon's events spell outcomes."""
    return pb.RunOutcome.Name(outcome).removeprefix("RUN_OUTCOME_").lower()  # type: ignore[arg-type]


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
