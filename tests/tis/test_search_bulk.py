"""Bulk bodies capped by bytes: the splitter, and the item encoding."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd_tis.search.bulk import index_item, split_bulk

items_strategy = st.lists(st.binary(min_size=1, max_size=300), max_size=60)


@given(items=items_strategy, cap=st.integers(min_value=1, max_value=1000))
def test_groups_keep_every_item_whole_and_in_order(items: list[bytes], cap: int) -> None:
    """Concatenating the groups gives the items back, in order, none split or dropped."""
    groups = list(split_bulk(items, cap))
    assert [item for group in groups for item in group] == items


@given(items=items_strategy, cap=st.integers(min_value=1, max_value=1000))
def test_no_group_exceeds_the_cap_unless_it_is_one_oversized_item(
    items: list[bytes], cap: int
) -> None:
    """Every group is non-empty and fits the cap, or is a single item bigger than the cap."""
    for group in split_bulk(items, cap):
        assert group
        size = sum(map(len, group))
        assert size <= cap or (len(group) == 1 and len(group[0]) > cap)


@given(items=items_strategy, cap=st.integers(min_value=1, max_value=1000))
def test_groups_are_as_full_as_the_cap_allows(items: list[bytes], cap: int) -> None:
    """Greedy: a group is closed only because the next item would not have fitted."""
    groups = list(split_bulk(items, cap))
    for group, following in itertools.pairwise(groups):
        assert sum(map(len, group)) + len(following[0]) > cap


def test_exactly_full_bodies_and_an_oversized_item() -> None:
    a, b, big, c = b"a" * 40, b"b" * 60, b"x" * 250, b"c" * 1
    assert list(split_bulk([a, b, big, c], 100)) == [[a, b], [big], [c]]
    assert list(split_bulk([], 100)) == []
    with pytest.raises(ValueError, match="at least 1"):
        list(split_bulk([a], 0))


def test_an_item_is_an_index_action_with_the_documents_id_and_its_source() -> None:
    """Two NDJSON lines; non-ASCII text stays UTF-8."""
    item = index_item(42, {"surname": "Ó Briain", "n": 1})
    action, source, rest = item.split(b"\n")
    assert json.loads(action) == {"index": {"_id": "42"}}
    assert json.loads(source) == {"surname": "Ó Briain", "n": 1}
    assert rest == b""
    assert "Ó".encode() in source
