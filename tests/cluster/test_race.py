"""Exactly one run per round: the same job asked for on every replica at once, while its
scheduled slot fires on each of them and a replica fresh from a restart does its start-up
catch-up inside the round (every round by default). The proof is read from the database: the
probe job notes, by PostgreSQL's clock, when each run was under way."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import grpc
import pytest

from syncd_api.v1 import management_pb2 as pb
from tests.cluster.conftest import Cluster, Replica

pytestmark = [pytest.mark.e2e, pytest.mark.services]

ROUNDS = int(os.environ.get("SYNCD_CLUSTER_ROUNDS", "200"))
# A replica restarts into its start-up catch-up in every RESTART_EVERY-th round: every round
# by default, as the race is specified; each restart costs most of a second of CPU (a daemon's
# start), so a quick local run may space them out (README, "Cluster mode").
RESTART_EVERY = int(os.environ.get("SYNCD_CLUSTER_RESTART_EVERY", "1"))
# Long enough that a loaded CI machine's stalls never cost a lease here (a replica that does
# lose one is the subject of the failover tests, where the fencing token is the guard); a
# third of it bounds how long a replica started ahead waits at its held join.
TTL = "30s"
# A restarted replica's clock runs this far ahead: its catch-up finds the slot about to fire
# on the others not yet done, so it competes for the job with that slot and the asks.
LEAD = 0.9


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


class Restarts:
    """One replica restarting in the race: each incarnation is started a restart ahead and
    held just before it joins; in its round the one it replaces stops, and it joins and does
    its start-up catch-up while the round plays. Two names alternate (the next incarnation
    starts while the current one serves)."""

    def __init__(self, cluster: Cluster, prefix: str, rounds: int) -> None:
        self._cluster = cluster
        self._names = [f"{prefix}a", f"{prefix}b"]
        self._rounds = rounds
        self.current: Replica | None = None  # the member, between its restarts
        self._held: tuple[Replica, Callable[[], None]] | None = None
        self.restarts = 0
        self.caught_up = 0  # restarts whose catch-up set out to run the job
        self._launch(0)

    def _launch(self, n: int) -> None:
        name = self._names[(n // RESTART_EVERY) % 2]
        self._held = self._cluster.start_held_at_join(
            name, ttl=TTL, every="1s", catch_up=True, clock_offset=LEAD
        )

    def due(self, n: int) -> bool:
        return n % RESTART_EVERY == 0

    def join(self) -> Replica:
        """The round's fresh incarnation, serving and held at its join (the one it replaces
        stopped); `admit` lets it in."""
        if self.current is not None:
            self._cluster.stop(self.current.name)
        assert self._held is not None
        fresh, self._admit = self._held
        fresh.wait_for_log("daemon.started")
        self.current = fresh
        return fresh

    def admit(self) -> None:
        self._admit()
        self.restarts += 1

    def joined(self, n: int) -> None:
        """After its round: note what its catch-up did; start the next incarnation ahead."""
        assert self.current is not None
        self.current.wait_for_log("scheduler.started")  # logged once its catch-up decided
        if "scheduler.catch_up" in [line.get("event") for line in self.current.process.lines]:
            self.caught_up += 1
        following = n + RESTART_EVERY
        if following < self._rounds:
            self._launch(following)


def the_rounds_run(
    cluster: Cluster, n: int, answers: list[Answer], held: datetime
) -> tuple[str, str]:
    """The one run of the round (and its replica), from the answers: at most one ask started
    a run, and every refusal named it — or a run that had already ended its body before the
    gate was held (it passed the gate just before, and its replica was still recording its
    end when those asks came; asks after that met the round's run)."""
    started = [a for a in answers if a.started]
    assert len(started) <= 1, f"round {n}: {answers}"
    named = {(a.run_id, a.holder) for a in answers}
    ended = dict(
        cluster.query(
            "SELECT run_id, ended <= %s FROM cluster_probe WHERE run_id = ANY(%s)",
            held,
            [run for run, _ in named],
        )
    )
    going = {(run, replica) for run, replica in named if not ended.get(run)}
    assert len(going) <= 1, f"round {n}: two holders named at once: {answers}"
    if started:
        assert going <= {(started[0].run_id, started[0].replica)}, f"round {n}: {answers}"
    return going.pop() if going else named.pop()


def play_rounds(
    cluster: Cluster, names: list[str], rounds: int, restarts: Restarts | None = None
) -> None:
    """Each round: hold the gate (and, in a restart's round, let the fresh replica join: its
    catch-up starts), ask every replica at once, release, follow the one run."""
    with ThreadPoolExecutor(len(names) + 1) as pool:
        for n in range(rounds):
            restarting = restarts is not None and restarts.due(n)
            if restarts is not None and restarting:
                restarts.join()
            replicas = [cluster.replicas[name] for name in names]
            if restarts is not None and restarts.current is not None:
                replicas.append(restarts.current)
            held = cluster.hold_gate()
            if restarts is not None and restarting:
                restarts.admit()  # its join and catch-up now race the asks and the slot
            answers = list(pool.map(ask, replicas))
            run_id, holder = the_rounds_run(cluster, n, answers, held)
            released = cluster.release_gate()
            assert holder in cluster.replicas, f"round {n}: held by a stopped replica: {answers}"
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
            if restarts is not None and restarting:
                restarts.joined(n)


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


@pytest.mark.timeout(900)
def test_three_replicas_asked_at_once_run_the_job_exactly_once_per_round(
    cluster: Cluster,
) -> None:
    """≥ 200 rounds on three replicas, the slot firing every second on each, the third
    replica restarting (RESTART_EVERY) and doing its start-up catch-up inside the round: one
    run per round, named to every loser with its replica."""
    stable = ["blue", "green"]
    for name in stable:
        cluster.start(name, ttl=TTL, every="1s")
    restarts = Restarts(cluster, "grey-", ROUNDS)
    play_rounds(cluster, stable, ROUNDS, restarts)
    assert_one_run_at_a_time(cluster)
    manual = cluster.query("SELECT count(*) FROM syncd_runs WHERE trigger = 'manual'")[0][0]
    scheduled = cluster.query(
        "SELECT count(*) FROM syncd_runs WHERE trigger <> 'manual' AND outcome = 'success'"
    )[0][0]
    assert manual + scheduled >= ROUNDS
    # The catch-ups did compete: at least half found the slot the others were about to fire undone.
    assert restarts.caught_up >= restarts.restarts // 2, (restarts.caught_up, restarts.restarts)


@pytest.mark.timeout(900)
def test_two_replicas_asked_at_once_run_the_job_exactly_once_per_round(
    cluster: Cluster,
) -> None:
    """The same race between two replicas (blue/green), green restarting into its catch-up."""
    cluster.start("blue", ttl=TTL, every="1s")
    restarts = Restarts(cluster, "green-", ROUNDS)
    play_rounds(cluster, ["blue"], ROUNDS, restarts)
    assert_one_run_at_a_time(cluster)
    assert restarts.caught_up >= restarts.restarts // 2, (restarts.caught_up, restarts.restarts)
