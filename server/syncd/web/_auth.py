"""Who may do what over HTTP: the same credentials and rule book as gRPC (`syncd.security`).

* `Authorization: Bearer <token>`: one of `[auth]`'s tokens (401 otherwise); its role decides.
* The console's session cookie: `syncd serve` prints a one-time login link
  (`…/sync/?token=…`); opening it exchanges the token for an HttpOnly, SameSite=Strict cookie
  worth the daemon owner's role (admin), as notebook servers do. The token works once.
* Nothing: anonymous, which gets nothing but the page itself and `/healthz` — unless
  `http.open_read` (reads) / `http.open_write` (run and cancel too) open the console to every
  caller, which is for a single-user machine only.
* A state-changing request by cookie or anonymously must carry the CSRF token in the
  `X-CSRF-Token` header: a random secret of this daemon process, handed out by
  `GET api/v1/session` (a same-origin read a foreign page cannot make). Bearer requests need
  none: browsers never attach an Authorization header on their own.
* Cookie and anonymous callers are served only under a loopback host name or one of
  `http.allowed_hosts`, which defeats DNS rebinding.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from aiohttp import web

from syncd.config import HttpConfig
from syncd.errors import PermissionDeniedError, UnauthenticatedError, quote_input
from syncd.security import Action, Guard, Principal, Role
from syncd.web._http import error

CSRF_HEADER = "X-CSRF-Token"
SESSION_COOKIE = "syncd_session"
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
MAX_SESSIONS = 1000
SESSION_LIFETIME = 12 * 3600.0  # seconds: a console login lasts a working day, then ends


class Access:
    def __init__(
        self, config: HttpConfig, guard: Guard, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._config = config
        self._guard = guard
        self._monotonic = monotonic
        self.csrf_token = secrets.token_urlsafe(32)
        self._login_token: str | None = secrets.token_urlsafe(32)
        self._sessions: dict[str, tuple[Principal, float]] = {}  # id -> (who, expires)

    # --- the one-time login link ------------------------------------------------------------

    def login_token(self) -> str | None:
        """The token of the login link, until it is used."""
        return self._login_token

    def new_login_token(self) -> str:
        """A fresh one-time token; the previous one, if unused, no longer works."""
        self._login_token = secrets.token_urlsafe(32)
        return self._login_token

    def log_in(self, request: web.Request, token: str) -> str:
        """Exchange the one-time token for a session id, or 401."""
        wanted = self._login_token
        if wanted is None or not hmac.compare_digest(token.encode(), wanted.encode()):
            raise error(401, "this login link is not valid (it works once; restart for another)")
        self._check_host(request)
        self._login_token = None
        session = secrets.token_urlsafe(32)
        if len(self._sessions) >= MAX_SESSIONS:
            self._sessions.pop(next(iter(self._sessions)))
        who = Principal(
            f"console login (uid {self._guard.owner_uid})",
            Role.ADMIN,
            request.remote or "unknown",
            "http",
        )
        self._sessions[session] = (who, self._monotonic() + SESSION_LIFETIME)
        return session

    # --- who is calling ------------------------------------------------------------------------

    def principal(self, request: web.Request) -> tuple[Principal, bool]:
        """The caller, and whether a browser could have sent the request on its own (cookie or
        anonymous: it then needs the CSRF token to change anything); 401 for a bad token."""
        address = request.remote or "unknown"
        header = request.headers.get("Authorization")
        if header is not None:
            try:
                return self._guard.from_authorization(header, address, "http"), False
            except UnauthenticatedError as exc:
                raise error(401, str(exc)) from None
        session = self._sessions.get(request.cookies.get(SESSION_COOKIE, ""))
        if session is not None:
            who, expires = session
            if self._monotonic() < expires:
                self._check_host(request)
                return who, True
            self._sessions.pop(request.cookies[SESSION_COOKIE], None)  # expired: anonymous
        role = Role.NONE
        if self._config.open_read:
            role = Role.OPERATOR if self._config.open_write else Role.VIEWER
            self._check_host(request)
        return Principal("anonymous", role, address, "http"), True

    def check(self, request: web.Request, action: Action) -> Principal:
        """The caller of `request`, allowed to do `action`; else 401 or 403."""
        principal, ambient = self.principal(request)
        if principal.role is Role.NONE and action is not Action.HEALTH:
            raise error(
                401,
                "this needs a credential: an 'Authorization: Bearer <token>' header, or the"
                " console's login link",
            )
        try:
            Guard.authorize(principal, action)
        except UnauthenticatedError as exc:
            raise error(401, str(exc)) from None
        except PermissionDeniedError as exc:  # its message names the role and the action
            raise error(403, str(exc)) from None
        if ambient and action is not Action.READ and action is not Action.AUDIT:
            self._check_csrf(request)
        return principal

    def can_run(self, principal: Principal) -> bool:
        return principal.role >= Role.OPERATOR

    def _check_csrf(self, request: web.Request) -> None:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), self.csrf_token.encode()):
            raise error(
                403,
                f"missing or invalid CSRF token: send the {CSRF_HEADER} header given by"
                " api/v1/session, or a bearer token",
            )
        _same_origin(request)

    def _check_host(self, request: web.Request) -> None:
        name = host_name(request.host)
        if name in _LOOPBACK_NAMES or name in {h.lower() for h in self._config.allowed_hosts}:
            return
        raise error(
            403,
            f"host {quote_input(name)} is not served to callers without a token; add it to"
            " http.allowed_hosts or send a bearer token",
        )


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
