"""Who may do what over HTTP: bearer tokens by role, and the page's CSRF token.

* A bearer token, when given, must be one of `http.operator_tokens` or `http.viewer_tokens`
  (401 otherwise) and decides the role.
* Without one the caller is anonymous: it may read when `http.open_read` is true, and may run
  and cancel only when, besides, no operator token is configured (the loopback default, where
  the listener is the boundary).
* A state-changing request without a bearer token must carry the CSRF token in the
  `X-CSRF-Token` header. The token is a random secret of this daemon process, handed out by
  `GET api/v1/session` — a same-origin read a foreign page cannot make (there are no CORS
  headers) — so a forged cross-site request cannot know it. Bearer requests need none:
  browsers never attach an Authorization header on their own.
* Anonymous callers are served only under a loopback host name or one of `http.allowed_hosts`:
  a hostile page whose domain re-resolves to 127.0.0.1 (DNS rebinding) still sends its own name
  in `Host`, so it can neither read the CSRF token nor press Run.
"""

from __future__ import annotations

import enum
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from syncd.config import HttpConfig
from syncd.errors import quote_input
from syncd.web._http import error

CSRF_HEADER = "X-CSRF-Token"
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


class Role(enum.StrEnum):
    OPERATOR = "operator"
    VIEWER = "viewer"
    ANONYMOUS = "anonymous"


@dataclass(frozen=True, slots=True)
class Caller:
    role: Role
    actor: str  # recorded with the runs this caller starts


def _known(token: str, tokens: tuple[str, ...]) -> bool:
    # Compare with every token, in constant time each: no early exit that times a prefix.
    hits = [hmac.compare_digest(token.encode(), t.encode()) for t in tokens]
    return any(hits)


class Access:
    def __init__(self, config: HttpConfig) -> None:
        self._config = config
        self.csrf_token = secrets.token_urlsafe(32)

    def _role(self, request: web.Request) -> Role:
        header = request.headers.get("Authorization")
        if header is None:
            return Role.ANONYMOUS
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise error(401, "expected the header 'Authorization: Bearer <token>'")
        if _known(token, self._config.operator_tokens):
            return Role.OPERATOR
        if _known(token, self._config.viewer_tokens):
            return Role.VIEWER
        raise error(401, "the bearer token is not valid")

    def _check_host(self, request: web.Request) -> None:
        name = host_name(request.host)
        if name in _LOOPBACK_NAMES or name in {h.lower() for h in self._config.allowed_hosts}:
            return
        raise error(
            403,
            f"host {quote_input(name)} is not served to callers without a token; add it to"
            " http.allowed_hosts or send a bearer token",
        )

    def _caller(self, request: web.Request, role: Role, via: str) -> Caller:
        return Caller(role, f"{via}:{role.value}@{request.remote or 'unknown'}")

    def anonymous_may_run(self) -> bool:
        return self._config.open_read and not self._config.operator_tokens

    def can_run(self, role: Role) -> bool:
        return role is Role.OPERATOR or (role is Role.ANONYMOUS and self.anonymous_may_run())

    def reader(self, request: web.Request, via: str = "web") -> Caller:
        """The caller of a read-only request, or 401."""
        role = self._role(request)
        if role is Role.ANONYMOUS:
            if not self._config.open_read:
                raise error(401, "this console needs a viewer or operator token")
            self._check_host(request)
        return self._caller(request, role, via)

    def writer(self, request: web.Request, via: str = "web") -> Caller:
        """The caller of a state-changing request, or 401/403."""
        role = self._role(request)
        if role is Role.VIEWER:
            raise error(403, "a viewer token cannot run or cancel jobs; use an operator token")
        if role is Role.ANONYMOUS:
            if not self.anonymous_may_run():
                raise error(401, "running and cancelling jobs needs an operator token")
            self._check_host(request)
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), self.csrf_token.encode()):
                raise error(
                    403,
                    f"missing or invalid CSRF token: send the {CSRF_HEADER} header given by"
                    " api/v1/session, or an operator bearer token",
                )
            _same_origin(request)
        return self._caller(request, role, via)


def host_name(host: str) -> str:
    """The name in a Host header (`name`, `name:port`, `[v6]`, `[v6]:port`), lower-cased; 400
    for a header that is none of these (`[::1` has no closing bracket)."""
    host = host.lower()
    if host.startswith("["):
        end = host.find("]")
        if end < 0 or (host[end + 1 :] and not host[end + 1 :].startswith(":")):
            raise error(400, f"malformed Host header {quote_input(host)}")
        return host[1:end]
    return host.rsplit(":", 1)[0]


def _same_origin(request: web.Request) -> None:
    """Defence in depth beside the token: a browser's Origin must be this very host."""
    origin = request.headers.get("Origin")
    if origin is None:
        return
    try:
        netloc = urlsplit(origin).netloc.lower()
    except ValueError:  # "http://[::1": not a URL, so no origin of ours
        netloc = ""
    if origin == "null" or netloc != request.host.lower():
        raise error(403, f"cross-origin request from {quote_input(origin)} refused")
