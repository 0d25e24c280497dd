"""Next-fire computation: fixed datetimes in, fire times out; UTC whatever the host's zone."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.scheduling.timetable import (
    Cron,
    Every,
    ScheduleError,
    fires_between,
    parse_at,
    parse_every,
)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


class TestDailyAt:
    def test_fires_later_today_or_tomorrow(self) -> None:
        """00:05 after 00:04 is today; after 00:05 exactly, tomorrow."""
        at = parse_at("00:05")
        assert at.next_after(utc(2026, 11, 22, 0, 4)) == utc(2026, 11, 22, 0, 5)
        assert at.next_after(utc(2026, 11, 22, 0, 5)) == utc(2026, 11, 23, 0, 5)

    @pytest.mark.parametrize("text", ["25:00", "12:60", "noon", "1:2", "23:59:61"])
    def test_bad_times_are_refused(self, text: str) -> None:
        """Times that are not HH:MM in range are refused with a reason."""
        with pytest.raises(ScheduleError):
            parse_at(text)


class TestEvery:
    def test_intervals_align_to_the_epoch(self) -> None:
        """every 15m fires at :00, :15, :30, :45."""
        every = parse_every("15m")
        assert every.next_after(utc(2026, 11, 22, 13, 7)) == utc(2026, 11, 22, 13, 15)
        assert every.next_after(utc(2026, 11, 22, 13, 15)) == utc(2026, 11, 22, 13, 30)

    def test_too_short_intervals_are_refused(self) -> None:
        """Intervals under a second are refused."""
        with pytest.raises(ScheduleError, match="at least 1s"):
            parse_every("500ms")


class TestCron:
    def test_the_old_default_crons(self) -> None:
        """The old service's `0 05 0 * * *` is 00:05:00 UTC daily."""
        cron = Cron.parse("0 05 0 * * *")
        assert cron.next_after(utc(2026, 11, 22, 0, 4, 59)) == utc(2026, 11, 22, 0, 5)
        assert cron.next_after(utc(2026, 11, 22, 0, 5)) == utc(2026, 11, 23, 0, 5)

    def test_weekday_names_ranges_and_steps(self) -> None:
        """MON-FRI, */20 and lists work as in Spring."""
        cron = Cron.parse("0 */20 9-10 * * MON-FRI")
        saturday = utc(2026, 11, 21, 12, 0)
        assert cron.next_after(saturday) == utc(2026, 11, 23, 9, 0)
        assert fires_between(cron, utc(2026, 11, 23, 9, 0), utc(2026, 11, 23, 11, 0)) == [
            utc(2026, 11, 23, 9, 20),
            utc(2026, 11, 23, 9, 40),
            utc(2026, 11, 23, 10, 0),
            utc(2026, 11, 23, 10, 20),
            utc(2026, 11, 23, 10, 40),
        ]

    def test_sunday_is_0_and_7(self) -> None:
        """Day of week 0 and 7 both mean Sunday."""
        assert Cron.parse("0 0 0 * * 7").next_after(utc(2026, 11, 22, 1)) == utc(2026, 11, 29)
        assert Cron.parse("0 0 0 * * 0").next_after(utc(2026, 11, 22, 1)) == utc(2026, 11, 29)

    def test_leap_day(self) -> None:
        """29 February waits for a leap year."""
        assert Cron.parse("0 0 0 29 2 ?").next_after(utc(2026, 3, 1)) == utc(2028, 2, 29)

    def test_five_fields_mean_seconds_zero(self) -> None:
        """A classic 5-field cron is accepted with second 0."""
        assert Cron.parse("30 2 * * *").next_after(utc(2026, 1, 1)) == utc(2026, 1, 1, 2, 30)

    @pytest.mark.parametrize(
        ("expr", "reason"),
        [
            ("0 0 25 * * *", "hour: 25 is outside 0-23"),
            ("0 61 0 * * *", "minute: 61 is outside 0-59"),
            ("0 0 * * *", None),
            ("a b c d e f", "second: 'A' is not a number"),
            ("0 0 0 * * *  1", "cron needs 6 fields"),
            ("0 0 0 31 2 *", "never fires"),
            ("0 0 5-2 * * *", "runs backwards"),
        ],
    )
    def test_bad_expressions_say_what_is_wrong(self, expr: str, reason: str | None) -> None:
        """Each bad expression is refused with the field and the fault."""
        if reason is None:  # 5 fields is legal
            Cron.parse(expr)
            return
        with pytest.raises(ScheduleError, match=reason):
            Cron.parse(expr).next_after(utc(2026, 1, 1))


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    st.sampled_from(["0 05 0 * * *", "0 */15 * * * *", "30 9 1 * * MON", "0 0 12 1 1 *"]),
)
def test_next_fire_is_strictly_later_and_matches(moment: datetime, expr: str) -> None:
    """The next fire is after the instant, matches the expression, and none lies between."""
    cron = Cron.parse(expr)
    fire = cron.next_after(moment)
    assert fire > moment
    assert fire.second in cron.seconds and fire.minute in cron.minutes
    assert fire.hour in cron.hours and fire.month in cron.months
    assert cron.next_after(fire - timedelta(seconds=1)) == fire


@given(st.datetimes(timezones=st.just(UTC)), st.integers(min_value=1, max_value=86400 * 3))
def test_every_fires_on_its_grid(moment: datetime, seconds: int) -> None:
    """An interval's next fire is on the epoch-aligned grid and at most one interval away."""
    fire = Every(float(seconds)).next_after(moment)
    assert moment < fire <= moment + timedelta(seconds=seconds)
    assert (fire - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() % seconds == 0


@pytest.fixture(params=["Europe/London", "America/New_York"])
def host_zone(request: pytest.FixtureRequest) -> Iterator[str]:
    """The process's local time zone set to a zone with DST, restored afterwards."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = request.param
    time.tzset()
    try:
        yield request.param
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        # London: BST starts 29 Mar 2026 01:00 UTC, ends 25 Oct 2026 01:00 UTC.
        (utc(2026, 3, 28, 12), utc(2026, 3, 29, 0, 5)),
        (utc(2026, 3, 29, 0, 5), utc(2026, 3, 30, 0, 5)),
        (utc(2026, 10, 24, 12), utc(2026, 10, 25, 0, 5)),
        # New York: DST starts 8 Mar 2026, ends 1 Nov 2026.
        (utc(2026, 3, 7, 12), utc(2026, 3, 8, 0, 5)),
        (utc(2026, 10, 31, 12), utc(2026, 11, 1, 0, 5)),
    ],
)
def test_fires_are_utc_whatever_the_host_zone(
    host_zone: str, after: datetime, expected: datetime
) -> None:
    """With TZ set to a DST zone, across its changes, 00:05 is still 00:05 UTC each day."""
    assert time.tzname[0] != "UTC"
    assert parse_at("00:05").next_after(after) == expected
    assert Cron.parse("0 5 0 * * *").next_after(after) == expected
    # 24 fires over a DST change are exactly one day apart.
    fires = fires_between(parse_at("00:05"), after, after + timedelta(days=24))
    assert all(b - a == timedelta(days=1) for a, b in itertools.pairwise(fires))
