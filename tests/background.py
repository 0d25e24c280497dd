"""A real in-process daemon served on its own event loop in a background thread.

Property-based tests call it through blocking clients (a sync gRPC stub, `http.client`) from
Hypothesis examples, which cannot be coroutines; the daemon is the one the other tests use.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from syncd.app.daemon import Daemon
from syncd.config import Config, DaemonConfig, HttpConfig, LedgerConfig, SchedulerConfig
from syncd.job import JobSpec
from tests.harness import BOUND, serving_daemon


@contextmanager
def daemon_in_thread(
    state_dir: Path,
    jobs: Sequence[JobSpec],
    http: HttpConfig | None = None,
    ledger_url: str = "",
) -> Iterator[Daemon]:
    """A serving daemon for the block's duration; stopped and awaited (bounded) after it."""
    config = Config(
        daemon=DaemonConfig(state_dir=state_dir, execution="thread", shutdown_grace=5.0),
        scheduler=SchedulerConfig(catch_up=False),
        http=http or HttpConfig(address=""),
        ledger=LedgerConfig(url=ledger_url),
    )
    daemon = Daemon(config, jobs)
    ready = threading.Event()
    failure: list[BaseException] = []
    loop_box: list[asyncio.AbstractEventLoop] = []
    stop_box: list[asyncio.Event] = []

    async def main() -> None:
        stop = asyncio.Event()
        loop_box.append(asyncio.get_running_loop())
        stop_box.append(stop)
        async with serving_daemon(daemon):
            ready.set()
            await stop.wait()

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # reported to the test below
            failure.append(exc)
        finally:
            ready.set()

    thread = threading.Thread(target=target, name="daemon-loop", daemon=True)
    thread.start()
    assert ready.wait(BOUND), "daemon did not start in time"
    if failure:
        raise failure[0]
    try:
        yield daemon
    finally:
        loop_box[0].call_soon_threadsafe(stop_box[0].set)
        thread.join(BOUND * 2)
        assert not thread.is_alive(), "daemon did not stop in time"
        if failure:
            raise failure[0]
