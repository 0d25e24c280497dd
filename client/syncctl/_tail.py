"""Lines for the two live streams, `logs` and `watch`.

`logs` piped or with --json passes the daemon's JSON line through unchanged (one object per
line: scripts and `jq` read what the daemon wrote); on a TTY it is one readable line: time,
level, event, job/run, then the other fields as key=value. `watch` prints one line per event:
aligned on a TTY, fixed tab-separated columns piped, one JSON object per line with --json.
Stream lines carry no relative times: "now" on every line says nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from syncctl._render import EMPTY, Mode, cell, iso
from syncd_api.v1 import management_pb2 as pb

# Shown first, in this order; every other key follows as key=value.
_HEAD_KEYS = ("timestamp", "level", "event", "logger", "job", "run_id", "exception")
_LEVEL_WIDTH = 7  # "warning"; "critical" overflows by one, rarely
_EVENT_WIDTH = 22
_RESET = "\x1b[0m"
_DIM = "\x1b[2m"
_COLOURS = {
    "debug": "\x1b[2m",
    "info": "\x1b[32m",
    "warning": "\x1b[33m",
    "error": "\x1b[1;31m",
    "critical": "\x1b[1;31m",
}


def use_colour(environ: Mapping[str, str], tty: bool) -> bool:
    """Colour on a terminal unless NO_COLOR (no-color.org) is set or TERM is dumb."""
    return tty and "NO_COLOR" not in environ and environ.get("TERM") != "dumb"


def short_time(timestamp: str) -> str:
    """ "2026-01-01T03:15:00.123456Z" -> "2026-01-01T03:15:00.123Z" (milliseconds are enough)."""
    head, dot, rest = timestamp.partition(".")
    if not dot:
        return timestamp
    width = len(rest) - len(rest.lstrip("0123456789"))
    digits, zone = rest[:width], rest[width:]
    return f"{head}.{digits[:3].ljust(3, '0')}{zone}"


def field_text(value: Any) -> str:
    """A value for key=value: plain words as they are, anything else as compact JSON."""
    if isinstance(value, str) and value and not any(c in value for c in ' "=\t\n'):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def pretty_log_line(raw: str, *, colour: bool = False) -> str:
    """One daemon JSON log line for a person; a line that is not a JSON object passes as is."""
    try:
        record = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(record, dict):
        return raw
    level = str(record.get("level") or "")
    event = str(record.get("event") or "")
    where = "/".join(str(record[k]) for k in ("job", "run_id") if record.get(k)) or EMPTY
    fields = " ".join(
        f"{key}={field_text(value)}"
        for key, value in record.items()
        if key not in _HEAD_KEYS and value is not None
    )
    level_text = level.ljust(_LEVEL_WIDTH)
    if colour:
        level_text = f"{_COLOURS.get(level, '')}{level_text}{_RESET}"
    parts = [short_time(str(record.get("timestamp") or "")), level_text, event.ljust(_EVENT_WIDTH)]
    parts.append(where)
    if fields:
        parts.append(fields)
    if record.get("logger"):
        logger = f"[{record['logger']}]"
        parts.append(f"{_DIM}{logger}{_RESET}" if colour else logger)
    text = "  ".join(p for p in parts if p).rstrip()
    exception = record.get("exception")
    if exception:
        # A traceback keeps its lines, indented under the line it belongs to.
        text += "".join(f"\n    {line}" for line in str(exception).rstrip().splitlines())
    return text


# ---- events --------------------------------------------------------------------------------


def _progress(event: pb.DaemonEvent) -> str:
    if event.progress_total:
        percent = 100 * event.progress_done // max(1, event.progress_total)
        return f"{event.progress_done}/{event.progress_total} ({percent}%)"
    return f"{event.progress_done} done" if event.progress_done else ""


def event_dict(event: pb.DaemonEvent) -> dict[str, Any]:
    return {
        "kind": event.kind,
        "at": iso(event.at, precise=True) if event.HasField("at") else None,
        "bean": event.bean or None,
        "run_id": event.run_id or None,
        "outcome": event.outcome or None,
        "message": event.message or None,
        "progress_done": event.progress_done,
        "progress_total": event.progress_total,
    }


def event_line(event: pb.DaemonEvent, mode: Mode) -> str:
    """One event. TSV columns: at, kind, bean, run id, outcome, progress done, progress total,
    message."""
    if mode is Mode.JSON:
        return json.dumps(event_dict(event), separators=(",", ":"), ensure_ascii=False)
    at = iso(event.at) if event.HasField("at") else ""
    if mode is Mode.TSV:
        columns = (
            at,
            event.kind,
            event.bean,
            event.run_id,
            event.outcome,
            str(event.progress_done),
            str(event.progress_total),
            event.message,
        )
        return "\t".join(cell(c) for c in columns)
    detail = "  ".join(
        p for p in (event.outcome, _progress(event), " ".join(event.message.split())) if p
    )
    shown = (
        at,
        event.kind.ljust(15),
        (event.bean or EMPTY).ljust(24),
        event.run_id or EMPTY,
        detail,
    )
    return "  ".join(shown).rstrip()
