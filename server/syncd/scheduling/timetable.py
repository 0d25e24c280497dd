"""When jobs fire: daily `at`, interval `every`, and cron (Spring 6-field, classic 5-field), in UTC.

Next-fire times are pure functions of (schedule, instant), so they are tested with fixed
datetimes. Cron expressions are evaluated by croniter. The timetable is ours rather than the
`schedule` library's: `schedule` works in the host's naive local time (UTC needs pytz), reads
the real clock inside its jobs (no clock can be injected), and has no cron expressions, which
the old service's APPLICATION_CRON_* variables are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from croniter import CroniterError, croniter

from syncd.configvalues import parse_duration, shown

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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
        # timedelta arithmetic is exact in microseconds; float seconds since 1970 are not
        # (a moment just before a step could round onto it and skip a fire).
        step = timedelta(seconds=self.seconds)
        return _EPOCH + ((moment - _EPOCH) // step + 1) * step

    def describe(self) -> str:
        return f"every {self.seconds:g}s"


_NOT_DETERMINISTIC = re.compile(r"(?<![A-Z])[HR](?![A-Z])")
_QUARTZ_LAST_WEEKDAY = re.compile(r"^([0-7])L$")
_NUMERIC_RANGE = re.compile(r"(?<![0-9])([0-9]{1,4})-([0-9]{1,4})(?![0-9])")
_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_CRON_REASON_LIMIT = 120


@dataclass(frozen=True, slots=True)
class Cron:
    """A cron expression, evaluated by croniter in UTC.

    Three forms: Spring's 6 fields (second minute hour day-of-month month day-of-week, `?` for
    "any"), where a day must match both day fields, as in Spring and the old service's
    APPLICATION_CRON_*; the classic 5 fields, where a day matches when either restricted day
    field does, as in crontab; and the `@daily`-style macros. `L`, `W` and `#` work in both.
    """

    expression: str  # as written, for messages and status
    evaluated: str  # as croniter reads it (Quartz's `5L` becomes croniter's `L5`)
    spring: bool  # 6 fields: seconds first, day fields ANDed

    @classmethod
    def parse(cls, expression: str) -> Cron:
        fields = expression.split()
        if fields and fields[0].startswith("@"):
            if len(fields) != 1 or fields[0].lower() not in _MACROS:
                known = ", ".join(_MACROS)
                raise ScheduleError(f"cron macros are {known}; got {shown(expression)}")
            return cls._checked(expression, fields[0].lower(), spring=False)
        if len(fields) not in (5, 6):
            raise ScheduleError(
                "cron needs 6 fields (second minute hour day month weekday), the classic 5 "
                f"(minute hour day month weekday) or a macro like @daily; got {len(fields)} fields"
            )
        if _NOT_DETERMINISTIC.search(expression.upper()):
            # croniter's hashed (H) and random (R) fields would make the timetable unpredictable.
            raise ScheduleError(f"H and R fields are not supported in {shown(expression)}")
        for first, last in _NUMERIC_RANGE.findall(expression):
            if int(first) > int(last):
                raise ScheduleError(f"range {first}-{last} runs backwards in {shown(expression)}")
        fields[-1] = _QUARTZ_LAST_WEEKDAY.sub(r"L\1", fields[-1].upper())
        spring = len(fields) == 6
        for index, text in enumerate(fields):
            template = list(_SPRING_TEMPLATE if spring else _CLASSIC_TEMPLATE)
            template[index] = text
            try:
                croniter(" ".join(template), _EPOCH, second_at_beginning=spring)
            except CroniterError as exc:
                name = (_SPRING_FIELDS if spring else _SPRING_FIELDS[1:])[index]
                raise ScheduleError(f"{name}: {shown(text)} {_reason(exc)}") from None
        return cls._checked(expression, " ".join(fields), spring=spring)

    @classmethod
    def _checked(cls, expression: str, evaluated: str, *, spring: bool) -> Cron:
        cron = cls(expression=expression.strip(), evaluated=evaluated, spring=spring)
        cron._iterator(_EPOCH)  # croniter checks the whole expression when it is built
        return cron

    def _iterator(self, start: datetime) -> croniter:
        try:
            return croniter(
                self.evaluated, start, day_or=not self.spring, second_at_beginning=self.spring
            )
        except CroniterError as exc:
            raise ScheduleError(f"cron {shown(self.expression)} {_reason(exc)}") from None

    def next_after(self, moment: datetime) -> datetime:
        iterator = self._iterator(moment.astimezone(UTC).replace(microsecond=0))
        try:
            fire = iterator.get_next(datetime)
        except CroniterError:
            raise ScheduleError(f"cron {shown(self.expression)} never fires") from None
        assert isinstance(fire, datetime)
        return fire.astimezone(UTC)

    def describe(self) -> str:
        return f"cron {self.expression} (UTC)"


_SPRING_FIELDS = ("second", "minute", "hour", "day of month", "month", "day of week")
_SPRING_TEMPLATE = ("0", "0", "0", "*", "*", "*")
_CLASSIC_TEMPLATE = ("0", "0", "*", "*", "*")


def _reason(exc: CroniterError) -> str:
    """croniter's complaint without its copy of the expression, bounded: "is not …"."""
    text = re.sub(r"\[[^\]]*\]\s*", "", str(exc)).strip().removeprefix("is ").rstrip(".")
    if not text.startswith("not "):
        text = f"not valid ({text})" if text else "not valid"
    text = f"is {text}"
    return text if len(text) <= _CRON_REASON_LIMIT else f"{text[: _CRON_REASON_LIMIT - 1]}…"


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


def last_fire_between(schedule: Schedule, start: datetime, end: datetime) -> datetime | None:
    """The last fire time in (start, end], or None, without listing the others (an interval
    of one second fires 86,400 times a day: start-up catch-up asks this of tonight)."""
    if isinstance(schedule, Every):
        step = timedelta(seconds=schedule.seconds)
        last = _EPOCH + ((end - _EPOCH) // step) * step
        return last if last > start else None
    fires = fires_between(schedule, start, end)
    return fires[-1] if fires else None
