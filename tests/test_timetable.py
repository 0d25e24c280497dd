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
    last_fire_between,
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
            ("0 0 25 * * *", "hour: '25' is not acceptable, out of range"),
            ("0 61 0 * * *", "minute: '61' is not acceptable"),
            ("a b c d e f", "second: 'a' is not acceptable"),
            ("0 0 0 * * *  1", "cron needs 6 fields .* got 7 fields"),
            ("garbage", "cron needs 6 fields .* got 1 fields"),
            ("0 0 0 31 2 *", "never fires"),
            ("0 0 5-2 * * *", "range 5-2 runs backwards"),
            ("@reboot", "cron macros are @yearly, .*; got '@reboot'"),
            ("@daily 0", "cron macros are"),
            ("H 0 * * *", "H and R fields are not supported"),
            ("0 R * * *", "H and R fields are not supported"),
            ("0 0 * * MON#6", "day of week: 'MON#6' is not acceptable"),
        ],
    )
    def test_bad_expressions_say_what_is_wrong(self, expr: str, reason: str) -> None:
        """Each bad expression is refused with the field and the fault."""
        with pytest.raises(ScheduleError, match=reason):
            Cron.parse(expr).next_after(utc(2026, 1, 1))

    def test_messages_quote_a_bounded_slice(self) -> None:
        """A huge field is quoted cut short, never whole."""
        with pytest.raises(ScheduleError) as caught:
            Cron.parse("x" * 5000 + " * * * *")
        assert len(str(caught.value)) < 300


class TestClassicCron:
    def test_day_of_month_or_day_of_week(self) -> None:
        """Classic `0 0 1 * MON` fires on the 1st AND on every Monday (crontab ORs the days)."""
        cron = Cron.parse("0 0 1 * MON")
        # December 2026: Tuesday 1st, Mondays 7, 14, 21, 28; then Friday 1 January.
        assert fires_between(cron, utc(2026, 11, 30, 1), utc(2027, 1, 1)) == [
            utc(2026, 12, 1),
            utc(2026, 12, 7),
            utc(2026, 12, 14),
            utc(2026, 12, 21),
            utc(2026, 12, 28),
            utc(2027, 1, 1),
        ]

    def test_one_restricted_day_field_alone_decides(self) -> None:
        """With the other day field `*`, only the restricted one counts, as in crontab."""
        mondays = fires_between(Cron.parse("0 0 * * MON"), utc(2026, 12, 1), utc(2027, 1, 1))
        assert [d.day for d in mondays] == [7, 14, 21, 28]
        firsts = fires_between(Cron.parse("0 0 1 * *"), utc(2026, 10, 15), utc(2027, 1, 1))
        assert firsts == [utc(2026, 11, 1), utc(2026, 12, 1), utc(2027, 1, 1)]

    def test_last_day_of_month(self) -> None:
        """`L` in the day-of-month field is the month's last day, leap years included."""
        cron = Cron.parse("0 0 L * *")
        assert fires_between(cron, utc(2028, 1, 1), utc(2028, 4, 1)) == [
            utc(2028, 1, 31),
            utc(2028, 2, 29),
            utc(2028, 3, 31),
        ]

    def test_nth_weekday(self) -> None:
        """`MON#2` is the second Monday of the month."""
        cron = Cron.parse("30 6 * * MON#2")
        assert cron.next_after(utc(2026, 12, 1)) == utc(2026, 12, 14, 6, 30)
        assert cron.next_after(utc(2026, 12, 14, 6, 30)) == utc(2027, 1, 11, 6, 30)

    @pytest.mark.parametrize(
        ("macro", "after", "expected"),
        [
            ("@daily", utc(2026, 12, 2, 13), utc(2026, 12, 3)),
            ("@midnight", utc(2026, 12, 2, 13), utc(2026, 12, 3)),
            ("@hourly", utc(2026, 12, 2, 13, 1), utc(2026, 12, 2, 14)),
            ("@weekly", utc(2026, 12, 2), utc(2026, 12, 6)),  # Sunday
            ("@monthly", utc(2026, 12, 2), utc(2027, 1, 1)),
            ("@yearly", utc(2026, 12, 2), utc(2027, 1, 1)),
            ("@annually", utc(2027, 1, 1), utc(2028, 1, 1)),
            ("@DAILY", utc(2026, 12, 2, 13), utc(2026, 12, 3)),
        ],
    )
    def test_macros(self, macro: str, after: datetime, expected: datetime) -> None:
        """@daily and friends mean what crontab means by them."""
        assert Cron.parse(macro).next_after(after) == expected


