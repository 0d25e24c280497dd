"""Cluster mode's refusals at the edges: the HTTP error table and the gRPC trailers."""

from __future__ import annotations

import json

from syncd.errors import AlreadyRunningError, SlotClaimedError
from syncd.web._errors import domain_error


def test_already_running_on_another_replica_names_it() -> None:
    """409 with the holder's run id and, in cluster mode, its replica."""
    answer = domain_error(AlreadyRunningError("PersonOwnerRebuildJob", "r1", "green"))
    assert answer is not None and answer.status == 409
    assert json.loads(answer.text or "") == {
        "error": "Already running",
        "runId": "r1",
        "replica": "green",
    }


def test_a_claimed_slot_is_a_conflict() -> None:
    answer = domain_error(SlotClaimedError("Job", "2026-12-02T00:05:00+00:00", "r1", "blue"))
    assert answer is not None and answer.status == 409
    assert "claimed by run r1 on replica blue" in json.loads(answer.text or "")["error"]


def test_the_grpc_refusal_carries_the_run_and_the_replica_as_trailers() -> None:
    """FAILED_PRECONDITION with syncd-run-id and syncd-replica; a single daemon's has no
    replica trailer."""
    import grpc

    from syncd.rpc.errors import REPLICA_KEY, RUN_ID_KEY, status_code, trailing_metadata

    refusal = AlreadyRunningError("Job", "r1", "green")
    assert status_code(refusal) == grpc.StatusCode.FAILED_PRECONDITION
    assert dict(trailing_metadata(refusal)) == {RUN_ID_KEY: "r1", REPLICA_KEY: "green"}
    assert dict(trailing_metadata(AlreadyRunningError("Job", "r1"))) == {RUN_ID_KEY: "r1"}
