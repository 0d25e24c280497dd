"""The run claim: exactly one run per bean at a time, behind one interface.

A claim is acquired before a run's start is written to the ledger and released once its end
is (or once its start was refused). Today's implementation holds claims in memory, which is
enough for one daemon; cluster mode plugs a cluster-wide claim (a lease with a fencing token)
in here and nowhere else.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Protocol

from syncd.errors import AlreadyRunningError


@dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    """The right to run `bean` as `run_id`; `token` grows with every claim granted, so a
    holder whose claim was lost can be told from the one that replaced it."""

    bean: str
    run_id: str
    token: int


class RunClaim(Protocol):
    def acquire(self, bean: str, run_id: str) -> Claim:
        """Claim `bean` for `run_id`, or raise AlreadyRunningError naming the holder's run."""
        ...

    def release(self, claim: Claim) -> None:
        """Give the claim up; releasing a claim no longer held changes nothing."""
        ...

    def holder(self, bean: str) -> Claim | None:
        """Who holds `bean` now, if anyone."""
        ...


class InMemoryRunClaim:
    """Claims held by this process; acquire and release never await, so on one event loop
    two requests cannot both win."""

    def __init__(self) -> None:
        self._held: dict[str, Claim] = {}
        self._tokens = itertools.count(1)

    def acquire(self, bean: str, run_id: str) -> Claim:
        current = self._held.get(bean)
        if current is not None:
            raise AlreadyRunningError(bean, current.run_id)
        claim = Claim(bean=bean, run_id=run_id, token=next(self._tokens))
        self._held[bean] = claim
        return claim

    def release(self, claim: Claim) -> None:
        # Only the holder's own claim is let go: a stale release cannot free a newer run.
        if self._held.get(claim.bean) == claim:
            del self._held[claim.bean]

    def holder(self, bean: str) -> Claim | None:
        return self._held.get(bean)
