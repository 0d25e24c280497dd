"""The replica's side of a lease, without a database: a store whose heartbeat hangs (a lost
server) must make the replica give its claims up while the heartbeat is still hanging — the
run is stopped before the lease could expire — and a renewal keeps them."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime
from typing import Any, cast

import pytest

from syncd.clock import SystemClock
from syncd.cluster import ClusterRunClaim, ClusterStore
from syncd.cluster._store import Beat
from syncd.errors import AlreadyRunningError
from syncd.execution.claim import Claim
from tests.waiting import within


class HangingStore:
    """Grants claims; its heartbeat renews them until `hang` is set, then blocks until
    `answer` is set (as a statement to a lost server does)."""

    replica = "blue"

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.hang = threading.Event()
        self.answer = threading.Event()
        self.beats = 0
        self.beaten = threading.Event()

    def acquire(
        self, bean: str, run_id: str, slot: datetime | None, rerun: bool = False
    ) -> tuple[Claim, None]:
        claim = Claim(bean=bean, run_id=run_id, token=1, replica=self.replica, fencing=True)
        return claim, None

    def release(self, claim: Claim) -> None:
        pass

    def beat(self, held: list[str]) -> Beat:
        if self.hang.is_set():
            self.answer.wait(30)
        self.beats += 1
        self.beaten.set()
        return Beat(renewed=frozenset(held), holders={}, reaped=[], member=True, replicas=[])

    def close(self) -> None:
        pass

    def leave(self) -> None:
        pass


async def _nothing(*_: Any) -> None:
    return None


@pytest.mark.timeout(60)
def test_a_hanging_heartbeat_gives_the_claim_up_before_it_answers() -> None:
    asyncio.run(_hanging())


async def _hanging() -> None:
    store = HangingStore(ttl=1.5)
    claim = ClusterRunClaim(cast(ClusterStore, store), SystemClock(), give_up_after=1.0)
    lost = asyncio.Event()
    seen: list[Claim] = []

    def note(given: Claim) -> None:
        seen.append(given)
        lost.set()

    claim.on_lost(note)
    held = await claim.acquire("Job", "r1")
    claim.start_heartbeat(_nothing, _nothing)
    await within(asyncio.to_thread(store.beaten.wait, 10), "a first renewal")
    store.hang.set()
    await within(lost.wait(), "the claim given up")
    assert seen == [held]
    assert not store.answer.is_set()  # given up while the heartbeat still hung
    store.answer.set()
    again = await claim.acquire("Job", "r2")  # a lost claim does not block the bean here
    assert again.run_id == "r2"
    await claim.leave()
    await claim.close()


@pytest.mark.timeout(60)
def test_renewals_keep_the_claim_and_refuse_a_second_run_here() -> None:
    asyncio.run(_renewing())


async def _renewing() -> None:
    store = HangingStore(ttl=1.5)
    claim = ClusterRunClaim(cast(ClusterStore, store), SystemClock(), give_up_after=1.0)
    lost: list[Claim] = []
    claim.on_lost(lost.append)
    await claim.acquire("Job", "r1")
    claim.start_heartbeat(_nothing, _nothing)
    with pytest.raises(AlreadyRunningError) as refused:
        await claim.acquire("Job", "r2")
    assert (refused.value.run_id, refused.value.replica) == ("r1", "blue")
    renewed_after = store.beats + 4  # several renewals, each within the give-up time
    await within(
        asyncio.to_thread(lambda: _beats_reach(store, renewed_after)), "four more renewals"
    )
    assert lost == []
    await claim.leave()
    await claim.close()


def _beats_reach(store: HangingStore, count: int) -> None:
    while store.beats < count:
        store.beaten.clear()
        store.beaten.wait(10)


class SlowGrantStore(HangingStore):
    """Grants a claim only once `grant` is set (a statement still on its way), and notes the
    claims released."""

    def __init__(self, ttl: float) -> None:
        super().__init__(ttl)
        self.asked = threading.Event()
        self.grant = threading.Event()
        self.released: list[Claim] = []

    def acquire(
        self, bean: str, run_id: str, slot: datetime | None, rerun: bool = False
    ) -> tuple[Claim, None]:
        self.asked.set()
        self.grant.wait(30)
        return super().acquire(bean, run_id, slot, rerun)

    def release(self, claim: Claim) -> None:
        self.released.append(claim)


@pytest.mark.timeout(60)
def test_a_claim_granted_after_its_request_was_cancelled_is_given_back_before_leaving() -> None:
    """A shutdown cancels a start whose claim is still being granted: the grant that comes
    anyway is released (not left to block the job cluster-wide until it expires)."""
    asyncio.run(_cancelled_grant())


async def _cancelled_grant() -> None:
    store = SlowGrantStore(ttl=1.5)
    claim = ClusterRunClaim(cast(ClusterStore, store), SystemClock(), give_up_after=1.0)
    asking = asyncio.ensure_future(claim.acquire("Job", "r1"))
    await within(asyncio.to_thread(store.asked.wait, 10), "the claim asked for")
    asking.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asking
    assert claim.holder("Job") is None
    store.grant.set()  # the database grants it after all
    await within(claim.leave(), "leaving")  # waits for the grant, and gives it back
    assert [(c.bean, c.run_id) for c in store.released] == [("Job", "r1")]
    await claim.close()
