"""The cluster's statements against a fresh PostgreSQL database: claims and their fencing
tokens, leases on the database's clock, slots claimed once, takeovers recorded once, members.

A lease's expiry is simulated by moving `lease_until` into the past in the database (time
passing on the database's clock), never by sleeping.
"""

from __future__ import annotations

import asyncio
import select
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from syncd.clock import SystemClock
from syncd.cluster import ClusterLedger, ClusterRunClaim, ClusterStore
from syncd.enums import RunOutcome, RunState, Trigger
from syncd.errors import AlreadyRunningError, SlotClaimedError, StartupEnvironmentError
from syncd.ledger.model import RunRecord
from tests.harness import BOUND
from tests.pings import count_pings
from tests.services import fresh_postgres_database

pytestmark = pytest.mark.services

SLOT = datetime(2026, 12, 2, 0, 5, tzinfo=UTC)


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_postgres_database() as fresh:
        ClusterLedger(fresh).close()  # the ledger's and the cluster's tables
        yield fresh


@pytest.fixture
def versions(url: str) -> Iterator[ClusterLedger]:
    """The ledger whose repository versions the run records the stores write."""
    ledger = ClusterLedger(url)
    try:
        yield ledger
    finally:
        ledger.close()


def new_store(url: str, name: str, versions: ClusterLedger) -> ClusterStore:
    return ClusterStore(url, name, 30.0, versions.repository.stamp)


@pytest.fixture
def stores(url: str, versions: ClusterLedger) -> Iterator[dict[str, ClusterStore]]:
    made = {name: new_store(url, name, versions) for name in ("blue", "green")}
    try:
        yield made
    finally:
        for store in made.values():
            store.close()


def started(ledger: ClusterLedger, run_id: str, bean: str = "Job") -> None:
    ledger.record_start(
        RunRecord(
            run_id=run_id,
            bean=bean,
            operation="job",
            trigger=Trigger.MANUAL,
            actor="test",
            started_at=datetime.now(UTC),
        )
    )


def versions_of(url: str, run_id: str) -> tuple[tuple[int, str], tuple[int, str, int] | None]:
    """The run row's (hlc, origin) and its change-log entry's (hlc, origin, seq), if any."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT hlc, origin FROM syncd_runs WHERE run_id = :id"), {"id": run_id}
        ).one()
        logged = conn.execute(
            sa.text("SELECT hlc, origin, seq FROM syncd_changes WHERE type = 'run' AND id = :id"),
            {"id": run_id},
        ).first()
    engine.dispose()
    entry = None if logged is None else (int(logged.hlc), str(logged.origin), int(logged.seq))
    return (int(row.hlc), str(row.origin)), entry


def assert_interrupted_record_logged(url: str, run_id: str, start: tuple[int, str, int]) -> None:
    """The takeover wrote the interrupted record as a new version, with its change-log entry
    (which replication sends on) — after the start's."""
    (hlc, origin), logged = versions_of(url, run_id)
    assert logged is not None, f"{run_id}: no change-log entry"
    assert (logged[0], logged[1]) == (hlc, origin)
    assert hlc > start[0] and logged[2] > start[2]


def expire(url: str, bean: str) -> None:
    """Time passes on the database's clock: the bean's lease runs out."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE syncd_cluster_claims SET lease_until = clock_timestamp() - interval '1s'"
                " WHERE bean = :bean"
            ),
            {"bean": bean},
        )
    engine.dispose()


def test_tokens_grow_per_bean_whoever_claims(stores: dict[str, ClusterStore]) -> None:
    """Each grant raises the bean's token, on any replica; beans count apart."""
    blue, green = stores["blue"], stores["green"]
    tokens = []
    for n, store in enumerate([blue, green, blue, green]):
        claim, _ = store.acquire("Job", f"r{n}", None)
        tokens.append(claim.token)
        assert claim.fencing and claim.replica == store.replica
        store.release(claim)
    assert tokens == [1, 2, 3, 4]
    other, _ = green.acquire("Other", "o1", None)
    assert other.token == 1


