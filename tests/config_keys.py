"""Every key the configuration loader knows, by table, found by walking the dataclasses.

Tests derive their cases from this walk (not from a list kept by hand), so a new key is
covered, documented and exemplified the day it is added.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import Field
from typing import Any

from syncd.app.packs import discover
from syncd.config import Config, JobConfig, load_config
from syncd.configvalues import is_duration

# How a per-job table is spelled in the walk; the example file uses a real job's name.
JOB_TABLE = "jobs.<Name>"


def _dataclass_of(hint: Any) -> type[Any] | None:
    return hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None


def _walk(cls: type[Any], table: str, out: dict[str, dict[str, Field[Any]]]) -> None:
    hints = typing.get_type_hints(cls)
    out.setdefault(table, {})
    for fld in dataclasses.fields(cls):
        nested = _dataclass_of(hints[fld.name])
        if nested is not None:
            _walk(nested, f"{table}.{fld.name}", out)
        else:
            out[table][fld.name] = fld


def known_tables() -> dict[str, dict[str, Field[Any]]]:
    """Table path ("daemon", "jobs.<Name>", "packs.tis.search", …) → its keys' fields."""
    out: dict[str, dict[str, Field[Any]]] = {}
    hints = typing.get_type_hints(Config)
    for fld in dataclasses.fields(Config):
        nested = _dataclass_of(hints[fld.name])
        if nested is not None:
            _walk(nested, fld.name, out)
    _walk(JobConfig, JOB_TABLE, out)
    for pack in discover(load_config(None, env={})):
        if pack.settings_type is not None:
            _walk(pack.settings_type, f"packs.{pack.name}", out)
    return out


def duration_keys() -> list[tuple[str, str, float]]:
    """(table, key, minimum) of every duration key the loader knows."""
    return sorted(
        (table, name, float(fld.metadata.get("minimum", 0.0)))
        for table, fields in known_tables().items()
        for name, fld in fields.items()
        if is_duration(fld)
    )
