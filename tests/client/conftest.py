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
import io
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from syncctl import cli
from syncd.app.daemon import Daemon
from syncd.config import JobConfig
from syncd.observability.events import Event
from syncd_api.v1 import management_pb2 as pb
from syncd_api.v1 import management_pb2_grpc as pb_grpc
from tests.client.relay import Faults, relay
from tests.harness import daemon_in_thread
from tests.packs.sample import Held, held_job
from tests.waiting import BOUND, FOLLOWING, set_within

STARTED = 1_700_000_000  # the daemon's wall clock at start: 2023-11-14T22:13:20Z
NOW = float(STARTED + 90)  # the clock the CLI is given in these tests
# The id of the first run of a test: the daemon's clock stands at STARTED when it starts.
FIRST_RUN = r"20231114T221320\.\d{3}-[0-9a-f]{16}"
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
        self.printed = threading.Event()  # set once a first line is out

    def write(self, text: str) -> int:
        written = super().write(text)
        self.left -= text.count("\n")
        if "\n" in text:
            self.printed.set()
        if self.left <= 0:
            self.interrupted.set()
            raise KeyboardInterrupt
        return written


class TestClock:
    """Wall time that stands still unless moved (runs move it as they end); monotonic time runs
    (moved on with the wall clock) and waits are real, so the daemon's timers behave as always."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._ahead = 0.0  # seconds the test has moved time on
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Time passes: the wall clock and durations move on together."""
        with self._lock:
            self._now += timedelta(seconds=seconds)
            self._ahead += seconds

    def monotonic(self) -> float:
        with self._lock:
            return time.monotonic() + self._ahead

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
    targets: set[str] = field(default_factory=set)  # its address, and any relay's in front
    _following: dict[str, threading.Event] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.targets.add(self.address)

    @contextlib.contextmanager
    def behind_relay(self, faults: Faults, sock_dir: Path) -> Iterator[str]:
        """The daemon's address as seen through a relay that does `faults` to its streams."""
        address = f"unix:{sock_dir / 'relay.sock'}"
        with self.plain_channel(self.address) as channel, relay(channel, address, faults):
            self.targets.add(address)
            yield address

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

    def once_following(
        self, method: str, action: Callable[[], object]
    ) -> contextlib.AbstractContextManager[None]:
        """While the block runs syncctl: once its `method` stream is subscribed, do `action`
        (from another thread, as something happening in the daemon would)."""
        signal = self.following(method)
        signal.clear()
        return self.when(signal, f"syncctl's {method} to be followed", action)

    @contextlib.contextmanager
    def when(
        self, signal: threading.Event, what: str, action: Callable[[], object]
    ) -> Iterator[None]:
        """While the block runs: once `signal` is set, do `action` from another thread."""
        failures: list[BaseException] = []

        def act() -> None:
            try:
                set_within(signal, what)
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
    daemon: LiveDaemon | None = None,
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
    alpha, broken = Held(clock.advance), Held(clock.advance, fails=True)
    jobs = [held_job(alpha, "Alpha", "First job."), held_job(broken, "Broken")]
    # A long cancel_grace: a stubborn run stays "cancelling" for as long as a test looks.
    options: dict[str, Any] = {"clock": clock, "job_tables": TIMETABLE, "cancel_grace": BOUND}
    with daemon_in_thread(sock_dir / "state", jobs, **options) as served:
        plain = grpc.insecure_channel
        live = LiveDaemon(served.address, served.daemon, clock, alpha, broken, served.loop, plain)

        def recorded(target: str, *args: Any, **kwargs: Any) -> grpc.Channel:
            channel = plain(target, *args, **kwargs)
            if target not in live.targets:  # only what reaches this daemon is its calls
                return channel
            return grpc.intercept_channel(channel, _Recorder(live.calls, live.following))

        monkeypatch.setattr(grpc, "insecure_channel", recorded)
        try:
            yield live
        finally:
            # A held run must not outlive the test: let it end before the daemon stops.
            alpha.release.set()
            broken.release.set()
