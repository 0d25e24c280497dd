"""Control-plane security: the role rule book, tokens, principals, peer identity and TLS.

Edges ask `Guard` who a caller is (a bearer token, a client certificate's subject, a unix
peer's kernel-given uid) and whether the rule book (`RULES`) lets that role do an action. The
rules exist once, here; the gRPC interceptor and the web console both read them.
"""

from __future__ import annotations

from syncd.security._guard import MAX_TOKEN_LENGTH as MAX_TOKEN_LENGTH
from syncd.security._guard import Guard as Guard
from syncd.security._guard import Principal as Principal
from syncd.security._refusals import RefusalBudget as RefusalBudget
from syncd.security._refusals import held_back_note as held_back_note
from syncd.security._rules import RULES as RULES
from syncd.security._rules import Action as Action
from syncd.security._rules import Role as Role
from syncd.security._rules import changes_state as changes_state
from syncd.security._rules import required_role as required_role
from syncd.security._tls import ServerTls as ServerTls
from syncd.security._tokens import hash_token as hash_token
from syncd.security._tokens import new_token as new_token
from syncd.security._unixpeer import PeerRelay as PeerRelay
from syncd.security._unixpeer import parse_relayed_peer as parse_relayed_peer

__all__ = [
    "MAX_TOKEN_LENGTH",
    "RULES",
    "Action",
    "Guard",
    "PeerRelay",
    "Principal",
    "RefusalBudget",
    "Role",
    "ServerTls",
    "changes_state",
    "hash_token",
    "held_back_note",
    "new_token",
    "parse_relayed_peer",
    "required_role",
]
