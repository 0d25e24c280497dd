"""Failover, clock skew, a replica cut off from the database, and replicas joining and
leaving — each with daemons as separate processes on a fresh PostgreSQL database.

What is asserted is order, read from the database's clock (never durations): a takeover starts
after the dead replica's lease expired; a replica that lost the database stopped its run before
another began; a late publish is refused by its fencing token.
"""

from __future__ import annotations

import signal
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime

import grpc
import psycopg
import pytest
import sqlalchemy as sa

from syncd_api.v1 import management_pb2 as pb
from tests.cluster.conftest import BOUND, SCRAPER, Cluster, libpq_url
from tests.cluster.proxy import cuttable_proxy
from tests.cluster.test_race import assert_one_run_at_a_time, play_rounds
from tests.packs.cluster import STUBBORN_GATE_KEY

pytestmark = [pytest.mark.e2e, pytest.mark.services]

TTL = "3s"  # short, so takeovers come quickly; these tests are about losing leases
# A scheduled job (catch-up reruns only those) whose slot today has not come yet, so start-up
# catch-up starts nothing and an interrupted run is rerun by the interrupted-run rule alone.
LATE = "23:59"


@pytest.fixture(autouse=True)
def _not_at_the_late_slot() -> None:
    now = datetime.now(UTC)
    if (now.hour, now.minute) >= (23, 58):
        pytest.skip("the minute of the LATE slot: catch-up would run it at start")


def claim_of(cluster: Cluster, run_id: str) -> tuple[datetime, datetime]:
    """(acquired_at, lease_until) of the claim a run holds."""
    rows = cluster.query(
        "SELECT acquired_at, lease_until FROM syncd_cluster_claims WHERE run_id = %s", run_id
    )
    assert rows, f"{run_id} holds no claim"
    acquired_at, lease_until = rows[0]
    return acquired_at, lease_until


def outcome_of(cluster: Cluster, run_id: str) -> tuple[str, str]:
    rows = cluster.query("SELECT outcome, error_message FROM syncd_runs WHERE run_id = %s", run_id)
    assert rows, f"{run_id} is not in the ledger"
    return rows[0]


@pytest.mark.timeout(120)
def test_after_sigkill_of_the_running_replica_another_takes_over_once_the_lease_expired(
    cluster: Cluster,
) -> None:
    """The dead replica's run is recorded interrupted by the survivor, whose catch-up reruns
    it; the rerun's claim is granted only after the dead one's lease ran out."""
    blue = cluster.start("blue", ttl=TTL, at=LATE, catch_up=True)
    green = cluster.start("green", ttl=TTL, at=LATE, catch_up=True)
    cluster.hold_gate()
    first = blue.invoke().run.run_id
    blue.wait_for_log("probe.at_gate", run_id=first)
    cluster.stop("blue", signal.SIGKILL)
    _, lease_until = claim_of(cluster, first)  # no renewal can come any more

    noticed = green.wait_for_log("cluster.run_interrupted", run_id=first)
    assert noticed["replica"] == "blue"
    rerun = green.wait_for_log("run.started", job="ProbeJob")["run_id"]
    acquired_at, _ = claim_of(cluster, rerun)
    assert acquired_at >= lease_until, "the job was taken over before the lease expired"
    began = cluster.query("SELECT began FROM cluster_probe WHERE run_id = %s", rerun)
    assert not began or began[0][0] >= lease_until

    cluster.release_gate()
    assert green.wait_finished(rerun).outcome == pb.RUN_OUTCOME_SUCCESS
    outcome, message = outcome_of(cluster, first)
    assert outcome == "interrupted" and "replica blue" in message
    tokens = dict(cluster.query("SELECT run_id, token FROM cluster_probe"))
    assert tokens[rerun] > tokens[first]


