"""The rule book: which role each action needs. The one table; gRPC and HTTP both read it.

Roles are ordered: an operator may do everything a viewer may, an admin everything an
operator may. An edge names the *action* a request performs (the gRPC method, or for `Invoke`
the impact of the operation invoked; the HTTP route) and asks `required_role(action)`.
"""

from __future__ import annotations

import enum


class Role(enum.IntEnum):
    """What a caller may do; a higher role includes every lower one."""

    NONE = 0  # authenticated as nobody in particular: only the liveness check
    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Role:
        """A role by its name (`viewer`, `operator`, `admin`); ValueError naming the choices."""
        try:
            role = cls[text.strip().upper()]
        except KeyError:
            role = cls.NONE
        if role is cls.NONE:
            raise ValueError(f"expected viewer, operator or admin, got {text[:50]!r}")
        return role


class Action(enum.StrEnum):
    """What a request does, as far as permissions go."""

    HEALTH = "health"  # the liveness check: open to anyone who reaches a listener
    READ = "read"  # status, describe, attributes, history, runs, fires, logs, events
    AUDIT = "audit"  # the audit trail
    RUN = "run"  # start a run (an operation with impact ACTION), run-all
    CANCEL = "cancel"
    PAUSE = "pause"
    RESUME = "resume"
    NOTE = "note"  # operator notes on jobs and runs
    RELOAD = "reload"  # re-read the configuration
    LOGIN_LINK = "login-link"  # mint a one-time login link for the console (a credential)
    REPLICATION = "replication"
    CLUSTER = "cluster"  # cluster membership
    # A request the edges do not classify (an RPC added without a row in the gRPC edge's
    # table): admin only, so forgetting the row can never open anything.
    OTHER = "other"


RULES: dict[Action, Role] = {
    Action.HEALTH: Role.NONE,
    Action.READ: Role.VIEWER,
    Action.AUDIT: Role.VIEWER,
    Action.RUN: Role.OPERATOR,
    Action.CANCEL: Role.OPERATOR,
    Action.PAUSE: Role.OPERATOR,
    Action.RESUME: Role.OPERATOR,
    Action.NOTE: Role.OPERATOR,
    Action.RELOAD: Role.ADMIN,
    Action.LOGIN_LINK: Role.ADMIN,
    Action.REPLICATION: Role.ADMIN,
    Action.CLUSTER: Role.ADMIN,
    Action.OTHER: Role.ADMIN,
}


def required_role(action: Action) -> Role:
    return RULES[action]


def changes_state(action: Action) -> bool:
    """Whether a request doing `action` is recorded in the audit trail."""
    return RULES[action] >= Role.OPERATOR