def test_a_held_claim_refuses_naming_the_run_and_the_replica(
    stores: dict[str, ClusterStore],
) -> None:
    held, _ = stores["blue"].acquire("Job", "r1", None)
    with pytest.raises(AlreadyRunningError) as refused:
        stores["green"].acquire("Job", "r2", None)
    assert (refused.value.run_id, refused.value.replica) == ("r1", "blue")
    assert "on replica blue" in str(refused.value)
    stores["blue"].release(held)
    assert stores["green"].acquire("Job", "r2", None)[0].run_id == "r2"


def test_a_stale_release_does_not_free_a_newer_claim(stores: dict[str, ClusterStore]) -> None:
    blue, green = stores["blue"], stores["green"]
    old, _ = blue.acquire("Job", "r1", None)
    blue.release(old)
    newer, _ = green.acquire("Job", "r2", None)
    blue.release(old)
    with pytest.raises(AlreadyRunningError):
        blue.acquire("Job", "r3", None)
    green.release(newer)


def test_the_lease_is_set_on_the_database_clock(url: str, stores: dict[str, ClusterStore]) -> None:
    """lease_until is the database's grant time plus the TTL, whatever the replica's clock."""
    stores["blue"].acquire("Job", "r1", None)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        seconds = conn.execute(
            sa.text(
                "SELECT extract(epoch FROM lease_until - acquired_at) FROM syncd_cluster_claims"
            )
        ).scalar_one()
    engine.dispose()
    assert float(seconds) == pytest.approx(30.0, abs=0.01)


def test_an_expired_claim_is_taken_over_and_its_run_recorded_interrupted_once(
    url: str, stores: dict[str, ClusterStore]
) -> None:
    """Two replicas notice the expiry at once: one records the run interrupted; the next claim
    gets a larger token."""
    ledger = ClusterLedger(url)
    try:
        first, _ = stores["blue"].acquire("Job", "r1", None)
        started(ledger, "r1")
        start = versions_of(url, "r1")[1]
        assert start is not None
        expire(url, "Job")
        with ThreadPoolExecutor(2) as pool:
            beats = list(pool.map(lambda s: s.beat([]), stores.values()))
        reaped = [r for beat in beats for r in beat.reaped]
        assert [(r.run_id, r.replica, r.marked) for r in reaped] == [("r1", "blue", True)]
        record = ledger.get("r1")
        assert record is not None and record.outcome is RunOutcome.INTERRUPTED
        assert "replica blue" in record.error_message
        assert_interrupted_record_logged(url, "r1", start)
        assert stores["blue"].beat(["r1"]).renewed == frozenset()  # no reviving it
        later, _ = stores["green"].acquire("Job", "r2", None)
        assert later.token > first.token
    finally:
        ledger.close()


def test_a_claim_notices_an_expired_holder_itself(
    url: str, stores: dict[str, ClusterStore]
) -> None:
    ledger = ClusterLedger(url)
    try:
        stores["blue"].acquire("Job", "r1", None)
        started(ledger, "r1")
        start = versions_of(url, "r1")[1]
        assert start is not None
        expire(url, "Job")
        claim, reaped = stores["green"].acquire("Job", "r2", None)
        assert reaped is not None and reaped.marked and reaped.run_id == "r1"
        assert_interrupted_record_logged(url, "r1", start)
        assert claim.run_id == "r2"
    finally:
        ledger.close()


def test_a_slot_is_claimed_once_unless_its_run_was_interrupted(
    url: str, stores: dict[str, ClusterStore]
) -> None:
    blue, green = stores["blue"], stores["green"]
    ledger = ClusterLedger(url)
    try:
        claim, _ = blue.acquire("Job", "r1", SLOT)
        started(ledger, "r1")
        record = ledger.get("r1")
        assert record is not None
        ledger.record(
            replace(
                record,
                state=RunState.FINISHED,
                outcome=RunOutcome.SUCCESS,
                ended_at=datetime.now(UTC),
            )
        )
        blue.release(claim)
        with pytest.raises(SlotClaimedError) as taken:
            green.acquire("Job", "r2", SLOT)
        assert (taken.value.run_id, taken.value.replica) == ("r1", "blue")

        other = SLOT.replace(hour=1)
        blue.acquire("Job", "r3", other)
        started(ledger, "r3")
        expire(url, "Job")
        green.beat([])  # r3 recorded interrupted: its slot may run again
        again, _ = green.acquire("Job", "r4", other)
        assert again.run_id == "r4"
    finally:
        ledger.close()


