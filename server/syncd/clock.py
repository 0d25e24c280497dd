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
CLOCK_RATE_ENV = "SYNCD_CLOCK_RATE"
CLOCK_ANCHOR_ENV = "SYNCD_CLOCK_ANCHOR"
MAX_SKEW = timedelta(days=1)  # an injected clock starts at most this far from the real one
MAX_RATE = 1000.0


class OffsetClock(SystemClock):
    """The real clock moved by a fixed number of seconds: how tests (and an operator's
    rehearsal) give a replica a skewed wall clock. Monotonic time is untouched."""

    def __init__(self, offset: float) -> None:
        self.offset = timedelta(seconds=offset)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


class ScaledClock:
    """A clock `rate` times faster than the real one, for drills that need hours of schedule
    in minutes: at the real instant t it reads `anchor + offset + rate * (t - anchor)`.

    Replicas given one anchor and one rate stay exactly their offsets apart however long they
    run. Durations (`monotonic`) and waits run at the same rate, so a scheduler waiting for a
    slot an hour away wakes after 3.6 s at rate 1000. `real_paced` is the same wall clock with
    real-time durations and waits, for what is a promise in real seconds (leases)."""

    def __init__(self, offset: float, rate: float, anchor: datetime) -> None:
        self.offset = timedelta(seconds=offset)
        self.rate = rate
        self.anchor = anchor
        self.real_paced: Clock = _RealPaced(self)

    def now(self) -> datetime:
        return self.anchor + self.offset + (datetime.now(UTC) - self.anchor) * self.rate

    def monotonic(self) -> float:
        return time.monotonic() * self.rate

    async def wait(self, event: asyncio.Event, timeout: float | None) -> bool:
        return await wait_event(event, None if timeout is None else timeout / self.rate)


class _RealPaced(SystemClock):
    def __init__(self, wall: ScaledClock) -> None:
        self._wall = wall

    def now(self) -> datetime:
        return self._wall.now()


def real_paced(clock: Clock) -> Clock:
    """`clock` with real-time durations and waits: what a lease is measured with (a lease is
    granted for real seconds on the database's clock, whatever rate a drill's clock runs at)."""
    return clock.real_paced if isinstance(clock, ScaledClock) else clock


def clock_from_env(env: Mapping[str, str]) -> Clock:
    """The system clock, skewed by $SYNCD_CLOCK_OFFSET seconds and sped up $SYNCD_CLOCK_RATE
    times from the instant $SYNCD_CLOCK_ANCHOR when set (tests and drills only: a production
    replica's wall clock should come from NTP)."""
    offset = _seconds(env, CLOCK_OFFSET_ENV)
    rate = _rate(env)
    raw_anchor = env.get(CLOCK_ANCHOR_ENV, "").strip()
    if rate is None:
        if raw_anchor:
            raise ConfigError(CLOCK_ANCHOR_ENV, f"applies only with {CLOCK_RATE_ENV}")
        return SystemClock() if offset is None else OffsetClock(offset)
    real = datetime.now(UTC)
    anchor = _anchor(raw_anchor, real) if raw_anchor else real
    clock = ScaledClock(offset or 0.0, rate, anchor)
    skew = clock.now() - real
    if abs(skew) > MAX_SKEW:
        raise ConfigError(
            CLOCK_ANCHOR_ENV,
            f"at rate {rate:g} from {anchor.isoformat()} the clock would start"
            f" {skew.total_seconds():.0f}s from the real one (at most a day either way)",
        )
    return clock


def _seconds(env: Mapping[str, str], key: str) -> float | None:
    raw = env.get(key, "").strip()
    if not raw:
        return None
    try:
        offset = float(raw)
    except ValueError:
        raise ConfigError(key, f"expected seconds, got {raw[:40]!r}") from None
    if not -MAX_SKEW.total_seconds() <= offset <= MAX_SKEW.total_seconds():
        raise ConfigError(key, f"at most a day either way, got {offset:g}")
    return offset


def _rate(env: Mapping[str, str]) -> float | None:
    raw = env.get(CLOCK_RATE_ENV, "").strip()
    if not raw:
        return None
    try:
        rate = float(raw)
    except ValueError:
        raise ConfigError(CLOCK_RATE_ENV, f"expected a number, got {raw[:40]!r}") from None
    if not 1.0 <= rate <= MAX_RATE:  # also refuses nan and inf
        raise ConfigError(
            CLOCK_RATE_ENV, f"from 1 (real time) to {MAX_RATE:g} times faster, got {rate:g}"
        )
    return rate


def _anchor(raw: str, real: datetime) -> datetime:
    try:
        anchor = datetime.fromisoformat(raw)
    except ValueError:
        raise ConfigError(
            CLOCK_ANCHOR_ENV, f"expected an ISO 8601 instant, got {raw[:40]!r}"
        ) from None
    if anchor.tzinfo is None:
        raise ConfigError(
            CLOCK_ANCHOR_ENV, f"needs a time zone (e.g. {raw[:40]}+00:00), got {raw[:40]!r}"
        )
    if anchor > real:
        raise ConfigError(CLOCK_ANCHOR_ENV, f"must not be in the future, got {raw[:40]!r}")
    return anchor.astimezone(UTC)


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
