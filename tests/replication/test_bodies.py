"""A page's bodies as read from rows: the JSON text the codec builds from a row is what the
general encoder makes of the body it stands for, and reads as that body."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from syncd.replication._codec import CODECS
from syncd.replication.bodies import JsonBody, body_json, dumps
from syncd.replication.model import RUN

WHEN = datetime(2026, 11, 22, 6, 0, 0, 123456, tzinfo=UTC)


def _value(column: sa.Column[Any], i: int) -> Any:
    if i % 5 == 0 and column.nullable:
        return None
    if isinstance(column.type, sa.DateTime):
        return WHEN
    if isinstance(column.type, sa.Integer):
        return -(2**40) + i
    return f'text "{column.name}" \\ é\u2028 \U0001f600 {i}'


def _row(codec: Any, i: int, deleted: bool = False) -> tuple[Any, ...]:
    data = [_value(c, i + n) for n, c in enumerate(codec.data_columns, start=1)]
    return (f"id{i}", *data, 1000 + i, "origin", deleted, 0, "")


def test_each_codec_builds_the_json_the_encoder_makes_of_the_body() -> None:
    for codec in CODECS.values():
        rows = [_row(codec, i) for i in range(7)] + [_row(codec, 9, deleted=True)]
        for row, change in zip(rows, codec.changes(rows), strict=True):
            expected = codec.body(dict(zip(codec.columns, row, strict=True)))
            assert dict(change.body) == expected
            assert body_json(change.body) == dumps(expected)
            if not change.deleted:
                assert type(change.body) is JsonBody and change.body.encoded


def test_a_body_with_a_value_that_is_not_flat_is_a_plain_body() -> None:
    codec = CODECS[RUN]
    row = list(_row(codec, 1))
    row[1] = 1.5  # neither text, a whole number, null nor a time
    (change,) = codec.changes([tuple(row)])
    assert type(change.body) is dict
    assert body_json(change.body) == dumps(codec.body(dict(zip(codec.columns, row, strict=True))))


def test_a_relayed_body_is_encoded_afresh() -> None:
    relayed = JsonBody('{ "b": 1,"a": "x" }')
    assert dict(relayed) == {"a": "x", "b": 1}
    assert body_json(relayed) == '{"a": "x", "b": 1}'
