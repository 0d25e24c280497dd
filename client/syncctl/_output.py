"""The output primitives every renderer shares: the mode (table, tab-separated, JSON), cells,
aligned rows, a JSON document. Standard library only."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from typing import IO, Any

EMPTY = "-"


class Mode(enum.Enum):
    TABLE = "table"
    TSV = "tsv"
    JSON = "json"


def choose_mode(*, json_flag: bool, tty: bool) -> Mode:
    if json_flag:
        return Mode.JSON
    return Mode.TABLE if tty else Mode.TSV


def cell(text: str) -> str:
    """One TSV cell: never empty, never a tab or newline inside."""
    text = " ".join(text.split())
    return text or EMPTY


# ---- records as dicts (JSON) ---------------------------------------------------------------


def write_json(out: IO[str], document: Any) -> None:
    import json

    out.write(json.dumps(document, indent=2, sort_keys=False) + "\n")


def write_rows(
    out: IO[str], mode: Mode, headers: Sequence[str], rows: Iterable[Sequence[str]]
) -> None:
    """An aligned table with a header (TABLE) or header-less tab-separated lines (TSV)."""
    rows = list(rows)
    if mode is Mode.TSV:
        for row in rows:
            out.write("\t".join(cell(c) for c in row) + "\n")
        return
    shown = [[" ".join(c.split()) or EMPTY for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in shown:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    for row in [list(headers), *shown]:
        padded = [c.ljust(w) for c, w in zip(row[:-1], widths, strict=False)]
        out.write("  ".join([*padded, row[-1]]).rstrip() + "\n")
