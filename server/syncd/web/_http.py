"""Small HTTP helpers of the console: JSON errors, JSON bodies, UTC instants, SSE frames."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from syncd.errors import quote_input
from syncd.values import Value, parse_json

JSON_TYPE = "application/json"


def error(status: int, message: str, **extra: Any) -> web.HTTPException:
    """An aiohttp HTTP exception whose body is `{"error": message, ...}`."""
    body = json.dumps({"error": message, **extra})
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="syncd"'
    cls: type[web.HTTPException] = {
        400: web.HTTPBadRequest,
        401: web.HTTPUnauthorized,
        403: web.HTTPForbidden,
        404: web.HTTPNotFound,
        409: web.HTTPConflict,
        503: web.HTTPServiceUnavailable,
    }[status]
    return cls(text=body, content_type=JSON_TYPE, headers=headers)


def reply(data: Any, status: int = 200) -> web.Response:
    # Job state changes by the second: nothing here may be cached.
    return web.json_response(data, status=status, headers={"Cache-Control": "no-store"})


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body; an empty body is `{}`; anything else is a 400 (too deep,
    a non-finite number, text no store keeps: see `values.parse_json`)."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = parse_json(raw)
    except ValueError as exc:
        raise error(400, f"the body is not acceptable JSON: {exc}") from None
    if not isinstance(body, dict):
        raise error(400, f"the body must be a JSON object, got {type(body).__name__}")
    return body


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """A whole-number query parameter from `low` to `high`, or 400 quoting what was sent.

    ASCII digits only: `str.isdigit` also takes "²", which `int` then refuses.
    """
    raw = request.query.get(name)
    if raw is None:
        return default
    if raw.isascii() and raw.isdigit() and len(raw) <= len(str(high)):
        number = int(raw)
        if low <= number <= high:
            return number
    raise error(400, f"{name} must be a whole number from {low} to {high}, got {quote_input(raw)}")


def instant(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a `Z`, the one time format of the API."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def plain(value: Value) -> Any:
    """A typed value as JSON: instants as UTC text, structures element by element."""
    if isinstance(value, datetime):
        return instant(value)
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def plain_mapping(values: Mapping[str, Value]) -> dict[str, Any]:
    return {k: plain(v) for k, v in values.items()}


def sse_frame(event: str, data: Any) -> bytes:
    """One Server-Sent Events frame; `data` is sent as one line of JSON."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    # A JSON text has no raw newlines, but a log line handed over as text might.
    lines = "".join(f"data: {part}\n" for part in payload.split("\n"))
    return f"event: {event}\n{lines}\n".encode()
