"""A real in-process daemon served on its own event loop in a background thread.

Property-based tests call it through blocking clients (a sync gRPC stub, `http.client`) from
Hypothesis examples, which cannot be coroutines; the daemon is the one the other tests use, served
by the suite's one thread harness (`tests.harness.daemon_in_thread`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from syncd.app.daemon import Daemon
from syncd.config import AuthConfig, HttpConfig
from syncd.job import JobSpec
from tests import harness


@contextmanager
def daemon_in_thread(
    state_dir: Path,
    jobs: Sequence[JobSpec],
    http: HttpConfig | None = None,
    ledger_url: str = "",
    auth: AuthConfig | None = None,
) -> Iterator[Daemon]:
    """A serving daemon for the block's duration; stopped and awaited (bounded) after it."""
    with harness.daemon_in_thread(
        state_dir, jobs, http=http, ledger_url=ledger_url, auth=auth
    ) as served:
        yield served.daemon
