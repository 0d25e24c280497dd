"""Every key the configuration loader knows, by table, found by walking the settings structs.

Tests derive their cases from this walk (not from a list kept by hand), so a new key is
covered, documented and exemplified the day it is added.
"""

from __future__ import annotations

from typing import Any

import msgspec

from syncd.app.packs import discover
from syncd.config import Config, JobConfig, load_config
from syncd.configvalues import duration_minimum, table_fields

# How a per-job table is spelled in the walk; the example file uses a real job's name.
JOB_TABLE = "jobs.<Name>"


def _struct_of(hint: Any) -> type[msgspec.Struct] | None:
    return hint if isinstance(hint, type) and issubclass(hint, msgspec.Struct) else None


def _walk(cls: type[msgspec.Struct], table: str, out: dict[str, dict[str, Any]]) -> None:
    out.setdefault(table, {})
    for name, hint in table_fields(cls).items():
        nested = _struct_of(hint)
        if nested is not None:
            _walk(nested, f"{table}.{name}", out)
        else:
            out[table][name] = hint


def known_tables() -> dict[str, dict[str, Any]]:
    """Table path ("daemon", "jobs.<Name>", "packs.tis.search", …) → its keys' annotations."""
    out: dict[str, dict[str, Any]] = {}
    for name, hint in table_fields(Config).items():
        nested = _struct_of(hint)
        if nested is not None:
            _walk(nested, name, out)
    _walk(JobConfig, JOB_TABLE, out)
    for pack in discover(load_config(None, env={})):
        if pack.settings_type is not None:
            _walk(pack.settings_type, f"packs.{pack.name}", out)
    return out


def duration_keys() -> list[tuple[str, str, float]]:
    """(table, key, minimum) of every duration key the loader knows."""
    return sorted(
        (table, name, minimum)
        for table, fields in known_tables().items()
        for name, hint in fields.items()
        if (minimum := duration_minimum(hint)) is not None
    )
