"""SYNCD_CLOCK_OFFSET, _RATE and _ANCHOR: the test/drill-only way to give a daemon a skewed
wall clock, and one that runs faster than real time."""

from __future__ import annotations

import asyncio
import contextlib
import time
import unittest.mock
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo

import pytest

from syncd import clock as clock_module
from syncd.clock import (
    CLOCK_ANCHOR_ENV,
    CLOCK_OFFSET_ENV,
    CLOCK_RATE_ENV,
    OffsetClock,
    ScaledClock,
    SystemClock,
    clock_from_env,
    real_paced,
)
from syncd.errors import ConfigError


def test_without_the_variable_the_clock_is_the_system_clock() -> None:
    assert type(clock_from_env({})) is SystemClock
    assert type(clock_from_env({CLOCK_OFFSET_ENV: " "})) is SystemClock


def test_an_offset_moves_the_wall_clock_only() -> None:
    """Two minutes behind: now() is about 120 s earlier; monotonic time is the real one."""
    clock = clock_from_env({CLOCK_OFFSET_ENV: "-120"})
    assert isinstance(clock, OffsetClock)
    before = datetime.now(UTC)
    skewed = clock.now()
    after = datetime.now(UTC)
    assert before.timestamp() - 121 < skewed.timestamp() < after.timestamp() - 119
    assert skewed.tzinfo is not None


@pytest.mark.parametrize("raw", ["soon", "nan", "90000", "-1e9"])
def test_a_bad_offset_is_a_configuration_error_naming_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        clock_from_env({CLOCK_OFFSET_ENV: raw})
    assert info.value.key_path == CLOCK_OFFSET_ENV


# --- SYNCD_CLOCK_RATE and SYNCD_CLOCK_ANCHOR: a clock faster than real time ------------------


