"""The one rule for failing / stuck / needs-re-run (syncd.execution.health), as a table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.enums import RunOutcome, RunState, Trigger
from syncd.execution.health import (
    REASON_LIMIT,
    Health,
    Verdict,
    blocks_dependants,
    judge,
    short_duration,
    stuck_threshold,
)
from syncd.ledger.model import RunRecord

T0 = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)


def ended(outcome: RunOutcome, error_type: str = "", message: str = "") -> RunRecord:
    return RunRecord(
        run_id="r-last",
        bean="Job",
        operation="run",
        trigger=Trigger.SCHEDULE,
        actor="scheduler",
        started_at=T0,
        ended_at=T0 + timedelta(minutes=3),
        state=RunState.FINISHED,
        outcome=outcome,
        error_type=error_type,
        error_message=message,
    )


def current(state: RunState = RunState.RUNNING) -> RunRecord:
    return RunRecord(
        run_id="r-now",
        bean="Job",
        operation="run",
        trigger=Trigger.MANUAL,
        actor="uid:1000",
        started_at=T0,
        state=state,
    )


FAILED = ended(RunOutcome.FAILED, "ValueError", "bad input row 7")
TIMED_OUT = ended(RunOutcome.TIMED_OUT, "TimedOut", "the run exceeded its timeout of 60s")
INTERRUPTED = ended(RunOutcome.INTERRUPTED, "Interrupted", "the daemon stopped")
CANCELLED = ended(RunOutcome.CANCELLED, "Cancelled", "cancelled by uid:1000")
SUCCESS = ended(RunOutcome.SUCCESS)
HOUR = timedelta(hours=1)
OK, FAILING, STUCK = Health.OK, Health.FAILING, Health.STUCK

# last executed run, run under way, its elapsed time, stuck threshold -> verdict
TABLE: list[tuple[str, RunRecord | None, RunRecord | None, timedelta | None, Verdict]] = [
    ("never run", None, None, None, Verdict(OK, "", False)),
    ("succeeded", SUCCESS, None, None, Verdict(OK, "", False)),
    (
        "failed",
        FAILED,
        None,
        None,
        Verdict(FAILING, "last run failed: ValueError: bad input row 7", True),
    ),
    (
        "timed out",
        TIMED_OUT,
        None,
        None,
        Verdict(FAILING, "last run timed_out: TimedOut: the run exceeded its timeout of 60s", True),
    ),
    (
        "interrupted",
        INTERRUPTED,
        None,
        None,
        Verdict(FAILING, "last run interrupted: Interrupted: the daemon stopped", True),
    ),
    # An operator's choice: not a failure, but what it writes is stale until a run succeeds.
    ("cancelled", CANCELLED, None, None, Verdict(OK, "", True)),
    ("running, no threshold", SUCCESS, current(), None, Verdict(OK, "", False)),
    ("running, under the threshold", SUCCESS, current(), HOUR, Verdict(OK, "", False)),
    (
        "running, over the threshold",
        SUCCESS,
        current(),
        timedelta(minutes=30),
        Verdict(STUCK, "run r-now has been running for 1h00m (over 30m00s)", False),
    ),
    (
        "cancelling",
        None,
        current(RunState.CANCELLING),
        None,
        Verdict(STUCK, "run r-now is cancelling", False),
    ),
    # A stuck run wins over an older failure; the failure still wants a re-run.
    (
        "cancelling after a failure",
        FAILED,
        current(RunState.CANCELLING),
        None,
        Verdict(STUCK, "run r-now is cancelling", True),
    ),
    # A re-run under way does not clear the failure until it succeeds.
    (
        "re-running after a failure",
        FAILED,
        current(),
        None,
        Verdict(FAILING, "last run failed: ValueError: bad input row 7", True),
    ),
    ("re-running after a cancel", CANCELLED, current(), HOUR * 2, Verdict(OK, "", True)),
]


@pytest.mark.parametrize(
    ("last", "now", "threshold", "verdict"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_the_rule(
    last: RunRecord | None, now: RunRecord | None, threshold: timedelta | None, verdict: Verdict
) -> None:
    elapsed = HOUR if now is not None else None
    assert judge(last, now, elapsed, threshold) == verdict


@pytest.mark.parametrize(
    ("asked", "timeout", "grace", "threshold"),
    [
        (timedelta(minutes=90), 60.0, 10.0, timedelta(minutes=90)),  # the operator's wins
        (None, 60.0, 10.0, timedelta(seconds=70)),  # by then the daemon ended it itself
        (None, 0.0, 10.0, None),  # no timeout: a run may take as long as it needs
    ],
)
def test_stuck_threshold(
    asked: timedelta | None, timeout: float, grace: float, threshold: timedelta | None
) -> None:
    assert stuck_threshold(asked, timeout, grace) == threshold


@pytest.mark.parametrize(
    ("last", "age", "blocks"),
    [
        (FAILED, HOUR, True),
        (CANCELLED, HOUR, True),  # the dependant would read what the cancel left stale
        (TIMED_OUT, HOUR * 23, True),
        (FAILED, HOUR * 25, False),  # a day later the operator has had time to act
        (SUCCESS, HOUR, False),
        (None, HOUR, False),
    ],
)
def test_a_prerequisite_blocks_its_dependants(
    last: RunRecord | None, age: timedelta, blocks: bool
) -> None:
    assert blocks_dependants(last, T0 + age) is blocks


def test_a_long_error_is_quoted_bounded_on_one_line() -> None:
    verdict = judge(ended(RunOutcome.FAILED, "E", "line\n" * 1000), None, None, None)
    assert "\n" not in verdict.reason
    assert len(verdict.reason) <= len("last run failed: ") + REASON_LIMIT
    assert verdict.reason.endswith("…")


@given(
    outcome=st.sampled_from(RunOutcome) | st.none(),
    state=st.sampled_from([RunState.RUNNING, RunState.CANCELLING]) | st.none(),
    elapsed_s=st.integers(0, 10**7),
    threshold_s=st.integers(1, 10**7) | st.none(),
)
def test_verdict_invariants(
    outcome: RunOutcome | None, state: RunState | None, elapsed_s: int, threshold_s: int | None
) -> None:
    """A reason iff not OK; needs-re-run depends on the last run alone; nothing running is
    never stuck."""
    last = ended(outcome) if outcome is not None else None
    now = current(state) if state is not None else None
    elapsed = timedelta(seconds=elapsed_s) if now is not None else None
    threshold = timedelta(seconds=threshold_s) if threshold_s is not None else None
    verdict = judge(last, now, elapsed, threshold)
    assert bool(verdict.reason) is (verdict.health is not Health.OK)
    assert verdict.needs_rerun == judge(last, None, None, None).needs_rerun
    if now is None:
        assert verdict.health is not Health.STUCK


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (42, "42s"), (90, "1m30s"), (3600, "1h00m"), (7500, "2h05m"), (90000, "1d01h")],
)
def test_short_duration(seconds: int, text: str) -> None:
    assert short_duration(timedelta(seconds=seconds)) == text
