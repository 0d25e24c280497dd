"""TOML values into typed dataclass fields: durations, numbers, paths, nested tables.

Every failure is a ConfigError naming the key path, and quotes at most a bounded slice of the
offending value: a config file is operator input, and a megabyte-long string must not become a
megabyte-long error line.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import field
from pathlib import Path
from typing import Any, TypeVar

from syncd.errors import ConfigError

T = TypeVar("T")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
# No duration in a config means more than a year; beyond that it is a typo (or `inf`), and
# very large values overflow timedelta and the event loop's timers.
MAX_DURATION = 365 * 86400.0
# TOML's own integer range; tomllib accepts bigger, SQL drivers and C APIs do not.
_INT64 = 2**63 - 1
_SHOWN = 60
_PROBLEM = 300


def shown(value: object) -> str:
    """`repr(value)`, cut to a bounded length for error messages."""
    text = repr(value)
    return text if len(text) <= _SHOWN else f"{text[: _SHOWN - 1]}…"


def bounded(text: str) -> str:
    """`text` as it is when short and printable, else quoted and cut like `shown`."""
    return text if len(text) <= _SHOWN and text.isprintable() else shown(text)


def parse_duration(value: object) -> float:
    """Seconds from a number of seconds or text like "1500ms", "30s", "15m", "2h", "1d"."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got {shown(value)}")
    if isinstance(value, int | float):
        seconds = float(value) if math.isnan(value) or abs(value) <= _INT64 else math.inf
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


def duration(default: float | None, *, minimum: float = 0.0) -> Any:
    """A dataclass field holding seconds, written in TOML as a number or "30s"/"15m".

    A default of None makes the field optional (None: "not set", e.g. inherit a daemon-wide
    value); a value given in the file is still a duration.
    """
    return field(default=default, metadata={"duration": True, "minimum": minimum})


def is_duration(fld: dataclasses.Field[Any]) -> bool:
    return bool(fld.metadata.get("duration"))


def load_dataclass(cls: type[T], table: Mapping[str, Any], path: str) -> T:
    """An instance of the frozen dataclass `cls` from a TOML table, or ConfigError with the path.

    Supports str, int, float, bool, Path, `X | None`, tuple[str, ...], nested dataclasses and
    duration fields (see `duration`).
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    if not isinstance(table, Mapping):
        raise ConfigError(path or "(top level)", f"expected a table, got {type(table).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs: dict[str, Any] = {}
    for key, raw in table.items():
        key_path = f"{path}.{shown_key(key)}" if path else shown_key(key)
        if key not in fields:
            known = ", ".join(sorted(fields)) or "none"
            raise ConfigError(key_path, f"unknown key (known keys here: {known})")
        fld = fields[key]
        try:
            if is_duration(fld):
                value: Any = parse_duration(raw)
                if value < fld.metadata.get("minimum", 0.0):
                    raise ValueError(f"must be at least {fld.metadata['minimum']:g}s")
            else:
                value = _convert(hints[key], raw, key_path)
        except ConfigError:
            raise
        except ValueError as exc:
            raise ConfigError(key_path, str(exc)) from None
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        # A pack's own check may quote a whole value: keep the message bounded all the same.
        problem = exc.problem if len(exc.problem) <= _PROBLEM else f"{exc.problem[:_PROBLEM]}…"
        if path and not exc.key_path.startswith(path):
            raise ConfigError(f"{path}.{exc.key_path}", problem) from None
        if problem != exc.problem:
            raise ConfigError(exc.key_path, problem) from None
        raise


def shown_key(key: str) -> str:
    """A table key as it may appear in a key path: bounded, and quoted when it is not bare."""
    if re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", key):
        return key
    return shown(key)


def _convert(hint: Any, raw: Any, key_path: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(options) == 1:
            return _convert(options[0], raw, key_path)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return load_dataclass(hint, raw, key_path)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(raw, list):
            raise ValueError(f"expected a list, got {type(raw).__name__}")
        return tuple(_convert(args[0], item, key_path) for item in raw)
    if origin is Mapping or origin is dict:
        if not isinstance(raw, dict):
            raise ValueError(f"expected a table, got {type(raw).__name__}")
        return dict(raw)
    if hint is bool:
        if not isinstance(raw, bool):
            raise ValueError(f"expected true or false, got {shown(raw)}")
        return raw
    if hint is int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ValueError(f"expected a whole number, got {shown(raw)}")
        if abs(raw) > _INT64:
            raise ValueError("a whole number beyond 64 bits")
        return raw
    if hint is float:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise ValueError(f"expected a number, got {shown(raw)}")
        if (isinstance(raw, float) and not math.isfinite(raw)) or abs(raw) > _INT64:
            raise ValueError(f"expected a finite number, got {shown(raw)}")
        return float(raw)
    if hint is str:
        if not isinstance(raw, str):
            raise ValueError(f"expected a string, got {shown(raw)}")
        if "\x00" in raw:
            raise ValueError("a NUL character is not allowed here")
        return raw
    if hint is Path:
        if not isinstance(raw, str) or not raw or "\x00" in raw:
            raise ValueError(f"expected a path, got {shown(raw)}")
        try:
            return Path(raw).expanduser()
        except RuntimeError:  # "~someone" naming no user
            raise ValueError(f"cannot expand the home directory in {shown(raw)}") from None
    raise ValueError(f"unsupported setting type {hint!r}")  # a programming error in a pack
