"""Typed values: what operations take and return, and how text from a command line becomes one."""

from __future__ import annotations

import enum
import json
import math
from datetime import UTC, datetime
from typing import Any, TypeAlias

Value: TypeAlias = bool | int | float | str | datetime | list[Any] | dict[str, Any] | None


class ValueType(enum.StrEnum):
    """The type of a parameter, an attribute or an operation's result."""

    VOID = "void"
    BOOL = "bool"
    INT = "int"
    FLOAT = "float"
    STRING = "string"
    TIMESTAMP = "timestamp"
    JSON = "json"
    RUN = "run"  # the operation starts a run; its result is the run id


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def parse_timestamp(text: str) -> datetime:
    """An ISO 8601 instant; a value without an offset is taken as UTC (the daemon's only zone)."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def coerce(value: Value, to: ValueType) -> Value:
    """`value` as a `to`, converting text where the conversion is unambiguous.

    Raises ValueError with a short reason (the caller names the parameter).
    """
    if value is None:
        return None
    match to:
        case ValueType.STRING:
            if isinstance(value, str):
                return value
            if isinstance(value, bool | int | float):
                return json.dumps(value)
        case ValueType.BOOL:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
                return value.strip().lower() in _TRUE
            raise ValueError(f"expected true or false, got {value!r}")
        case ValueType.INT:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if isinstance(value, str):
                try:
                    return int(value.strip())
                except ValueError:
                    pass
            raise ValueError(f"expected a whole number, got {value!r}")
        case ValueType.FLOAT:
            if isinstance(value, int | float) and not isinstance(value, bool):
                result = float(value)
            elif isinstance(value, str):
                try:
                    result = float(value.strip())
                except ValueError:
                    raise ValueError(f"expected a number, got {value!r}") from None
            else:
                raise ValueError(f"expected a number, got {value!r}")
            if not math.isfinite(result):
                raise ValueError(f"expected a finite number, got {value!r}")
            return result
        case ValueType.TIMESTAMP:
            if isinstance(value, datetime):
                return value if value.tzinfo else value.replace(tzinfo=UTC)
            if isinstance(value, str):
                try:
                    return parse_timestamp(value)
                except ValueError:
                    pass
            raise ValueError(f"expected an ISO 8601 timestamp, got {value!r}")
        case ValueType.JSON:
            if isinstance(value, str):
                try:
                    parsed: Value = json.loads(value)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"expected JSON: {exc.msg} at column {exc.colno}") from None
                return parsed
            return value
        case ValueType.VOID | ValueType.RUN:
            pass
    raise ValueError(f"cannot take {type(value).__name__} {value!r} as {to.value}")


def render(value: Value) -> str:
    """A value as an operator reads it: text plain, structures as JSON, instants in ISO UTC."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, list | dict):
        return json.dumps(value, default=str)
    return str(value)
