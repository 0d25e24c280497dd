"""The argument types of syncctl's command line: each turns text into a value or says why not.

Standard library only: the command table refers to these, and it is read at every start-up.
"""

from __future__ import annotations

import argparse
import contextlib


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {text!r}")
    return value


def positive_days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of days, got {text!r}") from None
    if not value > 0:  # 0 would mean the daemon's default (1 day), not what was typed
        raise argparse.ArgumentTypeError(f"expected a positive number of days, got {text!r}")
    return value


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds from "90", "90s", "15m", "2h", "1h30m", "1.5d"; ValueError otherwise."""
    rest = text.strip().lower()
    if not rest:
        raise ValueError("empty duration")
    with contextlib.suppress(ValueError):
        return float(rest)  # bare seconds
    total = 0.0
    number = ""
    for char in rest:
        if char.isdigit() or char == ".":
            number += char
        elif char in _UNITS and number:
            total += float(number) * _UNITS[char]
            number = ""
        else:
            raise ValueError(f"bad duration {text!r}")
    if number:
        raise ValueError(f"bad duration {text!r}: a number needs a unit (s, m, h, d)")
    return total


def duration(text: str) -> float:
    try:
        value = parse_duration(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a duration like 90s, 15m, 2h or 1h30m, got {text!r}"
        ) from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive duration, got {text!r}")
    return value


def name_value(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


class Since:
    """`--since`: an instant (ISO 8601, UTC unless it says) or a duration ago ("2h")."""

    def __init__(self, *, at: float | None = None, ago: float | None = None) -> None:
        self._at = at
        self._ago = ago

    def resolve(self, now: float) -> float:
        return self._at if self._at is not None else now - (self._ago or 0.0)


def since(text: str) -> Since:
    from datetime import UTC, datetime

    try:
        return Since(ago=parse_duration(text))
    except (ValueError, argparse.ArgumentTypeError):
        pass
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a duration ago (30m, 2h, 7d) or an ISO time, got {text[:50]!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return Since(at=moment.timestamp())
