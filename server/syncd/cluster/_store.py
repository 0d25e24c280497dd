"""The cluster's statements: blocking, run on the claim's threads, never on the event loop.

Each operation is one transaction. A claim locks its bean's row (`FOR UPDATE`), so claims of
one bean are serialised by PostgreSQL whichever replica asks; leases are compared with, and
set from, the database's `clock_timestamp()`, so replicas whose clocks disagree still agree on
who holds what. Faults leave as LedgerUnavailableError (the cluster database is the ledger's).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection, Engine

from syncd import __version__
from syncd.cluster._tables import (
    claims_table,
    replicas_table,
    runs_claimed_table,
    slots_table,
)
from syncd.cluster.model import Reaped, ReplicaInfo
from syncd.enums import RunOutcome, RunState
from syncd.errors import (
    AlreadyRunningError,
    LedgerUnavailableError,
    SlotClaimedError,
    StartupEnvironmentError,
)
from syncd.execution.claim import Claim
from syncd.ledger import check_on_checkout, problem_of
from syncd.ledger.sql import runs_table
from syncd.replication.model import RUN, Version

NOW = sa.func.clock_timestamp()
# A slot fired while its job was under way is answered, not run: its row names the run that
# was under way behind this prefix.
SKIPPED = "skipped:"
# A new version of a record, logged in the caller's transaction: the ledger repository's
# `stamp`, so a run record this store writes replicates like every other run-record write.
Stamp = Callable[[Connection, str, str], Version]
LOST_BY_LEASE = (
    "the replica running it stopped renewing its lease (it died, stalled or lost the"
    " database); another replica recorded it interrupted"
)


def _seconds(seconds: float) -> sa.ColumnElement[Any]:
    return sa.func.make_interval(0, 0, 0, 0, 0, 0, sa.literal(seconds, sa.Float))


def _lease(ttl: float) -> sa.ColumnElement[datetime]:
    return NOW + _seconds(ttl)


@dataclass(frozen=True, slots=True)
class Beat:
    """What one heartbeat learnt: the run ids it renewed, the live claims of the whole
    cluster, and the claims it reaped."""

    renewed: frozenset[str]
    holders: dict[str, Claim]
    reaped: list[Reaped]
    member: bool  # False: this replica's row was taken by another incarnation
    replicas: list[ReplicaInfo]
    # This replica's runs another replica was asked to cancel: run id -> who asked.
    cancels: dict[str, str] = field(default_factory=dict)
    # Seconds until the first other replica's lease runs out (database clock), if any: the
    # heartbeat looks again just then, so a dead replica's job is taken over without delay.
    next_expiry: float | None = None

    @property
    def live(self) -> frozenset[str]:
        """The replicas whose heartbeat is within a lease."""
        return frozenset(r.name for r in self.replicas if r.state == "live")


class ClusterStore:
    """The cluster database, as one replica sees it."""

    def __init__(self, url: str, replica: str, ttl: float, stamp: Stamp) -> None:
        self.replica = replica
        self.ttl = ttl
        self._stamp = stamp
        self.incarnation = os.urandom(8).hex()
        # A statement waits at most this long (a lost server, a held lock): long enough for a
        # loaded machine, short enough that a stuck thread comes back within a lease or so.
        # Giving claims up in time does not depend on it (the heartbeat has its own deadline).
        timeout_ms = max(5000, int(ttl * 1000 / 3))
        self._engine: Engine = sa.create_engine(
            url,
            pool_size=4,
            max_overflow=2,
            pool_timeout=max(5.0, ttl / 3),
            connect_args={
                "connect_timeout": max(2, round(ttl / 3)),
                "application_name": f"syncd:{replica}"[:63],
                "options": f"-c statement_timeout={timeout_ms} -c lock_timeout={timeout_ms}",
            },
        )
        # A connection the server ended is replaced before use, as the ledger's are: with no
        # `SELECT 1` round trip before every claim, release and heartbeat.
        check_on_checkout(self._engine)

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self._engine.begin() as conn:
                yield conn
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise LedgerUnavailableError(problem_of(exc)) from exc

    # --- membership ------------------------------------------------------------------------

    def join(self, host: str, pid: int) -> list[Reaped]:
        """Become a member; claims left by this replica's previous process are taken back
        (its runs recorded interrupted). Refuses a name a live daemon elsewhere uses."""
        with self._tx() as conn:
            row = conn.execute(
                sa.select(
                    replicas_table,
                    sa.func.extract("epoch", NOW - replicas_table.c.heartbeat_at).label("age"),
                )
                .where(replicas_table.c.name == self.replica)
                .with_for_update()
            ).first()
            live = row is not None and row.left_at is None and float(row.age) < self.ttl
            if row is not None and live and (row.host != host or _alive(row.pid)):
                raise StartupEnvironmentError(
                    "cluster.replica",
                    f"replica {self.replica} is in use by a live daemon (pid {row.pid} on"
                    f" {row.host}, heartbeat {float(row.age):.1f}s ago); give this daemon"
                    " another name",
                )
            values = {
                "incarnation": self.incarnation,
                "host": host[:255],
                "pid": pid,
                "version": __version__[:40],
                "started_at": NOW,
                "heartbeat_at": NOW,
                "left_at": None,
            }
            conn.execute(
                pg_insert(replicas_table)
                .values(name=self.replica, **values)
                .on_conflict_do_update(index_elements=["name"], set_=values)
            )
            held = conn.execute(
                sa.select(claims_table)
                .where(claims_table.c.replica == self.replica, claims_table.c.run_id.is_not(None))
                .with_for_update()
            ).all()
            return [self._take_back(conn, r.bean, r.run_id, r.replica, r.token) for r in held]

    def leave(self) -> None:
        with self._tx() as conn:
            conn.execute(
                replicas_table.update()
                .where(
                    replicas_table.c.name == self.replica,
                    replicas_table.c.incarnation == self.incarnation,
                )
                .values(left_at=NOW)
            )

    def replicas(self) -> list[ReplicaInfo]:
        with self._tx() as conn:
            return self._replicas(conn, self._live(conn))

    def _replicas(self, conn: Connection, live: dict[str, Claim]) -> list[ReplicaInfo]:
        rows = conn.execute(
            sa.select(
                replicas_table,
                sa.func.extract("epoch", NOW - replicas_table.c.heartbeat_at).label("age"),
            ).order_by(replicas_table.c.name)
        ).all()
        running: dict[str, list[tuple[str, str]]] = {}
        for claim in live.values():
            running.setdefault(claim.replica, []).append((claim.bean, claim.run_id))
        found = []
        for r in rows:
            age = float(r.age)
            state = "left" if r.left_at is not None else "live" if age < self.ttl else "lost"
            found.append(
                ReplicaInfo(
                    name=r.name,
                    host=r.host,
                    pid=r.pid,
                    version=r.version,
                    started_at=r.started_at,
                    heartbeat_at=r.heartbeat_at,
                    heartbeat_age=age,
                    left_at=r.left_at,
                    running=tuple(sorted(running.get(r.name, []))),
                    state=state,
                )
            )
        return found

    def replicas_of(self, run_ids: list[str]) -> dict[str, str]:
        """The replica that claimed each of these runs (runs of a single daemon: none)."""
        if not run_ids:
            return {}
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(runs_claimed_table.c.run_id, runs_claimed_table.c.replica).where(
                    runs_claimed_table.c.run_id.in_(run_ids)
                )
            )
            return {run_id: replica for run_id, replica in rows}

    # --- claims ----------------------------------------------------------------------------

    def acquire(
        self, bean: str, run_id: str, slot_time: datetime | None, rerun: bool = False
    ) -> tuple[Claim, Reaped | None]:
        """Claim `bean` (and its slot) for `run_id`; an expired holder is recorded interrupted
        on the way. Raises AlreadyRunningError or SlotClaimedError. A catch-up's `rerun` may
        take a slot that was only skipped (as a single daemon's catch-up reruns it)."""
        refusal: AlreadyRunningError | SlotClaimedError | None = None
        reaped = None
        token = 0
        with self._tx() as conn:
            conn.execute(
                pg_insert(claims_table)
                .values(bean=bean, token=0)
                .on_conflict_do_nothing(index_elements=["bean"])
            )
            row = conn.execute(
                sa.select(claims_table, (claims_table.c.lease_until > NOW).label("live"))
                .where(claims_table.c.bean == bean)
                .with_for_update()
            ).one()
            taken = None if slot_time is None else self._slot_taken(conn, bean, slot_time, rerun)
            if taken is not None:
                refusal = taken
            elif row.run_id is not None and row.live:
                refusal = AlreadyRunningError(bean, row.run_id, row.replica or "")
                if slot_time is not None:
                    # The slot is answered (skipped here): replicas that fire it later do not
                    # record it skipped again.
                    self._take_slot(conn, bean, slot_time, f"{SKIPPED}{row.run_id}"[:64])
            else:
                if row.run_id is not None:
                    reaped = self._take_back(conn, bean, row.run_id, row.replica, row.token)
                if slot_time is not None:
                    self._take_slot(conn, bean, slot_time, run_id)
                token = int(row.token) + 1
                claimed = {"bean": bean, "replica": self.replica, "token": token, "claimed_at": NOW}
                conn.execute(
                    pg_insert(runs_claimed_table)
                    .values(run_id=run_id, **claimed)
                    .on_conflict_do_update(index_elements=["run_id"], set_=claimed)
                )
                conn.execute(
                    claims_table.update()
                    .where(claims_table.c.bean == bean)
                    .values(
                        token=token,
                        run_id=run_id,
                        replica=self.replica,
                        acquired_at=NOW,
                        lease_until=_lease(self.ttl),
                        cancel_requested_by=None,
                    )
                )
        if refusal is not None:  # raised after the commit: a skipped slot stays answered
            raise refusal
        claim = Claim(bean=bean, run_id=run_id, token=token, replica=self.replica, fencing=True)
        return claim, reaped

    def skip_slot(
        self, bean: str, slot_time: datetime, run_id: str, rerun: bool = False
    ) -> SlotClaimedError | None:
        """This replica runs `bean` (`run_id`) as a slot of it fires: answer the slot skipped
        for the others, unless it was answered already (that answer is returned)."""
        with self._tx() as conn:
            taken = self._slot_taken(conn, bean, slot_time, rerun)
            if taken is None:
                self._take_slot(conn, bean, slot_time, f"{SKIPPED}{run_id}"[:64])
            return taken

    def _slot_taken(
        self, conn: Connection, bean: str, slot_time: datetime, rerun: bool
    ) -> SlotClaimedError | None:
        """Why the slot cannot be claimed, or None. A slot whose run was cut off
        (`interrupted`) may be claimed again: the catch-up rules decide whether it reruns.
        So may a skipped slot by a catch-up's rerun (the slot fired while the job was under
        way: a restart's catch-up runs it, as on a single daemon); a replica firing it late
        on its schedule is still refused."""
        taken = conn.execute(
            sa.select(slots_table.c.run_id, slots_table.c.replica, runs_table.c.outcome)
            .select_from(
                slots_table.outerjoin(runs_table, runs_table.c.run_id == slots_table.c.run_id)
            )
            .where(slots_table.c.bean == bean, slots_table.c.slot_time == slot_time)
            .with_for_update(of=slots_table)
        ).first()
        if taken is None or taken.outcome == RunOutcome.INTERRUPTED.value:
            return None
        if rerun and taken.run_id.startswith(SKIPPED):
            return None
        return SlotClaimedError(bean, slot_time.isoformat(), taken.run_id, taken.replica)

    def _take_slot(self, conn: Connection, bean: str, slot_time: datetime, run_id: str) -> None:
        values = {"run_id": run_id, "replica": self.replica, "claimed_at": NOW}
        conn.execute(
            pg_insert(slots_table)
            .values(bean=bean, slot_time=slot_time, **values)
            .on_conflict_do_update(index_elements=["bean", "slot_time"], set_=values)
        )

    def request_cancel(self, bean: str, actor: str) -> Claim | None:
        """Ask the other replica that runs `bean` to stop it; its claim, or None when no other
        replica runs it."""
        with self._tx() as conn:
            row = conn.execute(
                claims_table.update()
                .where(
                    claims_table.c.bean == bean,
                    claims_table.c.run_id.is_not(None),
                    claims_table.c.lease_until > NOW,
                    claims_table.c.replica != self.replica,
                )
                .values(cancel_requested_by=actor[:255])
                .returning(claims_table.c.run_id, claims_table.c.replica, claims_table.c.token)
            ).first()
        if row is None:
            return None
        return Claim(
            bean=bean, run_id=row.run_id, token=row.token, replica=row.replica, fencing=True
        )

    def release(self, claim: Claim) -> None:
        with self._tx() as conn:
            self._release(conn, claim)

    def release_all(self, claims: Iterable[Claim]) -> None:
        """Give up several claims in one transaction (a forced exit's last act)."""
        with self._tx() as conn:
            for claim in claims:
                self._release(conn, claim)

    def _release(self, conn: Connection, claim: Claim) -> None:
        conn.execute(
            claims_table.update()
            .where(claims_table.c.bean == claim.bean, claims_table.c.token == claim.token)
            .values(run_id=None, replica=None, lease_until=None, cancel_requested_by=None)
        )
        # A start the ledger refused left no run: its slot may be fired again.
        conn.execute(
            slots_table.delete().where(
                slots_table.c.run_id == claim.run_id,
                ~sa.exists().where(runs_table.c.run_id == claim.run_id),
            )
        )

    def beat(self, held: Iterable[str]) -> Beat:
        """Renew this replica's leases for the runs `held`, note its heartbeat, take back
        expired claims (recording their runs interrupted) and read the live claims."""
        held = list(held)
        with self._tx() as conn:
            member = conn.execute(
                replicas_table.update()
                .where(
                    replicas_table.c.name == self.replica,
                    replicas_table.c.incarnation == self.incarnation,
                )
                .values(heartbeat_at=NOW, left_at=None)
            ).rowcount
            renewed: frozenset[str] = frozenset()
            if held and member:
                renewed = frozenset(
                    r[0]
                    for r in conn.execute(
                        claims_table.update()
                        .where(
                            claims_table.c.replica == self.replica,
                            claims_table.c.run_id.in_(held),
                            claims_table.c.lease_until > NOW,  # an expired lease is not revived
                        )
                        .values(lease_until=_lease(self.ttl))
                        .returning(claims_table.c.run_id)
                    )
                )
            expired = conn.execute(
                sa.select(claims_table)
                .where(claims_table.c.run_id.is_not(None), claims_table.c.lease_until <= NOW)
                .with_for_update(skip_locked=True)
            ).all()
            reaped = [self._take_back(conn, r.bean, r.run_id, r.replica, r.token) for r in expired]
            holders = self._live(conn)
            replicas = self._replicas(conn, holders)
            cancels = (
                {
                    r.run_id: r.cancel_requested_by
                    for r in conn.execute(
                        sa.select(claims_table.c.run_id, claims_table.c.cancel_requested_by).where(
                            claims_table.c.replica == self.replica,
                            claims_table.c.run_id.in_(held),
                            claims_table.c.cancel_requested_by.is_not(None),
                        )
                    )
                }
                if held
                else {}
            )
            next_expiry = conn.execute(
                sa.select(
                    sa.func.min(sa.func.extract("epoch", claims_table.c.lease_until - NOW))
                ).where(
                    claims_table.c.run_id.is_not(None),
                    claims_table.c.lease_until > NOW,
                    claims_table.c.replica != self.replica,
                )
            ).scalar()
        return Beat(
            renewed=renewed,
            holders=holders,
            reaped=reaped,
            member=bool(member),
            replicas=replicas,
            next_expiry=None if next_expiry is None else float(next_expiry),
            cancels=cancels,
        )

    def holder(self, bean: str) -> Claim | None:
        """The live claim on `bean`, if any."""
        with self._tx() as conn:
            return self._live(conn, bean).get(bean)

    def _live(self, conn: Connection, bean: str | None = None) -> dict[str, Claim]:
        live = sa.select(claims_table).where(
            claims_table.c.run_id.is_not(None), claims_table.c.lease_until > NOW
        )
        rows = conn.execute(live if bean is None else live.where(claims_table.c.bean == bean))
        return {
            r.bean: Claim(
                bean=r.bean, run_id=r.run_id, token=r.token, replica=r.replica, fencing=True
            )
            for r in rows
        }

    def _take_back(
        self, conn: Connection, bean: str, run_id: str, replica: str, token: int
    ) -> Reaped:
        """Free a dead holder's claim; its run, if still open, is recorded interrupted — by
        whichever replica locks its open row first — as a new version of the record, logged
        in this transaction (so replication carries it)."""
        still_open = conn.execute(
            sa.select(runs_table.c.run_id)
            .where(runs_table.c.run_id == run_id, runs_table.c.state != RunState.FINISHED.value)
            .with_for_update()
        ).first()
        marked = still_open is not None
        if marked:
            version = self._stamp(conn, RUN, run_id)
            conn.execute(
                runs_table.update()
                .where(runs_table.c.run_id == run_id)
                .values(
                    state=RunState.FINISHED.value,
                    outcome=RunOutcome.INTERRUPTED.value,
                    ended_at=NOW,
                    error_type="Interrupted",
                    error_message=f"{LOST_BY_LEASE} (replica {replica})",
                    hlc=version.hlc,
                    origin=version.origin,
                )
            )
        conn.execute(
            claims_table.update()
            .where(claims_table.c.bean == bean, claims_table.c.token == token)
            .values(run_id=None, replica=None, lease_until=None, cancel_requested_by=None)
        )
        return Reaped(bean=bean, run_id=run_id, replica=replica, token=token, marked=marked)

    def close(self) -> None:
        self._engine.dispose()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, owned by someone else
    return True
