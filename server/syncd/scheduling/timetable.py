"""When jobs fire: daily `at`, interval `every`, and 6-field cron, all in UTC.

Next-fire times are pure functions of (schedule, instant), so they are tested with fixed
datetimes. We compute them ourselves rather than with the `schedule` library: `schedule`
works in the host's naive local time (UTC needs pytz), reads the real clock inside its jobs
(no clock can be injected), and has no cron expressions, which the old service's
APPLICATION_CRON_* variables are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from syncd.configvalues import parse_duration, shown

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SEARCH_DAYS = 366 * 5  # enough for any satisfiable cron (29 Feb on a given weekday aside)


class ScheduleError(ValueError):
    """A timetable entry that cannot be understood; the message says why."""


@dataclass(frozen=True, slots=True)
class DailyAt:
    """Every day at a UTC time of day."""

    at: time

    def next_after(self, moment: datetime) -> datetime:
        candidate = datetime.combine(moment.astimezone(UTC).date(), self.at, tzinfo=UTC)
        while candidate <= moment:
            candidate += timedelta(days=1)
        return candidate

    def describe(self) -> str:
        return f"daily at {self.at.strftime('%H:%M:%S' if self.at.second else '%H:%M')} UTC"


@dataclass(frozen=True, slots=True)
class Every:
    """Every `seconds`, aligned to the Unix epoch (so "15m" fires at :00, :15, :30, :45)."""

    seconds: float

    def next_after(self, moment: datetime) -> datetime:
        elapsed = (moment - _EPOCH).total_seconds()
        steps = int(elapsed // self.seconds) + 1
        candidate = _EPOCH + timedelta(seconds=steps * self.seconds)
        while candidate <= moment:  # float rounding at step boundaries
            candidate += timedelta(seconds=self.seconds)
        return candidate

    def describe(self) -> str:
        return f"every {self.seconds:g}s"


_MONTHS = {
    m: i
    for i, m in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], 1
    )
}
_DAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}
_CRON_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("second", 0, 59, {}),
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)


def _parse_cron_field(
    text: str, name: str, low: int, high: int, names: dict[str, int]
) -> frozenset[int]:
    values: set[int] = set()
    for part in text.upper().split(","):
        if part in ("*", "?"):
            values.update(range(low, high + 1))
            continue
        body, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not _is_number(step_text) or int(step_text) == 0:
                raise ScheduleError(f"{name}: bad step {shown(step_text)}")
            step = int(step_text)
        if body in ("*", "?"):
            start, end = low, high
        else:
            first, dash, last = body.partition("-")
            start = _cron_number(first, name, low, high, names)
            end = _cron_number(last, name, low, high, names) if dash else start
            if step_text and not dash:
                end = high
            if start > end:
                raise ScheduleError(f"{name}: range {body} runs backwards")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 10


def _cron_number(text: str, name: str, low: int, high: int, names: dict[str, int]) -> int:
    if text in names:
        return names[text]
    if not _is_number(text):
        raise ScheduleError(f"{name}: {shown(text)} is not a number")
    value = int(text)
    if not low <= value <= high:
        raise ScheduleError(f"{name}: {value} is outside {low}-{high}")
    return value


@dataclass(frozen=True, slots=True)
class Cron:
    """A Spring-style 6-field cron: second minute hour day-of-month month day-of-week.

    As in Spring, a day must match both the day-of-month and the day-of-week fields.
    """

    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday

    @classmethod
    def parse(cls, expression: str) -> Cron:
        fields = expression.split()
        if len(fields) == 5:  # classic cron: no seconds field
            fields = ["0", *fields]
        if len(fields) != 6:
            raise ScheduleError(
                f"cron needs 6 fields (second minute hour day month weekday), got {len(fields)}"
            )
        parsed = [
            _parse_cron_field(text, name, low, high, names)
            for text, (name, low, high, names) in zip(fields, _CRON_FIELDS, strict=True)
        ]
        seconds, minutes, hours, days, months, weekdays = parsed
        return cls(
            expression=expression,
            seconds=seconds,
            minutes=minutes,
            hours=hours,
            days=days,
            months=months,
            weekdays=frozenset(d % 7 for d in weekdays),
        )

    def _day_matches(self, day: date) -> bool:
        weekday = (day.weekday() + 1) % 7  # Python: Monday = 0; cron: Sunday = 0
        return day.month in self.months and day.day in self.days and weekday in self.weekdays

    def next_after(self, moment: datetime) -> datetime:
        start = moment.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
        times = (
            sorted(time(h, m, s) for h in self.hours for m in self.minutes for s in self.seconds)
            if len(self.hours) * len(self.minutes) * len(self.seconds) <= 5000
            else None
        )
        for offset in range(_SEARCH_DAYS):
            day = start.date() + timedelta(days=offset)
            if not self._day_matches(day):
                continue
            floor = start.time() if offset == 0 else time(0)
            found = self._first_time_from(floor, times)
            if found is not None:
                return datetime.combine(day, found, tzinfo=UTC)
        raise ScheduleError(f"cron {shown(self.expression)} never fires")

    def _first_time_from(self, floor: time, times: list[time] | None) -> time | None:
        if times is not None:
            return next((t for t in times if t >= floor), None)
        for h in sorted(self.hours):
            if h < floor.hour:
                continue
            for m in sorted(self.minutes):
                if (h, m) < (floor.hour, floor.minute):
                    continue
                for s in sorted(self.seconds):
                    if (h, m, s) >= (floor.hour, floor.minute, floor.second):
                        return time(h, m, s)
        return None

    def describe(self) -> str:
        return f"cron {self.expression} (UTC)"


Schedule = DailyAt | Every | Cron

_AT = re.compile(r"^([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?$")


def parse_at(text: str) -> DailyAt:
    match = _AT.match(text.strip())
    if not match:
        raise ScheduleError(f'expected "HH:MM" (UTC), got {shown(text)}')
    hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
    if hour > 23:
        raise ScheduleError(f"hour {hour} is not 0-23 in {shown(text)}")
    if minute > 59 or second > 59:
        raise ScheduleError(f"minutes and seconds must be 0-59 in {shown(text)}")
    return DailyAt(time(hour, minute, second))


def parse_every(value: object) -> Every:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise ScheduleError(str(exc)) from None
    if seconds < 1:
        raise ScheduleError(f"an interval must be at least 1s, got {shown(value)}")
    return Every(seconds)


def fires_between(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    """Every fire time in (start, end]."""
    fires = []
    moment = schedule.next_after(start)
    while moment <= end:
        fires.append(moment)
        moment = schedule.next_after(moment)
    return fires
