"""What an index build writes to: a sink that builds a new index aside and switches to it.

A run calls `begin()` once, `write(batch)` per page of documents, then `commit()`, which makes
the new index the one searchers see in one atomic step and drops the old one. Any failure or
cancellation before `commit()` returns calls `abort()`, which removes the new index and leaves
the previous one serving. Searchers never see an empty or partial index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class SearchError(Exception):
    """An index build or a search cannot go on; the message says why."""


@dataclass(frozen=True, slots=True)
class Document:
    """One search document: its id (the person's or post's id) and its JSON-ready body.

    `text` is what the embedded full-text index matches against (Elasticsearch analyses the
    body itself).
    """

    id: int
    source: dict[str, Any]
    text: str


class Sink(Protocol):
    """Where an index build goes; see the module docstring for the protocol."""

    @property
    def written(self) -> int:
        """Documents written so far in this build."""
        ...

    def begin(self) -> None: ...
    def write(self, batch: Sequence[Document]) -> None: ...
    def commit(self) -> None: ...
    def abort(self) -> None:
        """Remove what this build made; never raises (it runs while another error unwinds)."""
        ...


class Searcher(Protocol):
    def search(self, query: str, limit: int) -> list[dict[str, Any]]:
        """The documents matching `query`, best first, at most `limit`."""
        ...
