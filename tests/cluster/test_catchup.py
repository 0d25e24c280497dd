"""Start-up catch-up in a cluster, with daemons as separate processes: a slot that fired while
the job was under way on another replica (recorded skipped) runs when a replica restarts into
catch-up, as it does on a single daemon — once, whoever restarts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from syncd_api.v1 import management_pb2 as pb
from tests.cluster.conftest import Cluster

pytestmark = [pytest.mark.e2e, pytest.mark.services]

SLOT = "12:00"
# How long before the slot (real seconds) the replicas' clocks read when the slot's replica
# is launched: time for it to start and be firing by then.
LEAD = 10.0


def clock_offset_before_noon(lead: float) -> tuple[float, datetime]:
    """An offset that makes a replica's clock read `lead` seconds before today's noon now,
    and that noon (the slot)."""
    real = datetime.now(UTC)
    noon = real.replace(hour=12, minute=0, second=0, microsecond=0)
    return (noon - timedelta(seconds=lead) - real).total_seconds(), noon


@pytest.mark.timeout(120)
def test_a_slot_skipped_because_the_job_ran_on_another_replica_runs_at_a_restarts_catch_up(
    cluster: Cluster,
) -> None:
    """Blue runs the job by hand when green's slot fires: green records the slot skipped.
    Blue's run ends; green restarts, and its start-up catch-up runs the skipped slot (the run
    under way had started before the slot, so the slot is not done)."""
    offset, noon = clock_offset_before_noon(LEAD)
    blue = cluster.start("blue", ttl="15s", clock_offset=offset, catch_up=True)
    cluster.hold_gate()
    manual = blue.invoke().run.run_id
    blue.wait_for_log("probe.at_gate", run_id=manual)
    green = cluster.start("green", ttl="15s", at=SLOT, clock_offset=offset, catch_up=True)
    planned = green.wait_for_log("scheduler.started")["jobs"]
    assert planned == {"ProbeJob": noon.isoformat()}, "green started after the slot (too slow)"
    skipped = green.wait_for_log("run.skipped_already_running", job="ProbeJob")
    assert skipped["slot"] == noon.isoformat() and manual in skipped["reason"]
    cluster.release_gate()
    assert blue.wait_finished(manual).outcome == pb.RUN_OUTCOME_SUCCESS

    cluster.stop("green")
    green = cluster.start("green", ttl="15s", at=SLOT, clock_offset=offset, catch_up=True)
    rerun = green.wait_for_log("run.started", job="ProbeJob", trigger="startup")["run_id"]
    assert green.wait_finished(rerun).outcome == pb.RUN_OUTCOME_SUCCESS
    assert cluster.query("SELECT slot_time FROM syncd_runs WHERE run_id = %s", rerun) == [(noon,)]
    # Once: blue restarting into catch-up now finds the slot done.
    cluster.stop("blue")
    blue = cluster.start("blue", ttl="15s", at=SLOT, clock_offset=offset, catch_up=True)
    blue.wait_for_log("scheduler.started")  # after its catch-up decided
    assert "scheduler.catch_up" not in [line.get("event") for line in blue.process.lines]
    answered = cluster.query(
        "SELECT trigger, outcome FROM syncd_runs WHERE slot_time = %s ORDER BY started_at", noon
    )
    assert answered == [("schedule", "skipped_already_running"), ("startup", "success")]
    assert cluster.overlapping_runs() == []