class TestSpringCron:
    @pytest.mark.parametrize(
        ("expr", "hour", "minute"),
        [
            ("0 05 0 * * *", 0, 5),
            ("0 09 0 * * *", 0, 9),
            ("0 29 0 * * *", 0, 29),
            ("0 0 1 * * *", 1, 0),
            ("0 09 1 * * *", 1, 9),
            ("0 19 1 * * *", 1, 19),
            ("0 29 1 * * *", 1, 29),
            ("0 39 1 * * *", 1, 39),
            ("0 45 1 * * *", 1, 45),
            ("0 49 1 * * *", 1, 49),
            ("0 55 1 * * *", 1, 55),
        ],
    )
    def test_the_old_services_defaults(self, expr: str, hour: int, minute: int) -> None:
        """Every APPLICATION_CRON_* default of the old service fires daily at its UTC time."""
        cron = Cron.parse(expr)
        fires = fires_between(cron, utc(2026, 12, 1), utc(2026, 12, 4))
        assert fires == [utc(2026, 12, d, hour, minute) for d in (1, 2, 3)]

    def test_day_of_month_and_day_of_week(self) -> None:
        """Spring ANDs the day fields: `0 0 0 1 * MON` is a 1st that is a Monday."""
        cron = Cron.parse("0 0 0 1 * MON")
        assert fires_between(cron, utc(2026, 1, 1), utc(2027, 2, 28)) == [
            utc(2026, 6, 1),
            utc(2027, 2, 1),
        ]

    def test_question_mark_seconds_and_quartz_last_weekday(self) -> None:
        """`?` is "any"; seconds fire; `5L` (Quartz, Spring) is the month's last Friday."""
        every_15s = Cron.parse("*/15 * * ? * *")
        assert every_15s.next_after(utc(2026, 12, 2, 0, 0, 1)) == utc(2026, 12, 2, 0, 0, 15)
        last_friday = Cron.parse("0 0 18 ? * 5L")
        assert last_friday.next_after(utc(2026, 12, 1)) == utc(2026, 12, 25, 18)
        assert last_friday.next_after(utc(2026, 12, 26)) == utc(2027, 1, 29, 18)
        assert Cron.parse("0 0 9 ? * FRI#1").next_after(utc(2026, 12, 2)) == utc(2026, 12, 4, 9)
        assert Cron.parse("0 0 0 L * ?").next_after(utc(2027, 2, 2)) == utc(2027, 2, 28)


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    st.sampled_from(
        ["0 05 0 * * *", "0 */15 * * * *", "30 9 1 * * MON", "0 0 12 1 1 *", "0 0 1 * MON"]
    ),
)
def test_next_fire_is_strictly_later_and_none_lies_between(moment: datetime, expr: str) -> None:
    """The next fire is after the instant, on a whole second, and no fire lies between."""
    cron = Cron.parse(expr)
    fire = cron.next_after(moment)
    assert fire > moment and fire.microsecond == 0 and fire.tzinfo == UTC
    assert cron.next_after(fire - timedelta(seconds=1)) == fire
    halfway = moment + (fire - moment) / 2
    assert cron.next_after(max(moment, halfway)) == fire


@given(st.datetimes(timezones=st.just(UTC)), st.integers(min_value=1, max_value=86400 * 3))
def test_every_fires_on_its_grid(moment: datetime, seconds: int) -> None:
    """An interval's next fire is on the epoch-aligned grid and at most one interval away."""
    fire = Every(float(seconds)).next_after(moment)
    assert moment < fire <= moment + timedelta(seconds=seconds)
    assert (fire - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() % seconds == 0


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    st.sampled_from(["1s", "7s", "15m", "1h", "05:30", "0 */15 * * * *"]),
    st.integers(min_value=0, max_value=4 * 3600),
)
def test_the_last_fire_between_is_the_last_of_all_fires_between(
    end: datetime, schedule: str, seconds: int
) -> None:
    """Found directly for an interval (no list of a day of seconds), the same answer as
    listing every fire in (start, end]."""
    parsed = (
        Cron.parse(schedule)
        if " " in schedule
        else parse_at(schedule)
        if ":" in schedule
        else parse_every(schedule)
    )
    start = end - timedelta(seconds=seconds)
    listed = fires_between(parsed, start, end)
    assert last_fire_between(parsed, start, end) == (listed[-1] if listed else None)


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
