"""Bulk request bodies for Elasticsearch, capped by bytes rather than by document count.

The old job sent pages of N documents, and AWS Elasticsearch refused a page once it passed
10 MB. Here each document becomes one item (its action line and its source line, NDJSON) and
items are packed into bodies of at most `max_bytes`; an item is never split, and an item larger
than the cap on its own goes alone (Elasticsearch then decides; the cap only has to keep
ordinary bodies small).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any


def dumps(value: Any) -> bytes:
    """Compact JSON as UTF-8, the encoding Elasticsearch expects."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def index_item(doc_id: int, source: dict[str, Any]) -> bytes:
    """One bulk item: `index` (create or replace) the document under its deterministic id."""
    return b'{"index":{"_id":"%d"}}\n' % doc_id + dumps(source) + b"\n"


def split_bulk(items: Iterable[bytes], max_bytes: int) -> Iterator[list[bytes]]:
    """The items in order, grouped into bodies of at most `max_bytes` bytes each.

    Every group is non-empty; a group exceeds `max_bytes` only when it is a single item that
    does on its own. Concatenating the groups gives the items back unchanged.
    """
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
    group: list[bytes] = []
    size = 0
    for item in items:
        if group and size + len(item) > max_bytes:
            yield group
            group, size = [], 0
        group.append(item)
        size += len(item)
    if group:
        yield group
