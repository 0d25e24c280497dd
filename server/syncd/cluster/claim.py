"""The cluster-wide run claim: a lease in PostgreSQL with a fencing token, kept by heartbeat.

`ClusterRunClaim` is the `RunClaim` of a replica. A claim is granted by one transaction in
the cluster database (`_store`); while this replica holds it, the heartbeat renews its lease
every third of `lease_ttl`. The heartbeat is also how the replica notices the others: it
records their runs `interrupted` when their leases expire (the catch-up rules then decide
whether the job runs again, through `on_reaped`), refreshes who holds what, and notes this
replica's own liveness.

A replica that cannot renew (the database is gone, the process stalled) gives its claims up
on its own once `give_up_after` seconds have passed since the last renewal went out, measured
on the local monotonic clock: that is before the database can let the lease expire, so the
run is stopped (`on_lost`) before another replica may start the job. A run that still
publishes late is refused by its fencing token.

All SQL runs on this claim's threads; the event loop only awaits.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

import structlog

from syncd.clock import Clock
from syncd.cluster._store import Beat, ClusterStore
from syncd.cluster.model import Reaped, ReplicaInfo
from syncd.errors import AlreadyRunningError, LedgerUnavailableError
from syncd.execution.claim import Claim, OnCancel, OnLost
from syncd.ledger import problem_of

log = structlog.get_logger("syncd.cluster")

_T = TypeVar("_T")
EXPIRY_SLACK = 0.05  # seconds past a lease's expiry before looking (clock reading jitter)
OnReaped = Callable[[list[Reaped]], Awaitable[None]]
OnBeat = Callable[[], Awaitable[None]]


class ClusterRunClaim:
    """The run claim of one replica of a cluster."""

    def __init__(
        self,
        store: ClusterStore,
        clock: Clock,
        *,
        give_up_after: float,
    ) -> None:
        self._store = store
        self._clock = clock
        self.replica = store.replica
        self.ttl = store.ttl
        self.interval = store.ttl / 3
        self._give_up_after = give_up_after
        self._threads = ThreadPoolExecutor(4, thread_name_prefix="syncd-cluster")
        self._held: dict[str, Claim] = {}  # by bean: this replica's claims
        self._renewed: dict[str, float] = {}  # by run id: monotonic time of the last renewal sent
        self._turns: dict[str, asyncio.Lock] = {}  # by bean: one claim attempt at a time
        self._holders: dict[str, Claim] = {}  # every replica's live claims, as of the last beat
        self._lost: list[OnLost] = []
        self._cancels: list[OnCancel] = []
        self._cancel_passed: set[str] = set()  # run ids whose remote cancel was passed on
        self._giving_back: set[asyncio.Future[Any]] = set()  # claims granted to no one
        self._beaten = asyncio.Event()  # replaced on each beat; wakes `released` waiters
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._members: frozenset[str] = frozenset()  # live replicas, as of the last beat
        self.seen: list[ReplicaInfo] = []  # every replica, as of the last beat (for /metrics)
        self.problem = ""  # "" while the heartbeat reaches the database
        self.last_beat: datetime | None = None  # this replica's clock, for display only

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.wrap_future(self._threads.submit(fn, *args))

    # --- membership ------------------------------------------------------------------------

    async def join(self, pid: int) -> list[Reaped]:
        """Become a member (StartupEnvironmentError if a live daemon has this name)."""
        reaped = await self._run(self._store.join, socket.gethostname(), pid)
        log.info("cluster.joined", replica=self.replica, lease_ttl_s=self.ttl)
        return reaped

    def start_heartbeat(self, on_reaped: OnReaped, on_beat: OnBeat) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._heartbeat(on_reaped, on_beat), name="cluster-heartbeat"
        )

    async def leave(self) -> None:
        """Stop the heartbeat and mark this replica gone (best effort: a lost database
        cannot hold the shutdown up; the others then see it `lost`)."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while self._giving_back:  # claims granted to requests a shutdown cancelled
            await asyncio.wait(set(self._giving_back))
        try:
            await self._run(self._store.leave)
        except LedgerUnavailableError as exc:
            log.warning("cluster.leave_unrecorded", problem=exc.problem)
        else:
            log.info("cluster.left", replica=self.replica)

    async def close(self) -> None:
        await self._run(self._store.close)
        self._threads.shutdown(wait=False)

    async def replicas(self) -> list[ReplicaInfo]:
        return await self._run(self._store.replicas)

    async def replicas_of(self, run_ids: list[str]) -> dict[str, str]:
        """Which replica ran each of these runs."""
        return await self._run(self._store.replicas_of, run_ids)

    # --- RunClaim ----------------------------------------------------------------------------

    async def acquire(
        self,
        bean: str,
        run_id: str,
        *,
        slot_time: datetime | None = None,
        rerun: bool = False,
    ) -> Claim:
        # Requests of this replica for one bean take turns (a refusal must name a run that
        # exists, not an attempt that may fail), and its own run is refused without I/O.
        async with self._turns.setdefault(bean, asyncio.Lock()):
            mine = self._held.get(bean)
            if mine is not None:
                if slot_time is not None:
                    await self._answer_slot(bean, slot_time, mine.run_id, rerun)
                raise AlreadyRunningError(bean, mine.run_id, self.replica)
            sent = self._clock.monotonic()
            asking = asyncio.ensure_future(
                self._run(self._store.acquire, bean, run_id, slot_time, rerun)
            )
            try:
                claim, reaped = await asyncio.shield(asking)
            except asyncio.CancelledError:
                # The statement goes on in its thread (a shutdown cancelled the caller): a
                # claim it grants is given back, not left to block the job until it expires.
                self._giving_back.add(asking)
                asking.add_done_callback(self._give_back)
                raise
            if reaped is not None:
                _log_reaped(reaped, by="claim")
            self._held[bean] = claim
            self._renewed[run_id] = sent
            self._holders[bean] = claim
            return claim

    async def _answer_slot(self, bean: str, slot_time: datetime, run_id: str, rerun: bool) -> None:
        """A slot fired while this replica runs the job is answered skipped in the database,
        as a refusal by another replica's claim answers it, so a replica firing it later (its
        clock behind) does not run it. Raises SlotClaimedError when it was answered already.
        A database out of reach leaves it unanswered: the local refusal still stands."""
        try:
            taken = await self._run(self._store.skip_slot, bean, slot_time, run_id, rerun)
        except LedgerUnavailableError as exc:
            log.warning(
                "cluster.slot_unanswered",
                job=bean,
                slot=slot_time.isoformat(),
                run_id=run_id,
                problem=exc.problem,
            )
            return
        if taken is not None:
            raise taken

    def _give_back(self, asking: asyncio.Future[tuple[Claim, Reaped | None]]) -> None:
        if asking.cancelled() or asking.exception() is not None:
            self._giving_back.discard(asking)
            return
        claim, _ = asking.result()
        log.info("cluster.claim_given_back", job=claim.bean, run_id=claim.run_id)
        releasing = asyncio.ensure_future(self._release(claim))
        self._giving_back.add(releasing)
        releasing.add_done_callback(self._giving_back.discard)
        self._giving_back.discard(asking)

    async def release(self, claim: Claim) -> None:
        # In turn with claims of the bean here: a claim right after this one's release sees it
        # released, not "already running" under a run that has ended.
        async with self._turns.setdefault(claim.bean, asyncio.Lock()):
            await self._release(claim)

    async def _release(self, claim: Claim) -> None:
        self._cancel_passed.discard(claim.run_id)
        if self._held.get(claim.bean) == claim:
            del self._held[claim.bean]
        self._renewed.pop(claim.run_id, None)
        if self._holders.get(claim.bean) == claim:
            del self._holders[claim.bean]
        try:
            await self._run(self._store.release, claim)
        except LedgerUnavailableError as exc:
            # The lease then expires on its own; the run's end is recorded already (or kept
            # by the recorder), so nobody records it interrupted.
            log.warning(
                "cluster.release_failed", job=claim.bean, run_id=claim.run_id, problem=exc.problem
            )
        self._wake_waiters()

    def release_all_blocking(self, timeout: float) -> tuple[int, int]:
        """Forced exit: give every claim this replica holds up at once, so another replica
        may run the jobs now rather than after their leases expire. Blocks the caller for at
        most `timeout` seconds, on a thread of its own (the claim's threads may be stuck on a
        lost server); returns how many were released and how many stayed held (their leases
        expire as after a crash)."""
        claims = list(self._held.values())
        if not claims:
            return 0, 0
        failed: list[BaseException] = []

        def release() -> None:
            try:
                self._store.release_all(claims)
            except Exception as exc:  # best effort: the leases then expire on their own
                failed.append(exc)

        worker = threading.Thread(target=release, name="syncd-cluster-release", daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive() or failed:
            problem = problem_of(failed[0]) if failed else f"no answer within {timeout:g}s"
            log.warning("cluster.release_failed", claims=len(claims), problem=problem)
            return 0, len(claims)
        for claim in claims:
            self._held.pop(claim.bean, None)
            self._renewed.pop(claim.run_id, None)
        return len(claims), 0

    def holder(self, bean: str) -> Claim | None:
        return self._held.get(bean) or self._holders.get(bean)

    def holders(self) -> dict[str, Claim]:
        return {**self._holders, **self._held}

    async def released(self, claim: Claim) -> None:
        while True:
            current = self.holder(claim.bean)
            if current is None or current.token != claim.token:
                return
            await self._beaten.wait()

    async def lookup(self, bean: str) -> Claim | None:
        found = await self._run(self._store.holder, bean)
        if found is not None and bean not in self._held:
            self._holders[bean] = found  # so that `released` can follow it
        return found

    def on_lost(self, callback: OnLost) -> None:
        self._lost.append(callback)

    def on_cancel(self, callback: OnCancel) -> None:
        self._cancels.append(callback)

    async def request_cancel(self, bean: str, actor: str) -> Claim | None:
        return await self._run(self._store.request_cancel, bean, actor)

    # --- the heartbeat -------------------------------------------------------------------------

    async def _heartbeat(self, on_reaped: OnReaped, on_beat: OnBeat) -> None:
        while not self._stop.is_set():
            sent = self._clock.monotonic()
            held = {c.run_id: c for c in self._held.values()}
            beat = asyncio.ensure_future(self._run(self._store.beat, list(held)))
            # While the beat is out (a lost server can hold it for seconds), give claims up
            # in time: the deadline is the oldest renewal plus give_up_after.
            while not beat.done():
                deadline = self._give_up_deadline()
                wait = None if deadline is None else max(0.0, deadline - self._clock.monotonic())
                await asyncio.wait({beat}, timeout=wait)
                if not beat.done():
                    self._give_up_overdue()
            expiry: float | None = None
            try:
                result = beat.result()
            except Exception as exc:  # any fault: retried at the next beat
                self._beat_failed(exc)
            else:
                await self._beat_done(result, held, sent, on_reaped, on_beat)
                expiry = result.next_expiry
            self._give_up_overdue()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._next_wait(sent, expiry)):
                    await self._stop.wait()

    def _next_wait(self, sent: float, expiry: float | None = None) -> float:
        wait = self.interval - (self._clock.monotonic() - sent)
        if expiry is not None:  # just after another replica's lease runs out
            wait = min(wait, expiry + EXPIRY_SLACK - (self._clock.monotonic() - sent))
        deadline = self._give_up_deadline()
        if deadline is not None:
            wait = min(wait, deadline - self._clock.monotonic())
        return max(0.0, wait)

    def _give_up_deadline(self) -> float | None:
        mine = [self._renewed[c.run_id] for c in self._held.values() if c.run_id in self._renewed]
        return min(mine) + self._give_up_after if mine else None

    def _give_up_overdue(self) -> None:
        now = self._clock.monotonic()
        for claim in list(self._held.values()):
            renewed = self._renewed.get(claim.run_id)
            if renewed is not None and now - renewed >= self._give_up_after:
                self._lose(claim, f"no renewal for {now - renewed:.1f}s")

    def _lose(self, claim: Claim, why: str) -> None:
        if self._held.get(claim.bean) != claim:
            return
        del self._held[claim.bean]
        self._renewed.pop(claim.run_id, None)
        log.error(
            "cluster.lease_lost",
            job=claim.bean,
            run_id=claim.run_id,
            token=claim.token,
            reason=why,
        )
        for callback in self._lost:
            callback(claim)

    def _beat_failed(self, exc: BaseException) -> None:
        problem = exc.problem if isinstance(exc, LedgerUnavailableError) else problem_of(exc)
        if problem != self.problem:
            log.error("cluster.heartbeat_failed", replica=self.replica, problem=problem)
        self.problem = problem

    async def _beat_done(
        self,
        beat: Beat,
        held: dict[str, Claim],
        sent: float,
        on_reaped: OnReaped,
        on_beat: OnBeat,
    ) -> None:
        if self.problem:
            log.info("cluster.heartbeat_recovered", replica=self.replica)
        self.problem = ""
        self.last_beat = self._clock.now()
        if not beat.member:
            log.error("cluster.membership_taken", replica=self.replica)
        for run_id, claim in held.items():
            if run_id in beat.renewed:
                if run_id in self._renewed:
                    self._renewed[run_id] = max(self._renewed[run_id], sent)
            else:
                self._lose(claim, "the lease was no longer this replica's")
        self._holders = {**beat.holders, **self._held}
        self._wake_waiters()
        for run_id, actor in beat.cancels.items():
            asked = held.get(run_id)
            if asked is not None and run_id not in self._cancel_passed:
                self._cancel_passed.add(run_id)
                log.info("cluster.cancel_requested", job=asked.bean, run_id=run_id, actor=actor)
                for callback in self._cancels:
                    callback(asked, actor)
        for reaped in beat.reaped:
            _log_reaped(reaped, by="heartbeat")
        try:
            if beat.reaped:
                await on_reaped(beat.reaped)
            await on_beat()
        except LedgerUnavailableError as exc:
            log.warning("cluster.beat_follow_up_failed", problem=exc.problem)
        except Exception:  # a bug there must not stop the renewals: the heartbeat goes on
            log.exception("cluster.beat_follow_up_failed")
        # Logged once this replica's view (claims, runs, holds) follows the change.
        for name in sorted(beat.live - self._members):
            log.info("cluster.replica_joined", replica=name, seen_by=self.replica)
        for name in sorted(self._members - beat.live):
            log.warning("cluster.replica_gone", replica=name, seen_by=self.replica)
        self._members = beat.live
        self.seen = beat.replicas

    def _wake_waiters(self) -> None:
        self._beaten.set()
        self._beaten = asyncio.Event()


def _log_reaped(reaped: Reaped, by: str) -> None:
    if reaped.marked:
        log.warning(
            "cluster.run_interrupted",
            job=reaped.bean,
            run_id=reaped.run_id,
            replica=reaped.replica,
            noticed_by=by,
        )
    else:
        log.info(
            "cluster.lease_expired",
            job=reaped.bean,
            run_id=reaped.run_id,
            replica=reaped.replica,
            noticed_by=by,
        )