def test_a_slot_fired_while_the_job_runs_is_answered_once(
    stores: dict[str, ClusterStore],
) -> None:
    """The first replica to fire it while a run is under way is told "already running" (and
    records it skipped); a replica firing it later is told the slot was answered."""
    stores["blue"].acquire("Job", "manual", None)
    with pytest.raises(AlreadyRunningError):
        stores["green"].acquire("Job", "s1", SLOT)
    with pytest.raises(SlotClaimedError):
        stores["blue"].acquire("Job", "s2", SLOT)


def test_a_skipped_slot_is_claimed_again_by_a_catch_up_rerun_only(
    url: str, stores: dict[str, ClusterStore]
) -> None:
    """Once the run under way has ended, a replica firing the skipped slot on its schedule is
    still refused; a start-up catch-up's rerun takes it, once (the next rerun is refused)."""
    blue, green = stores["blue"], stores["green"]
    manual, _ = blue.acquire("Job", "manual", None)
    with pytest.raises(AlreadyRunningError):
        green.acquire("Job", "s1", SLOT)
    blue.release(manual)
    with pytest.raises(SlotClaimedError) as late:
        blue.acquire("Job", "s2", SLOT)
    assert late.value.run_id == "skipped:manual"
    ledger = ClusterLedger(url)
    try:
        rerun, _ = green.acquire("Job", "c1", SLOT, rerun=True)
        started(ledger, "c1")
        green.release(rerun)
    finally:
        ledger.close()
    with pytest.raises(SlotClaimedError) as again:
        blue.acquire("Job", "c2", SLOT, rerun=True)
    assert (again.value.run_id, again.value.replica) == ("c1", "green")


def test_a_slot_fired_while_this_replica_runs_the_job_is_answered_for_the_others(
    stores: dict[str, ClusterStore],
) -> None:
    """The replica running the job refuses its own slot without asking for the claim, and
    still answers the slot skipped in the database: a replica firing it later (its clock
    behind) is refused, not run; a second firing here is told the slot was answered."""
    asyncio.run(_fired_while_running_here(stores))
    with pytest.raises(SlotClaimedError) as late:
        stores["green"].acquire("Job", "s2", SLOT)
    assert (late.value.run_id, late.value.replica) == ("skipped:manual", "blue")


async def _fired_while_running_here(stores: dict[str, ClusterStore]) -> None:
    claim = ClusterRunClaim(stores["blue"], SystemClock(), give_up_after=20.0)
    held = await claim.acquire("Job", "manual")
    with pytest.raises(AlreadyRunningError) as refused:
        await claim.acquire("Job", "s1", slot_time=SLOT)
    assert (refused.value.run_id, refused.value.replica) == ("manual", "blue")
    with pytest.raises(SlotClaimedError):
        await claim.acquire("Job", "s1-again", slot_time=SLOT)
    await claim.release(held)
    await claim.close()


def test_a_start_the_ledger_refused_frees_its_slot(stores: dict[str, ClusterStore]) -> None:
    claim, _ = stores["blue"].acquire("Job", "never-started", SLOT)
    stores["blue"].release(claim)  # no run row was written
    assert stores["green"].acquire("Job", "r2", SLOT)[0].run_id == "r2"


def test_a_name_in_use_by_a_live_replica_elsewhere_is_refused(
    url: str, versions: ClusterLedger
) -> None:
    first = new_store(url, "blue", versions)
    second = new_store(url, "blue", versions)
    try:
        first.join("host-a", 1)
        with pytest.raises(StartupEnvironmentError, match="replica blue is in use"):
            second.join("host-b", 2)
        first.leave()
        assert second.join("host-b", 2) == []
        assert [(r.name, r.state, r.host) for r in second.replicas()] == [
            ("blue", "live", "host-b")
        ]
    finally:
        first.close()
        second.close()


