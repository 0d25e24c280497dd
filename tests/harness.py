"""Runs a real Daemon in the test's event loop and hands the test a real gRPC stub; or, for
synchronous callers such as syncctl's in-process tests, serves it from a thread of its own."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from syncd.app.daemon import Daemon
from syncd.clock import Clock
from syncd.config import (
    AuthConfig,
    Config,
    DaemonConfig,
    HttpConfig,
    JobConfig,
    LedgerConfig,
    NotifyConfig,
    ReplicationConfig,
    SchedulerConfig,
    TlsConfig,
)
from syncd.job import JobSpec
from syncd.observability.loghub import LogHub
from syncd_api.v1 import management_pb2_grpc as pb_grpc

BOUND = 10.0


@dataclass
class Running:
    daemon: Daemon
    channel: grpc.aio.Channel
    stub: pb_grpc.ManagementAsyncStub
    address: str


@asynccontextmanager
async def running_daemon(
    state_dir: Path,
    jobs: Sequence[JobSpec] = (),
    *,
    shutdown_grace: float = 5.0,
    cancel_grace: float = 2.0,
    execution: str = "thread",
    clock: Clock | None = None,
    job_tables: dict[str, JobConfig] | None = None,
    scheduler: SchedulerConfig | None = None,
    http_address: str = "",
    notify: NotifyConfig | None = None,
    log_hub: LogHub | None = None,
    http: HttpConfig | None = None,
    ledger_url: str = "",
    auth: AuthConfig | None = None,
    tls: TlsConfig | None = None,
    tcp_address: str = "",
    replication: ReplicationConfig | None = None,
) -> AsyncIterator[Running]:
    config = Config(
        daemon=DaemonConfig(
            state_dir=state_dir,
            shutdown_grace=shutdown_grace,
            cancel_grace=cancel_grace,
            execution=execution,
            tcp_address=tcp_address,
        ),
        auth=auth or AuthConfig(),
        tls=tls or TlsConfig(),
        jobs=job_tables or {},
        scheduler=scheduler or SchedulerConfig(catch_up=False),
        http=http or HttpConfig(address=http_address),
        ledger=LedgerConfig(url=ledger_url),
        notify=notify or NotifyConfig(),
        replication=replication or ReplicationConfig(),
    )
    async with serving_daemon(Daemon(config, jobs, clock=clock, log_hub=log_hub)) as daemon:
        address = daemon.listening.addresses[0]
        channel = grpc.aio.insecure_channel(address)
        try:
            stub: pb_grpc.ManagementAsyncStub = pb_grpc.ManagementStub(channel)
            yield Running(daemon, channel, stub, address)
        finally:
            await channel.close(grace=None)


@asynccontextmanager
async def serving_daemon(daemon: Daemon) -> AsyncIterator[Daemon]:
    """Serve `daemon` in this loop until the block ends, then stop it and wait (bounded)."""
    serving = asyncio.create_task(daemon.serve(handle_signals=False))
    ready = asyncio.create_task(daemon.listening.ready.wait())
    done, _ = await asyncio.wait({serving, ready}, timeout=BOUND, return_when="FIRST_COMPLETED")
    if serving in done:
        ready.cancel()
        serving.result()  # raises the start-up error
        raise AssertionError("daemon stopped before it was ready")
    assert ready in done, "daemon did not become ready in time"
    try:
        yield daemon
    finally:
        daemon.request_stop()
        grace = daemon.config.daemon.shutdown_grace + daemon.config.daemon.cancel_grace
        async with asyncio.timeout(BOUND + grace):
            await serving


@dataclass
class Served:
    """A daemon serving from its own thread: its address, and the daemon for inspection."""

    daemon: Daemon
    address: str
    loop: asyncio.AbstractEventLoop


@contextmanager
def daemon_in_thread(
    state_dir: Path, jobs: Sequence[JobSpec] = (), **options: Any
) -> Iterator[Served]:
    """`running_daemon(state_dir, jobs, **options)` on a thread with its own event loop, for
    callers that block (a synchronous gRPC client); stopped and joined, bounded, at the end."""
    ready = threading.Event()
    served: list[Served] = []
    failure: list[BaseException] = []
    stop: list[asyncio.Event] = []

    async def serve() -> None:
        stop.append(asyncio.Event())
        async with running_daemon(state_dir, jobs, **options) as rt:
            served.append(Served(rt.daemon, rt.address, asyncio.get_running_loop()))
            ready.set()
            await stop[0].wait()

    def main() -> None:
        try:
            asyncio.run(serve())
        except BaseException as error:  # handed to the test below
            failure.append(error)
        finally:
            ready.set()

    thread = threading.Thread(target=main, name="test-daemon", daemon=True)
    thread.start()
    if not ready.wait(BOUND * 3):
        raise AssertionError("the daemon thread did not start serving in time")
    if failure:
        raise failure[0]
    try:
        yield served[0]
    finally:
        served[0].loop.call_soon_threadsafe(stop[0].set)
        thread.join(BOUND * 3)
        assert not thread.is_alive(), "the daemon thread did not stop in time"
    if failure:
        raise failure[0]