def _anchor_ago(seconds: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat()


def test_two_clocks_sped_up_from_one_anchor_stay_exactly_their_offsets_apart() -> None:
    """Sixty times faster from an anchor ten seconds ago: each clock is ten minutes ahead of
    the real one, plus its offset; read at one real instant they are 240 s apart."""
    anchor = _anchor_ago(10)
    ahead = clock_from_env(
        {CLOCK_RATE_ENV: "60", CLOCK_ANCHOR_ENV: anchor, CLOCK_OFFSET_ENV: "120"}
    )
    behind = clock_from_env(
        {CLOCK_RATE_ENV: "60", CLOCK_ANCHOR_ENV: anchor, CLOCK_OFFSET_ENV: "-120"}
    )
    assert isinstance(ahead, ScaledClock) and isinstance(behind, ScaledClock)
    frozen = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    with _real_time_frozen_at(frozen):
        apart = ahead.now() - behind.now()
        ran = (ahead.now() - ahead.offset - ahead.anchor) / 60
    assert apart == timedelta(seconds=240)
    assert ran == frozen - ahead.anchor
    real = datetime.now(UTC)
    lead = (ahead.now() - real).total_seconds()
    assert 590 + 120 - 60 < lead < 600 + 120 + 60  # ~10 s x 59 ahead, and the offset


@contextlib.contextmanager
def _real_time_frozen_at(instant: datetime) -> Iterator[None]:
    """The real wall clock as the scaled clock reads it, held at `instant`."""

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Frozen:
            return cls.fromtimestamp(instant.timestamp(), tz)

    with unittest.mock.patch.object(clock_module, "datetime", Frozen):
        yield


def test_a_sped_up_clock_measures_durations_and_waits_at_its_rate() -> None:
    """A wait of 30 clock seconds at rate 1000 times out after 30 ms; monotonic time runs
    1000 times faster; the lease clock beside it keeps real-time durations."""
    clock = clock_from_env({CLOCK_RATE_ENV: "1000"})
    assert isinstance(clock, ScaledClock)

    async def timed_wait() -> tuple[bool, float, float]:
        real, paced = time.monotonic(), clock.monotonic()
        woke = await clock.wait(asyncio.Event(), 30.0)
        return woke, time.monotonic() - real, clock.monotonic() - paced

    woke, real_elapsed, clock_elapsed = asyncio.run(timed_wait())
    assert woke is False
    assert real_elapsed < 10  # 30 s of the clock, far less in real time
    assert clock_elapsed >= 29.0
    lease = real_paced(clock)
    before = time.monotonic()
    assert before - 1 <= lease.monotonic() <= time.monotonic() + 1
    assert abs((lease.now() - clock.now()).total_seconds()) < 60  # the same wall clock
    plain = clock_from_env({})
    assert real_paced(plain) is plain


def test_a_set_event_ends_a_sped_up_wait_at_once() -> None:
    clock = clock_from_env({CLOCK_RATE_ENV: "2"})

    async def set_then_wait() -> bool:
        event = asyncio.Event()
        event.set()
        return await clock.wait(event, None)

    assert asyncio.run(set_then_wait()) is True


def test_without_an_anchor_a_sped_up_clock_starts_at_the_real_time() -> None:
    clock = clock_from_env({CLOCK_RATE_ENV: "10", CLOCK_OFFSET_ENV: "-120"})
    assert isinstance(clock, ScaledClock)
    skew = (clock.now() - datetime.now(UTC)).total_seconds()
    assert -125 < skew < -100


@pytest.mark.parametrize(
    ("env", "key", "says"),
    [
        ({CLOCK_RATE_ENV: "fast"}, CLOCK_RATE_ENV, "expected a number"),
        ({CLOCK_RATE_ENV: "0.5"}, CLOCK_RATE_ENV, "from 1 (real time) to 1000"),
        ({CLOCK_RATE_ENV: "0"}, CLOCK_RATE_ENV, "from 1"),
        ({CLOCK_RATE_ENV: "-60"}, CLOCK_RATE_ENV, "from 1"),
        ({CLOCK_RATE_ENV: "1e6"}, CLOCK_RATE_ENV, "from 1"),
        ({CLOCK_RATE_ENV: "nan"}, CLOCK_RATE_ENV, "from 1"),
        ({CLOCK_RATE_ENV: "inf"}, CLOCK_RATE_ENV, "from 1"),
        ({CLOCK_ANCHOR_ENV: "2026-12-02T00:00:00+00:00"}, CLOCK_ANCHOR_ENV, "applies only"),
        ({CLOCK_RATE_ENV: "60", CLOCK_ANCHOR_ENV: "yesterday"}, CLOCK_ANCHOR_ENV, "ISO 8601"),
        (
            {CLOCK_RATE_ENV: "60", CLOCK_ANCHOR_ENV: "2026-12-02T00:00:00"},
            CLOCK_ANCHOR_ENV,
            "needs a time zone",
        ),
        ({CLOCK_RATE_ENV: "60", CLOCK_ANCHOR_ENV: "2999-01-01T00:00Z"}, CLOCK_ANCHOR_ENV, "future"),
        (  # an hour ago at rate 60: the clock would start 59 hours ahead
            {CLOCK_RATE_ENV: "60", CLOCK_ANCHOR_ENV: "an hour ago"},
            CLOCK_ANCHOR_ENV,
            "at most a day",
        ),
        ({CLOCK_RATE_ENV: "60", CLOCK_OFFSET_ENV: "1e9"}, CLOCK_OFFSET_ENV, "at most a day"),
    ],
)
def test_a_bad_rate_or_anchor_is_a_configuration_error_naming_the_variable(
    env: dict[str, str], key: str, says: str
) -> None:
    if env.get(CLOCK_ANCHOR_ENV) == "an hour ago":
        env = {**env, CLOCK_ANCHOR_ENV: _anchor_ago(3600)}
    with pytest.raises(ConfigError) as info:
        clock_from_env(env)
    assert info.value.key_path == key
    assert says in info.value.problem