@pytest.mark.timeout(120)
def test_a_replica_cut_off_from_the_database_stops_its_run_and_its_late_publish_is_refused(
    cluster: Cluster,
) -> None:
    """Blue reaches PostgreSQL through a proxy the test cuts (and its server connections are
    terminated): blue gives its lease up and cancels its run before green may start the job;
    blue's job ignores the cancel and publishes late, and its fencing token refuses it."""
    url = sa.make_url(cluster.url)
    with cuttable_proxy((url.host or "127.0.0.1", url.port or 5432)) as proxy:
        via_proxy = url.set(port=proxy.port).render_as_string(hide_password=False)
        blue = cluster.start("blue", ttl=TTL, at=LATE, url=via_proxy, stubborn=True)
        green = cluster.start("green", ttl=TTL, at=LATE, catch_up=True)
        cluster.hold_gate()
        cluster.hold_gate(STUBBORN_GATE_KEY)
        with cluster.probe_endings() as ended:
            late = blue.invoke().run.run_id
            blue.wait_for_log("probe.at_gate", run_id=late)
            proxy.cut()
            with psycopg.connect(libpq_url(cluster.url), autocommit=True) as conn:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = 'syncd:blue'"
                )
            stopped = blue.wait_for_log("run.lease_lost", run_id=late)
            green.wait_for_log("cluster.run_interrupted", run_id=late)
            newer = green.wait_for_log("run.started", job="ProbeJob")
            assert stopped["timestamp"] < newer["timestamp"], "blue stopped only after green began"

            cluster.release_gate()
            assert green.wait_finished(newer["run_id"]).outcome == pb.RUN_OUTCOME_SUCCESS
            cluster.release_gate(STUBBORN_GATE_KEY)  # blue's abandoned body goes on, late
            ended(late)
        probes = {r[0]: r for r in cluster.probes()}
        token_late, token_newer = probes[late][1], probes[newer["run_id"]][1]
        assert token_late < token_newer
        assert probes[late][5] is False and probes[late][6] == token_newer  # refused
        assert probes[newer["run_id"]][5] is True
        assert cluster.query("SELECT token, run_id FROM cluster_fence") == [
            (token_newer, newer["run_id"])
        ]
        assert outcome_of(cluster, late)[0] == "interrupted"


@pytest.mark.timeout(180)
def test_replicas_joining_and_leaving_while_a_job_runs_never_run_it_twice(
    cluster: Cluster,
) -> None:
    """Green and grey join while blue runs the job; every replica names blue's run; blue
    leaves (its run cancelled and recorded, its claim released), and the job runs again."""
    blue = cluster.start("blue", ttl="10s")
    cluster.hold_gate()
    first = blue.invoke().run.run_id
    blue.wait_for_log("probe.at_gate", run_id=first)
    green = cluster.start("green", ttl="10s")
    grey = cluster.start("grey", ttl="10s")

    listed = green.stub.ListReplicas(pb.ListReplicasRequest(), timeout=BOUND)
    assert listed.cluster and listed.replica == "green"
    assert {r.name: r.state for r in listed.replicas} == {
        "blue": "live",
        "green": "live",
        "grey": "live",
    }
    blue_row = next(r for r in listed.replicas if r.name == "blue")
    assert [(r.bean, r.run_id) for r in blue_row.running] == [("ProbeJob", first)]
    with pytest.raises(grpc.RpcError) as refused:
        grey.invoke()
    assert f"{first} under way on replica blue" in (refused.value.details() or "")

    grey.wait_for_log("cluster.replica_joined", replica="blue")  # grey follows the claims
    status = grey.stub.GetStatus(pb.GetStatusRequest(), timeout=BOUND)
    probe = next(b for b in status.beans if b.ref.name == "ProbeJob")
    assert probe.state == pb.BEAN_STATE_RUNNING
    assert (probe.replica, probe.current_run.run_id) == ("blue", first)
    assert status.daemon.replica == "grey"
    started = grey.wait_for_log("daemon.started")
    scrape = urllib.request.Request(
        f"{started['http']}/metrics", headers={"Authorization": f"Bearer {SCRAPER}"}
    )
    with urllib.request.urlopen(scrape, timeout=BOUND) as answer:
        metrics = answer.read().decode()
    assert f'syncd_cluster_job_running{{job="ProbeJob",replica="blue",run_id="{first}"}} 1.0' in (
        metrics
    )
    for name in ("blue", "green", "grey"):
        assert f'syncd_cluster_replica_up{{replica="{name}",state="live"}} 1.0' in metrics
    assert 'syncd_job_running{job="ProbeJob"} 1.0' in metrics

    cluster.stop("blue")  # its run is cancelled within the shutdown grace, and recorded
    assert outcome_of(cluster, first)[0] == "cancelled"
    listed = grey.stub.ListReplicas(pb.ListReplicasRequest(), timeout=BOUND)
    assert {r.name: r.state for r in listed.replicas}["blue"] == "left"

    cluster.release_gate()
    second = green.invoke().run.run_id
    assert green.wait_finished(second).outcome == pb.RUN_OUTCOME_SUCCESS
    history = grey.stub.History(pb.HistoryRequest(bean="ProbeJob"), timeout=BOUND)
    assert {r.run_id: r.replica for r in history.runs} == {first: "blue", second: "green"}
    shown = grey.stub.GetRun(pb.GetRunRequest(run_id=first), timeout=BOUND)
    assert shown.replica == "blue"
    cluster.stop("grey")
    listed = green.stub.ListReplicas(pb.ListReplicasRequest(), timeout=BOUND)
    assert {r.name: r.state for r in listed.replicas} == {
        "blue": "left",
        "green": "live",
        "grey": "left",
    }
    assert cluster.overlapping_runs() == []


