"""A replica stopped by a second signal mid-run (the forced exit), with daemons as separate
processes: it records its runs as a forced exit does and gives its claims up before it goes,
so another replica can run the job at once — not only once the lease has run out."""

from __future__ import annotations

import signal

import pytest

from syncd_api.v1 import management_pb2 as pb
from tests.cluster.conftest import BOUND, Cluster

pytestmark = [pytest.mark.e2e, pytest.mark.services]

TTL = "60s"  # far longer than the test: a claim granted before it ran out proves the release


@pytest.mark.timeout(120)
@pytest.mark.parametrize("execution", ["thread", "process"])
def test_a_second_sigterm_mid_run_releases_the_claim_so_another_replica_claims_at_once(
    cluster: Cluster, execution: str
) -> None:
    """Blue runs the job; a first SIGTERM starts its drain (a long shutdown grace), a second
    forces the exit: the run is recorded cancelled (ForcedExit), the claim is free, and green
    runs the job long before blue's lease would have expired."""
    blue = cluster.start("blue", ttl=TTL, shutdown_grace="60s", execution=execution)
    green = cluster.start("green", ttl=TTL)
    cluster.hold_gate()
    first = blue.invoke().run.run_id
    blue.wait_for_log("probe.at_gate", run_id=first)
    leased = cluster.query("SELECT lease_until FROM syncd_cluster_claims WHERE run_id = %s", first)[
        0
    ][0]

    blue.process.proc.send_signal(signal.SIGTERM)
    blue.wait_for_log("daemon.draining")
    blue.process.proc.send_signal(signal.SIGTERM)
    assert blue.process.proc.wait(BOUND) == 128 + signal.SIGTERM
    forced = blue.wait_for_log("daemon.forced_exit")
    assert forced["claims_released"] == 1 and forced.get("claims_kept") is None, forced

    outcome = cluster.query("SELECT outcome, error_type FROM syncd_runs WHERE run_id = %s", first)
    assert outcome == [("cancelled", "ForcedExit")]
    assert cluster.query("SELECT run_id FROM syncd_cluster_claims") == [(None,)]
    second = green.invoke().run.run_id  # no "already running": the claim was given up
    acquired = cluster.query(
        "SELECT acquired_at FROM syncd_cluster_claims WHERE run_id = %s", second
    )[0][0]
    assert acquired < leased, "green's claim came only after blue's lease would have expired"
    cluster.release_gate()
    assert green.wait_finished(second).outcome == pb.RUN_OUTCOME_SUCCESS
    # Blue's run went with its process (killed at the forced exit): it never passed the gate.
    passed = cluster.query("SELECT passed_gate FROM cluster_probe WHERE run_id = %s", first)
    assert passed == [(None,)]
