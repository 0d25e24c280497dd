"""The hybrid logical clock: 48 bits of wall-clock milliseconds, 16 bits of counter."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from syncd.errors import ClockAheadError

DEFAULT_MAX_DRIFT_MS = 5 * 60 * 1000


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Hlc:
    """Issues strictly increasing hlc values, never below any it has observed.

    A local write takes `max(wall_ms << 16, last + 1)`; a received version moves `last` up to
    it. A version more than `max_drift_ms` ahead of the wall clock is refused (`check`), so one
    fast clock cannot win every conflict.
    """

    def __init__(
        self,
        wall: Callable[[], int] = wall_ms,
        last: int = 0,
        max_drift_ms: int = DEFAULT_MAX_DRIFT_MS,
    ) -> None:
        self._wall = wall
        self._last = last
        self.max_drift_ms = max_drift_ms
        self._lock = threading.Lock()

    def now(self) -> int:
        with self._lock:
            self._last = max(self._wall() << 16, self._last + 1)
            return self._last

    def peek(self) -> int:
        with self._lock:
            return max(self._wall() << 16, self._last)

    def observe(self, hlc: int) -> None:
        with self._lock:
            self._last = max(self._last, hlc)

    def check(self, hlc: int, origin: str) -> None:
        ahead = (hlc >> 16) - self._wall()
        if ahead > self.max_drift_ms:
            raise ClockAheadError(origin, ahead, self.max_drift_ms)
