"""Conversions between domain values and syncd.v1 messages (timestamps against protobuf's own),
and GetStatus's bean messages kept between calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from google.protobuf import timestamp_pb2
from hypothesis import given
from hypothesis import strategies as st

from syncd.beans.jobbeans import JobStatus
from syncd.beans.model import Bean
from syncd.enums import BeanState, RunOutcome, RunState, Trigger
from syncd.execution.health import judge
from syncd.ledger.model import RunRecord
from syncd.rpc import convert
from syncd.rpc._status import StatusMessages
from syncd_api.v1 import management_pb2 as pb

# Offsets a datetime can carry (under a day either way, to the minute).
_ZONES = st.builds(
    lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(-24 * 60 + 1, 24 * 60 - 1)
)
# Instants a Timestamp can hold, a day in from each end so any offset stays in range.
_INSTANTS = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30))


def _reference(moment: datetime) -> timestamp_pb2.Timestamp:
    expected = timestamp_pb2.Timestamp()
    expected.FromDatetime(moment.astimezone(UTC))
    return expected


@given(_INSTANTS, _ZONES)
def test_a_timestamp_is_the_instant_protobuf_makes_of_it_in_any_zone(
    local: datetime, zone: timezone
) -> None:
    moment = local.replace(tzinfo=zone)
    made = convert.timestamp(moment)
    assert made == _reference(moment)
    assert convert.from_timestamp(made) == moment


@given(st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2200, 1, 1)))
def test_a_naive_datetime_is_taken_as_local_time_as_before(moment: datetime) -> None:
    assert convert.timestamp(moment) == _reference(moment)


def test_instants_before_the_epoch_keep_their_nanos_positive() -> None:
    made = convert.timestamp(datetime(1969, 12, 31, 23, 59, 59, 250_000, tzinfo=UTC))
    assert (made.seconds, made.nanos) == (-1, 250_000_000)


T0 = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)


def _run(run_id: str, outcome: RunOutcome | None) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        bean="Job",
        operation="run",
        trigger=Trigger.MANUAL,
        actor="uid 1000",
        started_at=T0,
        ended_at=T0 + timedelta(minutes=3) if outcome else None,
        state=RunState.FINISHED if outcome else RunState.RUNNING,
        outcome=outcome,
    )


def _status(last: RunRecord | None, current: RunRecord | None = None) -> JobStatus:
    elapsed = timedelta(seconds=5) if current else None
    return JobStatus(
        name="Job",
        state=BeanState.RUNNING if current else BeanState.IDLE,
        current=current,
        elapsed=elapsed,
        last_finished=last,
        last_success=None,
        next_run_at=T0 + timedelta(days=1),
        disabled_reason=None,
        verdict=judge(last, current, elapsed, None),
    )


def test_an_idle_beans_message_is_given_again_while_its_status_is_unchanged() -> None:
    bean = Bean(name="Job", description="A job.")
    messages = StatusMessages()
    failed = _run("r-1", RunOutcome.FAILED)
    (first,) = messages.of([(bean, _status(failed))])
    (again,) = messages.of([(bean, _status(failed))])  # equal, not the same objects
    assert again is first
    assert again.last_outcome == pb.RUN_OUTCOME_FAILED


def test_a_changed_status_a_running_bean_and_a_rebuilt_bean_get_a_fresh_message() -> None:
    bean = Bean(name="Job", description="A job.")
    messages = StatusMessages()
    (failed,) = messages.of([(bean, _status(_run("r-1", RunOutcome.FAILED)))])
    (succeeded,) = messages.of([(bean, _status(_run("r-2", RunOutcome.SUCCESS)))])
    assert succeeded.last_outcome == pb.RUN_OUTCOME_SUCCESS
    assert succeeded.health == pb.HEALTH_OK and failed.health == pb.HEALTH_FAILING
    running = _status(_run("r-2", RunOutcome.SUCCESS), current=_run("r-3", None))
    (first,) = messages.of([(bean, running)])
    (second,) = messages.of([(bean, running)])
    assert first is not second and second.current_run.run_id == "r-3"
    idle = _status(_run("r-3", RunOutcome.SUCCESS))
    (before,) = messages.of([(bean, idle)])
    reloaded = Bean(name="Job", description="A job, described anew.")
    (after,) = messages.of([(reloaded, idle)])
    assert after is not before and after.ref.description == "A job, described anew."


def test_a_bean_that_is_gone_is_not_kept() -> None:
    one, two = Bean(name="One", description=""), Bean(name="Two", description="")
    messages = StatusMessages()
    (kept_one, _) = messages.of([(one, _status(None)), (two, _status(None))])
    messages.of([(two, _status(None))])
    (built_again,) = messages.of([(one, _status(None))])
    assert built_again is not kept_one and built_again == kept_one
