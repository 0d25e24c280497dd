"""Time, injected: the daemon reads the clock only through a Clock so tests can drive it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps, for durations."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


_UNITS = (
    (timedelta(days=1).total_seconds(), "d"),
    (3600.0, "h"),
    (60.0, "min"),
    (1.0, "s"),
    (1e-3, "ms"),
    (1e-6, "\u03bcs"),
    (1e-9, "ns"),
)


def stopwatch_text(seconds: float) -> str:
    """Elapsed time the way the old service's Guava Stopwatch printed it: "3.512 min".

    The largest unit with a value of at least one, four significant digits.
    """
    if seconds <= 0:
        return "0s"
    for size, unit in _UNITS:
        if seconds >= size or unit == "ns":
            text = format(seconds / size, "#.4g").rstrip(".")
            return f"{text} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover
