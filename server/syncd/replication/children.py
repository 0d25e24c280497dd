"""The `children` value table of SynchronizeJobData: rows, or the legacy string form.

Legacy form (the old tool's script syntax): rows separated by `;`, the first three fields of a
row split on whitespace, and everything after the URL is the timestamp, which may itself hold
a space (`Ohio_Repository true http://ohio/… 2011-08-08 12:00`). A malformed row is refused
naming the row and the field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from syncd.errors import InvalidArgumentError, bounded

OPERATION = "synchronizeJobData"
PARAMETER = "children"
_FIELDS = ("child_repository", "connected", "url", "last_sync_time")
_US_FORMATS = ("%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%m/%d/%Y")


@dataclass(frozen=True, slots=True)
class ChildRow:
    name: str
    connected: bool
    connected_text: str
    url: str
    last_sync_time: datetime | None  # None: empty, or not understood (full reconcile)
    last_sync_text: str = ""


def _refuse(row: int, field: str, problem: str) -> InvalidArgumentError:
    return InvalidArgumentError(OPERATION, f"row {row}, field {field}: {problem}", PARAMETER)


def parse_time(text: str) -> datetime | None:
    """ISO 8601 first, then the old tool's `MM/DD/YYYY HH:MM:SS`; UTC unless an offset is
    given. None when empty or not understood (the caller then reconciles in full)."""
    text = text.strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
        for fmt in _US_FORMATS:
            try:
                moment = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _row(index: int, fields: Sequence[str]) -> ChildRow:
    if len(fields) < 3:
        missing = _FIELDS[len(fields)]
        raise _refuse(
            index, missing, "missing (a row is: child_repository connected url [last_sync_time])"
        )
    if len(fields) > 4:
        raise _refuse(index, "last_sync_time", f"{len(fields)} fields given, at most 4")
    name, connected, url = (f.strip() for f in fields[:3])
    if not name:
        raise _refuse(index, "child_repository", "empty")
    if len(name) > 200 or any(c.isspace() for c in name):
        raise _refuse(index, "child_repository", f"{bounded(name, 60)!r} is not a repository name")
    if not url:
        raise _refuse(index, "url", "empty")
    if len(url) > 2000:
        raise _refuse(index, "url", "longer than 2000 characters")
    raw_time = fields[3].strip() if len(fields) == 4 else ""
    if len(raw_time) > 64:
        raise _refuse(index, "last_sync_time", f"{bounded(raw_time, 60)!r} is not a time")
    return ChildRow(
        name=name,
        connected=connected.strip().lower() == "true",
        connected_text=connected.strip(),
        url=url,
        last_sync_time=parse_time(raw_time),
        last_sync_text=raw_time,
    )


def parse_children(value: str | Sequence[Sequence[str]]) -> list[ChildRow]:
    """Rows (lists of 3 or 4 strings) or the legacy string; row numbers in errors count from 1."""
    if isinstance(value, str):
        rows: list[list[str]] = []
        for chunk in value.split(";"):
            if not chunk.strip():
                continue
            parts = chunk.split(None, 3)
            rows.append(parts)
        value = rows
    parsed = [_row(i, list(fields)) for i, fields in enumerate(value, start=1)]
    if not parsed:
        raise InvalidArgumentError(OPERATION, "no child rows given", PARAMETER)
    seen: set[str] = set()
    for i, row in enumerate(parsed, start=1):
        if row.name in seen:
            raise _refuse(i, "child_repository", f"{row.name!r} is listed twice")
        seen.add(row.name)
    return parsed
