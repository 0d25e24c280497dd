"""Time, injected: the daemon reads the clock only through a Clock so tests can drive it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Protocol

from syncd.errors import ConfigError


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps, for durations."""
        ...

    async def wait(self, event: asyncio.Event, timeout: float | None) -> bool:
        """Wait until `event` is set or `timeout` seconds of this clock pass; True if set."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def wait(self, event: asyncio.Event, timeout: float | None) -> bool:
        return await wait_event(event, timeout)


CLOCK_OFFSET_ENV = "SYNCD_CLOCK_OFFSET"


class OffsetClock(SystemClock):
    """The real clock moved by a fixed number of seconds: how tests (and an operator's
    rehearsal) give a replica a skewed wall clock. Monotonic time is untouched."""

    def __init__(self, offset: float) -> None:
        self.offset = timedelta(seconds=offset)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


def clock_from_env(env: Mapping[str, str]) -> Clock:
    """The system clock, skewed by $SYNCD_CLOCK_OFFSET seconds when set (tests and drills
    only: a production replica's wall clock should come from NTP)."""
    raw = env.get(CLOCK_OFFSET_ENV, "").strip()
    if not raw:
        return SystemClock()
    try:
        offset = float(raw)
    except ValueError:
        raise ConfigError(CLOCK_OFFSET_ENV, f"expected seconds, got {raw[:40]!r}") from None
    if not -86400 <= offset <= 86400:
        raise ConfigError(CLOCK_OFFSET_ENV, f"at most a day either way, got {offset:g}")
    return OffsetClock(offset)


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


async def wait_event(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait for `event` at most `timeout` seconds (None: forever); True if it was set."""
    if timeout is None:
        await event.wait()
        return True
    try:
        async with asyncio.timeout(max(0.0, timeout)):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True
