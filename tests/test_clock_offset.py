"""SYNCD_CLOCK_OFFSET: the test/drill-only way to give a daemon a skewed wall clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from syncd.clock import CLOCK_OFFSET_ENV, OffsetClock, SystemClock, clock_from_env
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
