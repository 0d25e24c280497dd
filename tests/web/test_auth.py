"""The console's login sessions, with an injected clock."""

from __future__ import annotations

from aiohttp.test_utils import make_mocked_request

from syncd.config import AuthConfig, HttpConfig
from syncd.security import Guard, Role
from syncd.web._auth import SESSION_COOKIE, SESSION_LIFETIME, Access

HOST = {"Host": "127.0.0.1:8101"}


def test_a_login_session_ends_after_its_lifetime() -> None:
    """The cookie is the owner's (admin) for SESSION_LIFETIME, then worth nothing."""
    now = [1000.0]
    access = Access(HttpConfig(address="127.0.0.1:0"), Guard(AuthConfig()), lambda: now[0])
    token = access.login_token()
    assert token is not None
    session = access.log_in(
        make_mocked_request("GET", f"/sync/?token={token}", headers=HOST), token
    )
    assert access.login_token() is None  # the link works once
    request = make_mocked_request(
        "GET", "/sync/api/v1/jobs", headers={**HOST, "Cookie": f"{SESSION_COOKIE}={session}"}
    )
    assert access.principal(request)[0].role is Role.ADMIN
    now[0] += SESSION_LIFETIME - 1
    assert access.principal(request)[0].role is Role.ADMIN
    now[0] += 2
    who, _ = access.principal(request)
    assert (who.actor, who.role) == ("anonymous", Role.NONE)