def test_a_restarted_replica_takes_back_what_its_dead_process_held(
    url: str, versions: ClusterLedger
) -> None:
    """Same name, same host, the old pid gone: its claims are freed at join and their runs
    recorded interrupted."""
    ledger = ClusterLedger(url)
    old = new_store(url, "blue", versions)
    new = new_store(url, "blue", versions)
    try:
        old.join("host-a", 2**22 + 7)  # no such process
        old.acquire("Job", "r1", None)
        started(ledger, "r1")
        start = versions_of(url, "r1")[1]
        assert start is not None
        reaped = new.join("host-a", 2**22 + 7)
        assert [(r.run_id, r.marked) for r in reaped] == [("r1", True)]
        assert_interrupted_record_logged(url, "r1", start)
    finally:
        ledger.close()
        old.close()
        new.close()


def test_start_up_interrupts_only_runs_no_live_lease_covers(
    url: str, stores: dict[str, ClusterStore]
) -> None:
    """A replica starting up records the dead runs interrupted, not the others' live ones."""
    ledger = ClusterLedger(url)
    try:
        stores["blue"].acquire("Live", "alive", None)
        started(ledger, "alive", bean="Live")
        started(ledger, "orphan", bean="Dead")  # its claim is gone
        done = ledger.mark_interrupted(datetime.now(UTC))
        assert [r.run_id for r in done] == ["orphan"]
        alive = ledger.get("alive")
        assert alive is not None and alive.state is RunState.RUNNING
    finally:
        ledger.close()


def test_a_cancel_asked_elsewhere_reaches_the_holder_at_its_next_beat(
    stores: dict[str, ClusterStore],
) -> None:
    """Green asks for blue's run to stop; blue's next beat carries who asked; a new claim
    starts without the request."""
    blue, green = stores["blue"], stores["green"]
    assert green.request_cancel("Job", "op") is None  # nothing runs
    held, _ = blue.acquire("Job", "r1", None)
    assert blue.request_cancel("Job", "op") is None  # its own run is cancelled directly
    asked = green.request_cancel("Job", "op@green")
    assert asked is not None and (asked.run_id, asked.replica) == ("r1", "blue")
    assert blue.beat(["r1"]).cancels == {"r1": "op@green"}
    blue.release(held)
    blue.acquire("Job", "r2", None)
    assert blue.beat(["r2"]).cancels == {}


def test_claims_on_a_live_connection_ask_the_server_nothing_more(
    stores: dict[str, ClusterStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No `SELECT 1` before each claim and release: the pooled connection is checked by
    looking at its socket."""
    blue = stores["blue"]
    blue.release(blue.acquire("Job", "r0", None)[0])
    pings = count_pings(blue._engine, monkeypatch)
    for n in range(1, 4):
        blue.release(blue.acquire("Job", f"r{n}", None)[0])
    assert pings == []


def test_a_claim_after_the_server_ended_the_stores_connection_succeeds(
    url: str, stores: dict[str, ClusterStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server ended the pooled connection (a restart, an administrator): it is replaced
    before the next claim uses it, so the claim does not fail."""
    blue = stores["blue"]
    blue.release(blue.acquire("Job", "r0", None)[0])  # one connection, now idle in the pool
    pooled = blue._engine.pool.connect()
    fd = pooled.dbapi_connection.fileno()  # type: ignore[union-attr]
    pooled.close()
    admin = sa.create_engine(url)
    try:
        with admin.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = 'syncd:blue'"
                )
            )
    finally:
        admin.dispose()
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    assert poller.poll(BOUND * 1000), "the server did not close the session"
    pings = count_pings(blue._engine, monkeypatch)

    claim, _ = blue.acquire("Job", "r1", None)

    assert claim.token == 2
    assert len(pings) == 1  # asked once, found gone, connected anew