@pytest.mark.timeout(180)
def test_replicas_whose_clocks_are_two_minutes_apart_still_run_the_job_once_at_a_time(
    cluster: Cluster,
) -> None:
    """One replica's clock runs 2 minutes ahead, the other's 2 minutes behind (injected with
    SYNCD_CLOCK_OFFSET). Leases are granted and compared on the database's clock, so a lease
    never looks expired to the replica that is ahead: manual races still run once per round,
    and no scheduled slot runs twice."""
    pids = {
        cluster.start(name, ttl="15s", every="1s", clock_offset=offset).pid: offset
        for name, offset in (("ahead", 120.0), ("behind", -120.0))
    }
    play_rounds(cluster, ["ahead", "behind"], 40)
    assert_one_run_at_a_time(cluster)
    # The skew was real: each replica recorded its runs' starts on its own clock.
    skews = cluster.query(
        "SELECT p.pid, extract(epoch FROM r.started_at - p.began) FROM syncd_runs r"
        " JOIN cluster_probe p ON p.run_id = r.run_id"
    )
    assert {pid for pid, _ in skews} == set(pids)
    for pid, seconds in skews:
        assert (float(seconds) > 60) if pids[pid] > 0 else (float(seconds) < -60)


# Both clocks of the slot test run this many times faster than real time: the replica behind
# reaches a slot 240 s of clock time (4 real seconds) after the one ahead ran it.
RATE = 60.0


def offset_seen(cluster: Cluster, slot: datetime, logged: str) -> float:
    """The offset of a sped-up replica's clock, from a slot it fired when its log line was
    written (real time): its clock read `slot` then, and reads
    anchor + offset + RATE x (real - anchor)."""
    at = datetime.fromisoformat(logged.replace("Z", "+00:00"))
    since = (at - cluster.anchor).total_seconds()
    return (slot - cluster.anchor).total_seconds() - RATE * since


