"""Who is calling, and whether they may: principals from a token, a client certificate or a
unix peer's uid, checked against the rule book."""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass

import structlog

from syncd.config import AuthConfig
from syncd.errors import PermissionDeniedError, UnauthenticatedError
from syncd.security._refusals import RefusalBudget
from syncd.security._rules import Action, Role, required_role
from syncd.security._tokens import TokenBook

log = structlog.get_logger("syncd.security")

BEARER = "bearer"
# Longer than any token we issue by far; a longer header is refused before it is hashed.
MAX_TOKEN_LENGTH = 512
MAX_PEERS_KEPT = 1000


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: who (as recorded), their role, and from where."""

    actor: str  # "uid 1000 (alice)", "token ci", "cert CN=deploy", "anonymous"
    role: Role
    address: str  # the peer: "unix:pid 4242", "ipv4:10.0.0.5:51234"
    via: str  # "socket", "tcp", "http"


def _user_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


class Guard:
    """The configured credentials, and the checks every edge makes with them."""

    def __init__(self, config: AuthConfig, *, owner_uid: int | None = None) -> None:
        self.owner_uid = os.getuid() if owner_uid is None else owner_uid
        self.refusals = RefusalBudget()  # kept across reloads: a flood goes on counting
        self.update(config)

    def update(self, config: AuthConfig) -> None:
        """Take a new `[auth]` table (a reload); a bad token file raises and changes nothing."""
        tokens = TokenBook(config)
        self._config = config
        self.tokens = tokens
        # (uid, gid) -> (actor, role): user and group look-ups may go to a directory service,
        # so each peer is looked up once per configuration (and at most this many kept).
        self._peers: dict[tuple[int, int], tuple[str, Role]] = {}

    @property
    def grants_unix_users(self) -> bool:
        """Whether any other local user may use the control socket at all."""
        return bool(self._config.unix_roles)

    # --- authentication --------------------------------------------------------------------

    def from_authorization(self, header: str, address: str, via: str) -> Principal:
        """The principal of an `Authorization: Bearer <token>` value, or UnauthenticatedError."""
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != BEARER or not token:
            raise UnauthenticatedError("expected the credential as 'Bearer <token>'")
        return self.from_token(token, address, via)

    def from_token(self, token: str, address: str, via: str) -> Principal:
        entry = self.tokens.find(token) if len(token) <= MAX_TOKEN_LENGTH else None
        if entry is None:
            raise UnauthenticatedError("the token is not valid (unknown, or revoked)")
        return Principal(f"token {entry.name}", entry.role, address, via)

    def from_certificate(self, common_name: str, address: str) -> Principal | None:
        """The principal of a verified client certificate whose subject has a role."""
        role = self._config.cert_roles.get(common_name)
        if role is None:
            return None
        return Principal(f"cert CN={common_name}", Role.parse(role), address, "tcp")

    def from_unix_peer(self, uid: int, gid: int, pid: int) -> Principal:
        """The principal of a local process on the control socket (its kernel-given uid)."""
        known = self._peers.get((uid, gid))
        if known is None:
            name = _user_name(uid)
            actor = f"uid {uid} ({name})" if name else f"uid {uid}"
            owner = uid in (self.owner_uid, 0)
            known = (actor, Role.ADMIN if owner else self._unix_role(uid, gid, name))
            if len(self._peers) >= MAX_PEERS_KEPT:
                self._peers.clear()
            self._peers[(uid, gid)] = known
        actor, role = known
        return Principal(actor, role, f"unix:pid {pid}", "socket")

    def _unix_role(self, uid: int, gid: int, name: str | None) -> Role:
        roles = self._config.unix_roles
        found = [Role.parse(roles[name])] if name and name in roles else []
        groups = {gid}
        if name is not None:
            groups.update(os.getgrouplist(name, gid))
        for group in groups:
            try:
                group_name = grp.getgrgid(group).gr_name
            except KeyError:
                continue
            if f"group:{group_name}" in roles:
                found.append(Role.parse(roles[f"group:{group_name}"]))
        return max(found, default=Role.NONE)

    # --- authorization ---------------------------------------------------------------------

    @staticmethod
    def authorize(principal: Principal, action: Action) -> None:
        needed = required_role(action)
        if principal.role < needed:
            if principal.role is Role.NONE and principal.via != "socket":
                raise UnauthenticatedError(
                    f"{action.value} needs a credential: a bearer token"
                    " or a client certificate with a role"
                )
            raise PermissionDeniedError(
                principal.actor, principal.role.label, action.value, needed.label
            )
