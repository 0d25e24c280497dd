"""Typed values: what operations take and return, and how text from a command line becomes one."""

from __future__ import annotations

import enum
import json
import math
import re
from datetime import UTC, datetime
from typing import Any, TypeAlias

from syncd.errors import clip, quote_input

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
INT64 = (-(2**63), 2**63 - 1)  # what the ledger, the wire and the jobs' databases all hold
# JSON input (argument values, request bodies) nests at most this deep: deeper is no job's
# parameter, and unbounded nesting exhausts the parser's stack.
JSON_MAX_DEPTH = 32
# A string literal, or one bracket: counting brackets outside strings gives the nesting.
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def parse_timestamp(text: str) -> datetime:
    """An ISO 8601 instant; a value without an offset is taken as UTC (the daemon's only zone).

    Raises ValueError for text that is not one, and for an instant outside years 1-9999 in UTC
    (`9999-12-31T23:59:59-23:59` is a valid local time but no UTC one).
    """
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:  # its message quotes all of the text
        raise ValueError(f"expected an ISO 8601 timestamp, got {quote_input(text)}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{quote_input(text)} is outside years 1-9999 in UTC") from None


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"the number {quote_input(text)} is out of range")
    return number


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def check_text(text: str) -> str:
    """`text` if every store and wire can carry it: no NUL, no lone UTF-16 surrogate."""
    if "\x00" in text:
        raise ValueError("text may not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text may not contain lone UTF-16 surrogates") from None
    return text


def usable_key(text: str, limit: int = 200) -> bool:
    """Whether `text` can name a stored thing (a run id): short, and text every store keeps.
    The edges answer "not found" for any other without asking the ledger, which could not
    even be asked (PostgreSQL refuses NUL in a query parameter)."""
    if len(text) > limit:
        return False
    try:
        check_text(text)
    except ValueError:
        return False
    return True


def _check_strings(value: Any) -> None:
    """Every string in a parsed JSON value (its depth is already bounded) is storable."""
    if isinstance(value, str):
        check_text(value)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key)
            _check_strings(item)


def parse_json(text: str | bytes, max_depth: int = JSON_MAX_DEPTH) -> Value:
    """JSON input, refused with a short ValueError when it is not JSON, nests deeper than
    `max_depth`, holds a non-finite number (NaN, 1e999) or a string no store can keep."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"not UTF-8 text (byte {exc.start})") from None
    depth = 0
    for token in _JSON_TOKEN.finditer(text):
        bracket = token.group()
        if bracket in ("[", "{"):
            depth += 1
            if depth > max_depth:
                raise ValueError(f"JSON nested deeper than {max_depth} levels")
        elif bracket in ("]", "}"):
            depth -= 1
    try:
        parsed: Value = json.loads(text, parse_float=_finite, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except ValueError as exc:  # a non-finite number, an integer of thousands of digits
        raise ValueError(f"not valid JSON: {clip(str(exc), 200)}") from None
    except RecursionError:  # brackets inside a broken string literal can hide depth
        raise ValueError(f"JSON nested deeper than {max_depth} levels") from None
    _check_strings(parsed)
    if isinstance(parsed, int) and not isinstance(parsed, bool):
        _check_int(parsed)
    return parsed


def _check_int(number: int) -> int:
    if not INT64[0] <= number <= INT64[1]:
        raise ValueError(f"{quote_input(number)} is outside the 64-bit range")
    return number


def coerce(value: Value, to: ValueType) -> Value:
    """`value` as a `to`, converting text where the conversion is unambiguous.

    Raises ValueError with a short reason (the caller names the parameter).
    """
    if value is None:
        return None
    match to:
        case ValueType.STRING:
            if isinstance(value, str):
                return check_text(value)
            if isinstance(value, bool | int | float):
                return json.dumps(value)
        case ValueType.BOOL:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
                return value.strip().lower() in _TRUE
            raise ValueError(f"expected true or false, got {quote_input(value)}")
        case ValueType.INT:
            if isinstance(value, int) and not isinstance(value, bool):
                return _check_int(value)
            if isinstance(value, float) and value.is_integer():
                return _check_int(int(value))
            if isinstance(value, str):
                try:
                    number = int(value.strip())
                except ValueError:
                    pass
                else:
                    return _check_int(number)
            raise ValueError(f"expected a whole number, got {quote_input(value)}")
        case ValueType.FLOAT:
            if isinstance(value, int | float) and not isinstance(value, bool):
                result = float(value)
            elif isinstance(value, str):
                try:
                    result = float(value.strip())
                except ValueError:
                    raise ValueError(f"expected a number, got {quote_input(value)}") from None
            else:
                raise ValueError(f"expected a number, got {quote_input(value)}")
            if not math.isfinite(result):
                raise ValueError(f"expected a finite number, got {quote_input(value)}")
            return result
        case ValueType.TIMESTAMP:
            if isinstance(value, datetime):
                return value if value.tzinfo else value.replace(tzinfo=UTC)
            if isinstance(value, str):
                return parse_timestamp(value)
            raise ValueError(f"expected an ISO 8601 timestamp, got {quote_input(value)}")
        case ValueType.JSON:
            if isinstance(value, str):
                try:
                    return parse_json(value)
                except ValueError as exc:
                    raise ValueError(f"expected JSON: {exc}") from None
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"expected JSON, got the number {value}")
            return value
        case ValueType.VOID | ValueType.RUN:
            pass
    raise ValueError(f"cannot take {type(value).__name__} {quote_input(value)} as {to.value}")


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
