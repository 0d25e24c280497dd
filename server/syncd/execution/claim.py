"""The run claim: exactly one run per bean at a time, behind one interface.

A claim is acquired before a run's start is written to the ledger and released once its end
is (or once its start was refused). The protocol is async because a cluster-wide claim (a
PostgreSQL lease with a fencing token, `syncd.cluster`) needs I/O; the in-memory claim of a
single daemon never awaits inside `acquire`, so on one event loop two requests cannot both win.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from syncd.errors import AlreadyRunningError


@dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    """The right to run `bean` as `run_id`; `token` grows with every claim granted, so a
    holder whose claim was lost can be told from the one that replaced it.

    `fencing` says the token is a cluster-wide fencing token (monotonic per bean across every
    replica and restart), which a job may record where it publishes; an in-memory token only
    orders the claims of one process.
    """

    bean: str
    run_id: str
    token: int
    replica: str = ""
    fencing: bool = False


# Called with a claim this process held and has lost (its lease could not be renewed).
OnLost = Callable[[Claim], None]
# Called with a claim of this process whose run another replica was asked to cancel, and who.
OnCancel = Callable[[Claim, str], None]


class RunClaim(Protocol):
    async def acquire(
        self,
        bean: str,
        run_id: str,
        *,
        slot_time: datetime | None = None,
        rerun: bool = False,
    ) -> Claim:
        """Claim `bean` for `run_id`, or raise AlreadyRunningError naming the holder's run
        (and replica). A scheduled run passes its nominal `slot_time`: a slot is claimed once,
        whoever fires it (SlotClaimedError for the others). A catch-up's `rerun` of a slot
        may claim one that was only answered as skipped (its job was under way then)."""
        ...

    async def release(self, claim: Claim) -> None:
        """Give the claim up; releasing a claim no longer held changes nothing."""
        ...

    def holder(self, bean: str) -> Claim | None:
        """Who holds `bean` now, if anyone, as far as this process knows (no I/O)."""
        ...

    async def released(self, claim: Claim) -> None:
        """Return once `claim` is no longer held (by its run ending anywhere, or expiring)."""
        ...

    async def lookup(self, bean: str) -> Claim | None:
        """Who holds `bean` now, asking the source (the cluster database) rather than the
        view `holder` answers from."""
        ...

    def on_lost(self, callback: OnLost) -> None:
        """Call `callback` with each claim of this process that is lost before its release."""
        ...

    def on_cancel(self, callback: OnCancel) -> None:
        """Call `callback` when another replica is asked to cancel a run this process holds."""
        ...

    async def request_cancel(self, bean: str, actor: str) -> Claim | None:
        """Ask another replica running `bean` to stop it; its claim, or None when none does."""
        ...


class InMemoryRunClaim:
    """Claims held by this process; acquire and release never await, so on one event loop
    two requests cannot both win."""

    def __init__(self) -> None:
        self._held: dict[str, Claim] = {}
        self._tokens = itertools.count(1)

    async def acquire(
        self,
        bean: str,
        run_id: str,
        *,
        slot_time: datetime | None = None,
        rerun: bool = False,
    ) -> Claim:
        # No await before the dict is updated: this is what makes the claim atomic.
        current = self._held.get(bean)
        if current is not None:
            raise AlreadyRunningError(bean, current.run_id)
        claim = Claim(bean=bean, run_id=run_id, token=next(self._tokens))
        self._held[bean] = claim
        return claim

    async def release(self, claim: Claim) -> None:
        # Only the holder's own claim is let go: a stale release cannot free a newer run.
        if self._held.get(claim.bean) == claim:
            del self._held[claim.bean]

    def holder(self, bean: str) -> Claim | None:
        return self._held.get(bean)

    async def released(self, claim: Claim) -> None:
        # Only this process holds claims here; its own runs are awaited through the run.
        return None

    async def lookup(self, bean: str) -> Claim | None:
        return self._held.get(bean)

    def on_lost(self, callback: OnLost) -> None:
        return None  # a claim in memory is never lost while its process lives

    def on_cancel(self, callback: OnCancel) -> None:
        return None  # no other replica: every cancel is asked of this process directly

    async def request_cancel(self, bean: str, actor: str) -> Claim | None:
        return None  # every claim here is this process's own
