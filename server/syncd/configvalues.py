"""TOML tables into typed, frozen settings objects, validated by msgspec.

msgspec checks types, shapes, bounds (`Meta(ge=…, le=…)`) and unknown keys; this module adds
what a config file needs beyond that: durations written "30s"/"15m" (one decode hook), paths,
and error messages in the daemon's shape, `config: <dotted.key.path>: <problem>`, translated
from msgspec's `… - at $.daemon.shutdown_grace`. Every message quotes at most a bounded slice
of the offending value: a config file is operator input, and a megabyte-long string must not
become a megabyte-long error line.
"""

from __future__ import annotations

import math
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import msgspec

from syncd.errors import ConfigError

T = TypeVar("T")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
# No duration in a config means more than a year; beyond that it is a typo (or `inf`), and
# very large values overflow timedelta and the event loop's timers.
MAX_DURATION = 365 * 86400.0
# TOML's own integer range; tomllib accepts bigger, SQL drivers and C APIs do not.
INT64_MAX = 2**63 - 1
_SHOWN = 60
_PROBLEM = 300


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every config table, the daemon's and each job pack's `settings_type`.

    Frozen, keyword-only, and unknown keys are an error. Cross-key rules go in
    `__post_init__`, raising ConfigError with the key relative to the table ("page_size").
    Subclasses repeat `frozen=True` for type checkers (msgspec inherits it anyway).
    """


# Whole numbers of the config: TOML's 64-bit range, and never negative.
Count = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
PositiveCount = Annotated[int, msgspec.Meta(ge=1, le=INT64_MAX)]

if TYPE_CHECKING:
    # To type checkers a duration is the float of seconds it holds.
    Duration = float
    DurationAtLeast1s = float
else:

    class Duration(float):
        """Seconds, written in TOML as a number or text like "1500ms", "30s", "15m", "2h", "1d".

        A marker type: msgspec hands it to `_decode` (the one duration hook)."""

        __slots__ = ()
        minimum = 0.0

    class DurationAtLeast1s(Duration):
        """A duration where zero would mean spinning or never waiting: at least one second."""

        __slots__ = ()
        minimum = 1.0


def duration_minimum(hint: Any) -> float | None:
    """The minimum of a duration annotation (`Duration`, `DurationAtLeast1s`, `… | None`), or
    None when `hint` is not a duration."""
    for option in (hint, *typing.get_args(hint)):
        if isinstance(option, type) and issubclass(option, Duration):
            return float(getattr(option, "minimum", 0.0))
    return None


def shown(value: object) -> str:
    """`repr(value)`, cut to a bounded length for error messages."""
    text = repr(value)
    return text if len(text) <= _SHOWN else f"{text[: _SHOWN - 1]}…"


def bounded(text: str) -> str:
    """`text` as it is when short and printable, else quoted and cut like `shown`."""
    return text if len(text) <= _SHOWN and text.isprintable() else shown(text)


def shown_key(key: str) -> str:
    """A table key as it may appear in a key path: bounded, and quoted when it is not bare."""
    if re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", key):
        return key
    return shown(key)


def parse_duration(value: object) -> float:
    """Seconds from a number of seconds or text like "1500ms", "30s", "15m", "2h", "1d"."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got {shown(value)}")
    if isinstance(value, int | float):
        seconds = float(value) if math.isnan(value) or abs(value) <= INT64_MAX else math.inf
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError(
            f'expected a duration such as 30, "30s", "15m" or "2h", got {shown(value)}'
        )
    if math.isnan(seconds):
        raise ValueError(f"expected a duration, got {shown(value)}")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {shown(value)}")
    if seconds > MAX_DURATION:
        raise ValueError(f"a duration must be at most 365d, got {shown(value)}")
    return seconds


def _decode(hint: type[Any], raw: Any) -> Any:
    """msgspec's hook for the types it does not know: durations and paths."""
    if issubclass(hint, Duration):
        seconds, minimum = parse_duration(raw), float(getattr(hint, "minimum", 0.0))
        if seconds < minimum:
            raise ValueError(f"must be at least {minimum:g}s")
        return hint(seconds)
    if hint is Path:
        if not isinstance(raw, str) or not raw:
            raise ValueError(f"expected a path, got {shown(raw)}")
        try:
            return Path(raw).expanduser()
        except RuntimeError:  # "~someone" naming no user
            raise ValueError(f"cannot expand the home directory in {shown(raw)}") from None
    # msgspec's dec_hook protocol: NotImplementedError says "not a type this hook decodes".
    raise NotImplementedError(f"unsupported setting type {hint!r}")


def load_table(cls: type[T], table: Any, path: str) -> T:
    """An instance of `cls` (a `Settings` struct, or a container of them) from a TOML value,
    or ConfigError naming the key path below `path`."""
    _refuse_nul(table, path)
    try:
        return msgspec.convert(table, type=cls, strict=True, dec_hook=_decode)
    except msgspec.ValidationError as exc:
        raise _config_error(exc, cls, table, path) from None