@pytest.mark.timeout(180)
def test_each_slot_runs_once_when_replica_clocks_are_skewed_by_two_minutes(
    cluster: Cluster,
) -> None:
    """Two clocks 240 s apart (one 2 min ahead, one 2 min behind), both running 60 times
    faster than real time from one anchor, and a slot each clock minute: the replica behind
    fires the very slots the one ahead ran, 240 s of its clock later; each is refused as
    claimed, and no slot runs twice."""
    ahead = cluster.start("ahead", ttl="15s", every="1m", clock_offset=120.0, clock_rate=RATE)
    behind = cluster.start("behind", ttl="15s", every="1m", clock_offset=-120.0, clock_rate=RATE)
    # A slot the one ahead skipped (its previous run, slower than a slot on a loaded machine,
    # was still under way) is refused too, naming `skipped:<run>`: wait for one it ran.
    refused = behind.wait_for_log(
        "scheduler.slot_claimed", replica="ahead", run_id=_a_run, timeout=60
    )
    ran = refused["run_id"]
    assert ahead.wait_for_log("run.finished", run_id=ran)["outcome"] == "success"
    slot = cluster.query("SELECT slot_time FROM syncd_runs WHERE run_id = %s", ran)[0][0]
    assert refused["slot"] == slot.isoformat()
    # Clock time, not real time, was 240 s apart: each replica fired the slot when its own
    # clock read it, the one behind four real seconds after the one ahead.
    started = ahead.wait_for_log("run.started", run_id=ran)
    assert 60 < offset_seen(cluster, slot, started["timestamp"]) < 180
    assert -180 < offset_seen(cluster, slot, refused["timestamp"]) < -60
    # And a later slot the same way; no slot ran twice (checked from the ledger).
    later = behind.wait_for_log(
        "scheduler.slot_claimed", replica="ahead", run_id=_a_run, slot=_after(slot)
    )
    assert later["run_id"] != ran
    assert_one_run_at_a_time(cluster)


@pytest.mark.timeout(120)
def test_a_pause_on_one_replica_holds_the_job_on_every_replica(cluster: Cluster) -> None:
    """Holds live in the cluster database; each replica follows them at its next heartbeat."""
    blue = cluster.start("blue", ttl=TTL, at=LATE)
    green = cluster.start("green", ttl=TTL, at=LATE)
    blue.stub.Pause(pb.PauseRequest(bean="ProbeJob"), timeout=BOUND)
    green.wait_for_log("bean.paused", job="ProbeJob", actor="another replica")
    status = green.stub.GetStatus(pb.GetStatusRequest(), timeout=BOUND)
    probe = next(b for b in status.beans if b.ref.name == "ProbeJob")
    assert probe.state == pb.BEAN_STATE_PAUSED and not probe.HasField("next_run_at")
    blue.stub.Resume(pb.PauseRequest(bean="ProbeJob"), timeout=BOUND)
    green.wait_for_log("bean.resumed", job="ProbeJob", actor="another replica")


@pytest.mark.timeout(120)
def test_a_cancel_asked_of_any_replica_stops_the_run_where_it_runs(cluster: Cluster) -> None:
    """Behind a load balancer a cancel may reach the replica that does not run the job: it
    asks the one that does (through the cluster database), which stops its run."""
    blue = cluster.start("blue", ttl=TTL)
    green = cluster.start("green", ttl=TTL)
    cluster.hold_gate()
    run_id = blue.invoke().run.run_id
    blue.wait_for_log("probe.at_gate", run_id=run_id)
    answer = green.stub.Cancel(pb.CancelRequest(bean="ProbeJob"), timeout=BOUND)
    assert answer.cancelling and (answer.run.run_id, answer.run.replica) == (run_id, "blue")
    blue.wait_for_log("run.cancel_forwarded", run_id=run_id)
    # Followed from green, which does not run it: its end once blue has let go.
    assert green.wait_finished(run_id).outcome == pb.RUN_OUTCOME_CANCELLED
    cluster.release_gate()
    nothing = green.stub.Cancel(pb.CancelRequest(bean="ProbeJob"), timeout=BOUND)
    assert not nothing.cancelling


def _a_run(run_id: object) -> bool:
    """A run's id, not the `skipped:<run>` a skipped slot's refusal names."""
    return isinstance(run_id, str) and not run_id.startswith("skipped:")


def _after(slot: datetime) -> Callable[[object], bool]:
    """A logged slot time later than `slot`."""
    return lambda text: isinstance(text, str) and datetime.fromisoformat(text) > slot
