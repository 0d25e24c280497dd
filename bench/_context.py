"""A RunContext for benchmarks that call a job body directly, in the measuring process."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from syncd.enums import Trigger
from syncd.errors import RunCancelled
from syncd.values import Value


class BenchLog:
    """Collects the jobs' log events instead of printing them."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def bind(self, **_fields: Any) -> BenchLog:
        return self

    def _keep(self, event: str, **fields: Any) -> None:
        self.events.append((event, fields))

    debug = info = warning = error = _keep


class BenchContext:
    """Never cancelled; counts the rows the body reports."""

    def __init__(self, bean: str, settings: Any, args: Mapping[str, Value] | None = None) -> None:
        self._bean = bean
        self._settings = settings
        self._args = dict(args or {})
        self._log = BenchLog()
        self.rows_read = 0
        self.rows_written = 0

    run_id = property(lambda self: f"bench-{self._bean}")
    fencing_token = property(lambda self: None)  # a single daemon: no fencing
    bean = property(lambda self: self._bean)
    trigger = property(lambda self: Trigger.MANUAL)
    args = property(lambda self: self._args)
    settings = property(lambda self: self._settings)
    log = property(lambda self: self._log)

    def is_cancelled(self) -> bool:
        return False

    def raise_if_cancelled(self) -> None:
        if self.is_cancelled():
            raise RunCancelled

    def wait_cancelled(self, timeout: float) -> bool:
        time.sleep(timeout)  # a retry back-off inside a benchmark run
        return False

    def report_progress(self, done: int, total: int | None = None) -> None:
        pass

    def add_rows(self, *, read: int = 0, written: int = 0) -> None:
        self.rows_read += read
        self.rows_written += written
