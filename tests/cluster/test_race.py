"""Exactly one run per round: the same job asked for on every replica at once, while its
scheduled slot fires on each of them and, now and then, a replica restarts and does its
start-up catch-up. The proof is read from the database: the probe job notes, by PostgreSQL's
clock, when each run was under way."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
import pytest

from syncd_api.v1 import management_pb2 as pb
from tests.cluster.conftest import Cluster, Replica

pytestmark = [pytest.mark.e2e, pytest.mark.services]

ROUNDS = int(os.environ.get("SYNCD_CLUSTER_ROUNDS", "200"))
RESTART_EVERY = 50  # a replica restarts (with start-up catch-up) this often, mid-race
# Long enough that a loaded CI machine's stalls never cost a lease here: a replica that does
# lose one is the subject of the failover tests, where the fencing token is the guard.
TTL = "15s"


@dataclass(frozen=True)
class Answer:
    replica: str
    run_id: str  # the run started, or the one that refused us
    holder: str  # the replica that runs it
    started: bool


def ask(replica: Replica) -> Answer:
    """Invoke the probe job; the run it started, or the run (and replica) that refused it."""
    try:
        reply = replica.invoke()
    except grpc.RpcError as exc:
        refused = exc
    else:
        return Answer(replica.name, reply.run.run_id, replica.name, True)
    code, details = refused.code(), refused.details() or ""
    if code != grpc.StatusCode.FAILED_PRECONDITION or "Already running" not in details:
        raise AssertionError(f"{replica.name}: {code} {details}", replica.log_events())
    meta = {m.key: str(m.value) for m in refused.trailing_metadata() or ()}
    return Answer(replica.name, meta["syncd-run-id"], meta["syncd-replica"], False)


def play_rounds(cluster: Cluster, names: list[str], rounds: int) -> None:
    """Each round: hold the gate, ask every replica at once, release, follow the one run."""
    restarts = 0
    with ThreadPoolExecutor(len(names)) as pool:
        for n in range(rounds):
            if n and n % RESTART_EVERY == 0:
                # A replica restarts in the middle of the race; its start-up catch-up (the
                # window covers the whole day) competes for tonight's slot.
                name = names[restarts % len(names)]
                restarts += 1
                cluster.stop(name)
                cluster.start(name, ttl=TTL, every="1s", catch_up=True)
            replicas = [cluster.replicas[name] for name in names]
            held = cluster.hold_gate()
            answers = list(pool.map(ask, replicas))
            started = [a for a in answers if a.started]
            assert len(started) <= 1, f"round {n}: {answers}"
            holders = {(a.run_id, a.holder) for a in answers}
            assert len(holders) == 1, f"round {n}: two holders named at once: {answers}"
            run_id, holder = holders.pop()
            released = cluster.release_gate()
            try:
                final = cluster.replicas[holder].wait_finished(run_id)
            except grpc.RpcError as exc:
                raise AssertionError(
                    f"round {n}: {run_id} on {holder}: {exc.code()}",
                    cluster.replicas[holder].log_events(),
                ) from None
            assert final.state == pb.RUN_STATE_FINISHED, final
            under_way = cluster.query(
                "SELECT run_id FROM cluster_probe WHERE began < %s AND ended > %s",
                released,
                held,
            )
            # The round's one run executed, and no other run was under way during the round
            # (a scheduled run claimed just before may begin its body after the release).
            assert {r[0] for r in under_way} <= {run_id}, f"round {n}: {under_way}"
            ran = cluster.query("SELECT ended FROM cluster_probe WHERE run_id = %s", run_id)
            assert ran and ran[0][0] is not None, f"round {n}: {run_id} did not run"


def assert_one_run_at_a_time(cluster: Cluster) -> None:
    """Stop the replicas (a run the slot started after the last round ends or is cancelled
    and recorded), then check the probe's notes and the ledger."""
    for name in list(cluster.replicas):
        cluster.stop(name)
    assert cluster.overlapping_runs() == []
    probes = cluster.probes()
    tokens = [p[1] for p in probes]
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens), tokens
    outcomes = dict(
        cluster.query(
            "SELECT run_id, outcome FROM syncd_runs WHERE run_id = ANY(%s)", [p[0] for p in probes]
        )
    )
    # Every run that succeeded published; one that did not was stopped (a restart's drain).
    unexplained = [p for p in probes if p[5] != (outcomes.get(p[0]) == "success") or p[4] is None]
    assert unexplained == [], (unexplained, {p[0]: outcomes.get(p[0]) for p in unexplained})
    twice = cluster.query(
        "SELECT bean, slot_time, count(*) FROM syncd_runs"
        " WHERE slot_time IS NOT NULL AND outcome IN ('success', 'failed', 'cancelled',"
        " 'timed_out', 'interrupted') GROUP BY bean, slot_time HAVING count(*) > 1"
    )
    assert twice == [], f"slots that ran twice: {twice}"


@pytest.mark.timeout(600)
def test_three_replicas_asked_at_once_run_the_job_exactly_once_per_round(
    cluster: Cluster,
) -> None:
    """≥ 200 rounds on three replicas, the slot firing every second on each and replicas
    restarting with catch-up: one run per round, named to every loser with its replica."""
    names = ["blue", "green", "grey"]
    for name in names:
        cluster.start(name, ttl=TTL, every="1s")
    play_rounds(cluster, names, ROUNDS)
    assert_one_run_at_a_time(cluster)
    manual = cluster.query("SELECT count(*) FROM syncd_runs WHERE trigger = 'manual'")[0][0]
    scheduled = cluster.query(
        "SELECT count(*) FROM syncd_runs WHERE trigger <> 'manual' AND outcome = 'success'"
    )[0][0]
    assert manual + scheduled >= ROUNDS


@pytest.mark.timeout(300)
def test_two_replicas_asked_at_once_run_the_job_exactly_once_per_round(
    cluster: Cluster,
) -> None:
    """The same race between two replicas (blue/green)."""
    names = ["blue", "green"]
    for name in names:
        cluster.start(name, ttl=TTL, every="1s")
    play_rounds(cluster, names, ROUNDS)
    assert_one_run_at_a_time(cluster)
