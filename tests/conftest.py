"""Shared fixtures: short private temp dirs, logging reset, and an in-process daemon harness."""

from __future__ import annotations

import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C reaches the processes the tests start, as at a terminal. A suite started in
    the background by a non-interactive shell inherits SIGINT ignored, and so would every
    syncctl and daemon it starts: Python never turns an ignored SIGINT into
    KeyboardInterrupt, so the tests of Ctrl-C would wait in vain. A handler (unlike an
    ignored signal) is reset to the default in a child at exec."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temp dir with a short path: unix socket paths must stay under 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="sd-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    """Each test starts from structlog's defaults (main() configures it globally)."""
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
