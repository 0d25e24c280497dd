"""The helpers every bad-input answer goes through: bounded quotes, clipped messages, safe
metadata, and JSON / value decoding that fails only with a short ValueError."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from syncd.errors import INPUT_QUOTE_LIMIT, MESSAGE_LIMIT, InvalidArgumentError, clip, quote_input
from syncd.rpc.errors import metadata_value
from syncd.values import JSON_MAX_DEPTH, ValueType, coerce, parse_json, parse_timestamp


def _outcome(function: Callable[..., Any], *args: Any) -> tuple[Any, ValueError | None]:
    """What `function(*args)` returns, or the ValueError it raises (any other escapes)."""
    try:
        return function(*args), None
    except ValueError as exc:
        return None, exc


# repr escapes a character to at most 10 ("\U000e0001"); the rest is the "(N characters)" note.
QUOTE_MAX = INPUT_QUOTE_LIMIT * 10 + 40


@given(st.one_of(st.text(), st.text(min_size=INPUT_QUOTE_LIMIT, max_size=3 * INPUT_QUOTE_LIMIT)))
def test_a_quote_holds_at_most_the_limit_of_the_input(text: str) -> None:
    quoted = quote_input(text)
    assert len(quoted) <= QUOTE_MAX
    assert quoted.startswith(repr(text[:INPUT_QUOTE_LIMIT])[:-1])
    assert (f"({len(text)} characters)" in quoted) == (len(text) > INPUT_QUOTE_LIMIT)


@given(st.text(max_size=3000))
def test_a_clipped_message_keeps_its_head_and_tail(text: str) -> None:
    clipped = clip(text)
    assert len(clipped) <= MESSAGE_LIMIT + 40
    if len(text) <= MESSAGE_LIMIT:
        assert clipped == text
    else:
        assert clipped.startswith(text[:200]) and clipped.endswith(text[-MESSAGE_LIMIT // 4 :])


@given(st.text(max_size=1000))
def test_metadata_values_are_printable_ascii_and_bounded(text: str) -> None:
    sent = metadata_value(text)
    assert sent.isascii() and sent.isprintable()
    assert len(sent) <= 3 * 4 * INPUT_QUOTE_LIMIT  # "%F0%9F%98%80" for one character at most


_storable_text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
)
_json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    _storable_text,
)
_json_values = st.recursive(
    _json_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(_storable_text, inner, max_size=3)
    ),
    max_leaves=25,
)


@given(_json_values)
def test_json_within_the_limits_round_trips(value: Any) -> None:
    assert parse_json(json.dumps(value)) == value


@given(
    st.one_of(
        st.text(max_size=400),
        st.text(alphabet='[]{}",:0123456789.eE+-\\u0', max_size=400),
        st.integers(JSON_MAX_DEPTH + 1, 5000).map(lambda n: "[" * n + "]" * n),
        st.binary(max_size=100),
    )
)
def test_any_json_input_parses_or_fails_with_a_short_value_error(text: str | bytes) -> None:
    parsed, error = _outcome(parse_json, text)
    if error is not None:
        assert len(str(error)) <= 300
    elif isinstance(parsed, float):
        assert math.isfinite(parsed)


@given(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(max_size=500),
        st.datetimes(),
        st.lists(st.integers(), max_size=3),
    ),
    st.sampled_from(list(ValueType)),
)
def test_coercion_takes_or_refuses_with_a_short_reason(value: Any, to: ValueType) -> None:
    _, error = _outcome(coerce, value, to)
    if error is not None:
        refusal = InvalidArgumentError("op", str(error), "p" * 1000)
        assert len(str(refusal)) <= QUOTE_MAX + MESSAGE_LIMIT + 100


@given(st.text(max_size=60))
def test_any_timestamp_text_parses_or_fails_with_a_value_error(text: str) -> None:
    moment, error = _outcome(parse_timestamp, text)
    if error is not None:
        assert len(str(error)) <= QUOTE_MAX + 60
    else:
        assert moment.utcoffset() == timedelta(0)