def _refuse_nul(value: Any, path: str) -> None:
    # No TOML value has a use for NUL, and paths, addresses and drivers choke on it.
    pending = [(path, value)]
    while pending:
        where, item = pending.pop()
        if isinstance(item, str) and "\x00" in item:
            raise ConfigError(where or "(top level)", "a NUL character is not allowed here")
        if isinstance(item, dict):
            for key, inner in item.items():
                if "\x00" in key:
                    raise ConfigError(where or "(top level)", "a NUL character in a key")
                pending.append((_join(where, shown_key(key)), inner))
        elif isinstance(item, list):
            pending.extend((f"{where}[{i}]", inner) for i, inner in enumerate(item))


# msgspec's location suffix: "… - at `$.a.b[2]`" (a map's key shows as "`key` in `$.a`").
_AT = re.compile(r" - at `\$(?P<where>[^`]*)`$", re.DOTALL)
_SEGMENT = re.compile(r"\.([A-Za-z0-9_]+)|\[(\d+)\]")
_UNKNOWN = "Object contains unknown field `"
_EXPECTED = re.compile(r"Expected `(\w+)`, got `(\w+)`")
_BOUND = re.compile(r"Expected `(\w+)` (>=|<=|>|<) (\S+)")
# msgspec names JSON-ish types; the config file is TOML.
_TOML_WORDS = {
    "bool": "true or false",
    "int": "a whole number",
    "float": "a number",
    "str": "a string",
    "array": "a list",
    "object": "a table",
    "null": "nothing",
}
_BOUND_WORDS = {">=": "at least", "<=": "at most", ">": "more than", "<": "less than"}


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path and key else path or key


def _config_error(exc: msgspec.ValidationError, cls: Any, table: Any, path: str) -> ConfigError:
    message = str(exc)
    at = _AT.search(message)
    problem = message[: at.start()] if at else message
    segments = _segments(at.group("where") if at else "")
    where = path
    for segment in segments:
        where = _join(where, segment) if isinstance(segment, str) else f"{where}[{segment}]"
    cause = exc.__cause__
    if isinstance(cause, ConfigError):  # a table's own cross-key rule (`__post_init__`)
        key = cause.key_path if path and cause.key_path.startswith(path) else None
        return ConfigError(key or _join(where, cause.key_path), _bounded_problem(cause.problem))
    value = _value_at(table, segments)
    if problem.startswith(_UNKNOWN) and isinstance(value, dict):
        known = _field_names(_type_at(cls, segments))
        unknown = next((k for k in value if k not in known), "?")
        if not segments and not path:
            return ConfigError(shown_key(unknown), f"unknown table (known: {', '.join(known)})")
        listed = ", ".join(sorted(known)) or "none"
        return ConfigError(
            _join(where, shown_key(unknown)), f"unknown key (known keys here: {listed})"
        )
    if match := _EXPECTED.fullmatch(problem):
        expected = _TOML_WORDS.get(match.group(1), match.group(1))
        got = type(value).__name__ if isinstance(value, dict | list) else shown(value)
        problem = f"expected {expected}, got {got}"
    elif match := _BOUND.fullmatch(problem):
        bound = match.group(3).removesuffix(".0")
        if bound.lstrip("-") in (str(INT64_MAX), str(INT64_MAX + 1)):
            problem = "a whole number beyond 64 bits"
        else:
            problem = f"must be {_BOUND_WORDS[match.group(2)]} {bound}, got {shown(value)}"
    elif problem[:1].isupper():
        problem = problem[0].lower() + problem[1:]
    return ConfigError(where or "(top level)", _bounded_problem(problem))


def _bounded_problem(problem: str) -> str:
    # A pack's own check may quote a whole value: keep the message bounded all the same.
    return problem if len(problem) <= _PROBLEM else f"{problem[:_PROBLEM]}…"


def _segments(where: str) -> list[str | int]:
    return [name if name else int(index) for name, index in _SEGMENT.findall(where.split("`")[-1])]


def _value_at(value: Any, segments: list[str | int]) -> Any:
    for segment in segments:
        if isinstance(segment, str) and isinstance(value, dict):
            value = value.get(segment)
        elif isinstance(segment, int) and isinstance(value, list) and segment < len(value):
            value = value[segment]
        else:
            return None
    return value


def _type_at(cls: Any, segments: list[str | int]) -> Any:
    for segment in segments:
        cls = _struct_in(cls)
        if cls is None or isinstance(segment, int):
            return None
        cls = table_fields(cls).get(segment)
    return _struct_in(cls)


def _struct_in(hint: Any) -> type[msgspec.Struct] | None:
    for option in (hint, *typing.get_args(hint)):
        if isinstance(option, type) and issubclass(option, msgspec.Struct):
            return option
    return None


def _field_names(cls: type[msgspec.Struct] | None) -> tuple[str, ...]:
    return cls.__struct_fields__ if cls is not None else ()


def table_fields(cls: type[msgspec.Struct]) -> Mapping[str, Any]:
    """Each key of a settings table with its annotation (what the config-key tests walk)."""
    return {f.name: f.type for f in msgspec.structs.fields(cls)}
