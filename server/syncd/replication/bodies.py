"""A record's body as JSON text: the one encoding of a flat body, the parse, and a body kept
as the text it came as (parsed only if something reads it)."""

from __future__ import annotations

import json
import json.encoder
import json.scanner
from collections.abc import Callable, Iterator, Mapping
from typing import Any

# One encoder for every body (json.dumps with options builds a new one per call).
dumps = json.JSONEncoder(sort_keys=True, default=str).encode
_loads = json.JSONDecoder().decode
# The decoder's C scanner, called directly: `decode` adds two regular-expression matches for
# the whitespace around the value, which cost as much as the parse of a record's body.
_scan: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(
    json.JSONDecoder()  # type: ignore[arg-type]
)
quote: Callable[[str], str] = json.encoder.encode_basestring_ascii


def parse(text: str) -> Any:
    """`json.loads(text)`; ValueError when it is not JSON."""
    try:
        value, end = _scan(text, 0)
    except (StopIteration, ValueError):
        return _loads(text)  # leading whitespace, or raises naming the problem
    return value if end == len(text) else _loads(text)


def body_json(body: Mapping[str, Any]) -> str:
    """`dumps(body)` for the flat bodies the repository stores (text, whole numbers, null),
    without the encoder's per-call set-up; anything else goes through `dumps`. A body read
    from the store as its JSON (`JsonBody.encoded`) is that text already."""
    if type(body) is JsonBody and body.encoded:
        return body.text
    parts = []
    for name in sorted(body):
        text = flat_json(body[name])
        if text is None:
            return dumps(body if type(body) is dict else dict(body))
        parts.append(f"{quote(name)}: {text}")
    return "{" + ", ".join(parts) + "}"


def flat_json(value: Any) -> str | None:
    """`dumps(value)` for a flat value (text, a whole number, null); None for anything else,
    which the caller encodes whole with `dumps`."""
    kind = type(value)
    if kind is str:
        return quote(value)
    if kind is int:
        return str(value)
    if value is None:
        return "null"
    return None


class JsonBody(Mapping[str, Any]):
    """A body kept as JSON text, parsed only if something reads it. `encoded`: the text is
    `body_json` of its value (built so from a stored row), which is then sent as it is; a
    body that arrived as text from elsewhere is encoded afresh."""

    __slots__ = ("_value", "encoded", "text")

    def __init__(self, text: str, *, encoded: bool = False) -> None:
        self.text = text
        self.encoded = encoded
        self._value: dict[str, Any] | None = None

    def _parsed(self) -> dict[str, Any]:
        if self._value is None:
            value = parse(self.text or "{}")
            if not isinstance(value, dict):
                raise ValueError("body_json is not a JSON object")
            self._value = value
        return self._value

    def __getitem__(self, key: str) -> Any:
        return self._parsed()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._parsed())

    def __len__(self) -> int:
        return len(self._parsed())
