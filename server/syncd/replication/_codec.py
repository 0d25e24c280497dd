"""Rows of the replicated tables to change bodies and back (JSON-able values only)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from syncd.ledger.schema import (
    UTCDateTime,
    holds_table,
    jobdefs_table,
    notes_table,
    repos_table,
    runs_table,
)
from syncd.replication.bodies import JsonBody, flat_json, quote
from syncd.replication.model import (
    HOLD,
    JOB,
    NOTE,
    REPO,
    RUN,
    Change,
    Version,
    change_of,
    version_of,
)

_VERSION_COLUMNS = ("hlc", "origin", "deleted", "base_hlc", "base_origin")
_CHUNK = 500  # keys per IN (...) query

# A transaction (or a read) on the state store, as the ledger hands it out.
Tx = Callable[[], AbstractContextManager[Connection]]


def chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Codec:
    """How one record type is stored: its table, key column and data columns."""

    type: str
    table: sa.Table
    key: str
    data_columns: tuple[sa.Column[Any], ...] = ()
    key_length: int | None = None

    @classmethod
    def of(cls, type_: str, table: sa.Table, key: str) -> Codec:
        data = tuple(c for c in table.c if c.name != key and c.name not in _VERSION_COLUMNS)
        return cls(type_, table, key, data, getattr(table.c[key].type, "length", None))

    @property
    def key_column(self) -> sa.Column[Any]:
        return self.table.c[self.key]

    @property
    def columns(self) -> tuple[str, ...]:
        """The order of `row`'s values and of the rows `changes` reads: the key, the data
        columns, then the version columns."""
        return (self.key, *(c.name for c in self.data_columns), *_VERSION_COLUMNS)

    def body(self, row: Mapping[Any, Any]) -> dict[str, Any]:
        if row["deleted"]:
            return {}
        out: dict[str, Any] = {}
        for col in self.data_columns:
            value = row[col.name]
            out[col.name] = value.isoformat() if isinstance(value, datetime) else value
        return out

    def change(self, row: Mapping[Any, Any]) -> Change:
        return Change(
            type=self.type,
            id=row[self.key],
            version=Version(int(row["hlc"]), row["origin"]),
            deleted=bool(row["deleted"]),
            body=self.body(row),
            base=Version(int(row["base_hlc"]), row["base_origin"]) if row["base_origin"] else None,
        )

    def changes(self, rows: Iterable[Sequence[Any]]) -> list[Change]:
        """`change` of each row, its values in `columns` order (a page's rows by position:
        reading them by name cost more than building the changes). Each body is its JSON
        text, built from the row as `body_json` would encode it (a page is read to be sent),
        and parsed only if something reads it."""
        width = len(self.data_columns)
        names = [c.name for c in self.data_columns]
        # `body_json`'s order (by name) and its "name": prefixes, each with its row position.
        fields = sorted((name, f"{quote(name)}: ", i) for i, name in enumerate(names, start=1))
        hlc = width + 1
        out: list[Change] = []
        append = out.append
        for row in rows:
            gone = bool(row[hlc + 2])
            body: Mapping[str, Any] = {}
            if not gone:
                parts = []
                for _, prefix, i in fields:
                    value = row[i]
                    text = flat_json(value.isoformat() if type(value) is datetime else value)
                    if text is None:  # not a flat value: the general encoder, as `body_json`
                        body = self.body(dict(zip(self.columns, row, strict=True)))
                        break
                    parts.append(prefix + text)
                else:
                    body = JsonBody("{" + ", ".join(parts) + "}", encoded=True)
            base_origin = row[hlc + 4]
            append(
                change_of(
                    self.type,
                    row[0],
                    version_of(int(row[hlc]), row[hlc + 1]),
                    gone,
                    body,
                    version_of(int(row[hlc + 3]), base_origin) if base_origin else None,
                )
            )
        return out

    def row(self, change: Change) -> tuple[Any, ...]:
        """The row for `change`, its values in `columns` order: a tombstone keeps blank data
        (the columns are NOT NULL). ValueError when the body does not fit the table (a
        malformed or hostile change)."""
        length = self.key_length
        if length is not None and len(change.id) > length:
            raise ValueError(f"id is longer than {length} characters")
        body = {} if change.deleted else change.body
        get = body.get
        version, base = change.version, change.base
        return (
            change.id,
            *[_decode(col, get(col.name)) for col in self.data_columns],
            version.hlc,
            version.origin,
            change.deleted,
            base.hlc if base else 0,
            base.origin if base else "",
        )


_INT64 = (-(2**63), 2**63 - 1)


def _decode(col: sa.Column[Any], value: Any) -> Any:
    """One body field as its column holds it; ValueError names what does not fit."""
    if isinstance(col.type, UTCDateTime):
        if value is None:
            return None if col.nullable else _EPOCH
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            raise ValueError(f"{col.name} is not an ISO 8601 time") from None
        if moment.tzinfo is None:
            raise ValueError(f"{col.name} has no UTC offset")
        return moment
    if value is None:
        if col.nullable:
            return None
        return 0 if isinstance(col.type, sa.Integer) else ""
    if isinstance(col.type, sa.Integer):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{col.name} is not a whole number")
        if not _INT64[0] <= value <= _INT64[1]:
            raise ValueError(f"{col.name} is outside 64 bits")
        return value
    if not isinstance(value, str):
        raise ValueError(f"{col.name} is not text")
    length = getattr(col.type, "length", None)
    if length is not None and len(value) > length:
        raise ValueError(f"{col.name} is longer than {length} characters")
    if "\x00" in value:
        raise ValueError(f"{col.name} holds a NUL character")
    return value


CODECS: dict[str, Codec] = {
    c.type: c
    for c in (
        Codec.of(RUN, runs_table, "run_id"),
        Codec.of(HOLD, holds_table, "bean"),
        Codec.of(NOTE, notes_table, "note_id"),
        Codec.of(JOB, jobdefs_table, "name"),
        Codec.of(REPO, repos_table, "repo_id"),
    )
}
