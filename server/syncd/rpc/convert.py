"""Pure conversions between domain objects and syncd.v1 messages."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2

from syncd.beans.jobbeans import JobStatus
from syncd.beans.model import Bean, Operation
from syncd.cluster.model import ReplicaInfo
from syncd.enums import BeanState, Impact, RunOutcome, RunState, Trigger
from syncd.errors import InvalidArgumentError
from syncd.execution.health import Health
from syncd.ledger.audit import AuditEntry
from syncd.ledger.model import RunRecord
from syncd.values import Value, ValueType, check_text, parse_json
from syncd_api.v1 import management_pb2 as pb

MAX_STUCK_AFTER_S = 100 * 366 * 86400
VALUE_TYPES: dict[ValueType, pb.ValueType.ValueType] = {
    ValueType.VOID: pb.VALUE_TYPE_VOID,
    ValueType.BOOL: pb.VALUE_TYPE_BOOL,
    ValueType.INT: pb.VALUE_TYPE_INT,
    ValueType.FLOAT: pb.VALUE_TYPE_FLOAT,
    ValueType.STRING: pb.VALUE_TYPE_STRING,
    ValueType.TIMESTAMP: pb.VALUE_TYPE_TIMESTAMP,
    ValueType.JSON: pb.VALUE_TYPE_JSON,
    ValueType.RUN: pb.VALUE_TYPE_RUN,
}
IMPACTS: dict[Impact, pb.Impact.ValueType] = {
    Impact.INFO: pb.IMPACT_INFO,
    Impact.ACTION: pb.IMPACT_ACTION,
    Impact.ACTION_INFO: pb.IMPACT_ACTION_INFO,
}
BEAN_STATES: dict[BeanState, pb.BeanState.ValueType] = {
    BeanState.IDLE: pb.BEAN_STATE_IDLE,
    BeanState.RUNNING: pb.BEAN_STATE_RUNNING,
    BeanState.CANCELLING: pb.BEAN_STATE_CANCELLING,
    BeanState.PAUSED: pb.BEAN_STATE_PAUSED,
    BeanState.DISABLED: pb.BEAN_STATE_DISABLED,
}
RUN_STATES: dict[RunState, pb.RunState.ValueType] = {
    RunState.RUNNING: pb.RUN_STATE_RUNNING,
    RunState.CANCELLING: pb.RUN_STATE_CANCELLING,
    RunState.FINISHED: pb.RUN_STATE_FINISHED,
}
OUTCOMES: dict[RunOutcome, pb.RunOutcome.ValueType] = {
    RunOutcome.SUCCESS: pb.RUN_OUTCOME_SUCCESS,
    RunOutcome.FAILED: pb.RUN_OUTCOME_FAILED,
    RunOutcome.CANCELLED: pb.RUN_OUTCOME_CANCELLED,
    RunOutcome.TIMED_OUT: pb.RUN_OUTCOME_TIMED_OUT,
    RunOutcome.INTERRUPTED: pb.RUN_OUTCOME_INTERRUPTED,
    RunOutcome.SKIPPED_ALREADY_RUNNING: pb.RUN_OUTCOME_SKIPPED_ALREADY_RUNNING,
    RunOutcome.SKIPPED_PREREQUISITE_FAILED: pb.RUN_OUTCOME_SKIPPED_PREREQUISITE_FAILED,
    RunOutcome.MISSED: pb.RUN_OUTCOME_MISSED,
}
HEALTHS: dict[Health, pb.Health.ValueType] = {
    Health.OK: pb.HEALTH_OK,
    Health.FAILING: pb.HEALTH_FAILING,
    Health.STUCK: pb.HEALTH_STUCK,
}
TRIGGERS: dict[Trigger, pb.Trigger.ValueType] = {
    Trigger.MANUAL: pb.TRIGGER_MANUAL,
    Trigger.SCHEDULE: pb.TRIGGER_SCHEDULE,
    Trigger.STARTUP: pb.TRIGGER_STARTUP,
    Trigger.DEPENDENCY: pb.TRIGGER_DEPENDENCY,
    Trigger.CATCH_UP: pb.TRIGGER_CATCH_UP,
}

_INT64 = (-(2**63), 2**63 - 1)
# google.protobuf.Timestamp's own range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z.
_TIMESTAMP_SECONDS = (-62_135_596_800, 253_402_300_799)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    """The instant as a Timestamp (a naive datetime is taken as local time, as `astimezone`
    takes it). Computed from the difference to the epoch, not with `FromDatetime`'s calendar
    arithmetic: a status answer holds a few per bean, and this is a quarter of the cost."""
    if moment.tzinfo is None:
        moment = moment.astimezone(UTC)
    since = moment - _EPOCH
    return timestamp_pb2.Timestamp(
        seconds=since.days * 86400 + since.seconds, nanos=since.microseconds * 1000
    )


def from_timestamp(ts: timestamp_pb2.Timestamp) -> datetime:
    """The instant; ValueError when the message is no valid Timestamp (the wire allows any
    seconds and nanos, the type does not)."""
    if not _TIMESTAMP_SECONDS[0] <= ts.seconds <= _TIMESTAMP_SECONDS[1]:
        raise ValueError(
            f"timestamp seconds {ts.seconds} outside years 1-9999"
            f" ({_TIMESTAMP_SECONDS[0]} to {_TIMESTAMP_SECONDS[1]})"
        )
    if not 0 <= ts.nanos <= 999_999_999:
        raise ValueError(f"timestamp nanos {ts.nanos} outside 0 to 999999999")
    return ts.ToDatetime(tzinfo=UTC)


def value_to_proto(value: Value) -> pb.Value:
    if value is None:
        return pb.Value(null_value=struct_pb2.NULL_VALUE)
    if isinstance(value, bool):
        return pb.Value(bool_value=value)
    if isinstance(value, int) and _INT64[0] <= value <= _INT64[1]:
        return pb.Value(int_value=value)
    if isinstance(value, float) and math.isfinite(value):
        return pb.Value(float_value=value)
    if isinstance(value, str):
        return pb.Value(string_value=value)
    if isinstance(value, datetime):
        return pb.Value(timestamp_value=timestamp(value))
    return pb.Value(json_value=json.dumps(value, default=str, sort_keys=True))


def value_from_proto(message: pb.Value) -> Value:
    """The value a message carries; ValueError (short, bounded) for one no parameter can take."""
    kind = message.WhichOneof("kind")
    if kind is None or kind == "null_value":
        return None
    if kind == "bool_value":
        return message.bool_value
    if kind == "int_value":
        return message.int_value
    if kind == "float_value":
        return message.float_value
    if kind == "string_value":
        return check_text(message.string_value)
    if kind == "timestamp_value":
        return from_timestamp(message.timestamp_value)
    return parse_json(message.json_value)


def arguments_from_proto(
    operation: Operation, positional: Sequence[pb.Value], named: Mapping[str, pb.Value]
) -> tuple[list[Value], dict[str, Value]]:
    """An Invoke's arguments as values, or InvalidArgumentError naming the one that is bad."""
    params = operation.parameters
    values: list[Value] = []
    for index, message in enumerate(positional):
        name = params[index].name if index < len(params) else None
        try:
            values.append(value_from_proto(message))
        except ValueError as exc:
            where = "" if name else f"argument {index + 1}: "
            raise InvalidArgumentError(operation.name, f"{where}{exc}", name) from None
    by_name: dict[str, Value] = {}
    for key, message in named.items():
        try:
            by_name[key] = value_from_proto(message)
        except ValueError as exc:
            raise InvalidArgumentError(operation.name, str(exc), key) from None
    return values, by_name


def bean_ref(bean: Bean) -> pb.BeanRef:
    return pb.BeanRef(
        object_name=bean.object_name,
        name=bean.name,
        description=bean.description,
        aliases=bean.aliases,
    )


def operation_info(op: Operation) -> pb.OperationInfo:
    return pb.OperationInfo(
        name=op.name,
        description=op.description,
        return_type=VALUE_TYPES[op.returns],
        impact=IMPACTS[op.impact],
        alias_of=op.alias_of or "",
        parameters=[
            pb.ParameterInfo(
                name=p.name,
                type=VALUE_TYPES[p.type],
                description=p.description,
                required=p.required,
                default_value=value_to_proto(p.default) if p.default is not None else None,
            )
            for p in op.parameters
        ],
    )


def bean_info(bean: Bean) -> pb.BeanInfo:
    return pb.BeanInfo(
        ref=bean_ref(bean),
        operations=[operation_info(op) for op in bean.operations.values()],
        attributes=[
            pb.AttributeInfo(name=a.name, type=VALUE_TYPES[a.type], description=a.description)
            for a in bean.attributes.values()
        ],
    )


def run_info(record: RunRecord, elapsed: timedelta | None = None) -> pb.RunInfo:
    message = pb.RunInfo(
        run_id=record.run_id,
        bean=record.bean,
        operation=record.operation,
        arguments={k: value_to_proto(v) for k, v in record.arguments.items()},
        trigger=TRIGGERS[record.trigger],
        actor=record.actor,
        started_at=timestamp(record.started_at),
        state=RUN_STATES[record.state],
        outcome=OUTCOMES[record.outcome] if record.outcome else pb.RUN_OUTCOME_UNSPECIFIED,
        error_type=record.error_type,
        error_message=record.error_message,
        rows_read=record.rows_read,
        rows_written=record.rows_written,
        progress_done=record.progress_done,
        progress_total=record.progress_total,
    )
    if record.slot_time:
        message.slot_time.CopyFrom(timestamp(record.slot_time))
    if record.ended_at:
        message.ended_at.CopyFrom(timestamp(record.ended_at))
        elapsed = record.ended_at - record.started_at
    if elapsed is not None:
        message.elapsed.CopyFrom(duration(elapsed))
    return message


def duration(delta: timedelta) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromTimedelta(delta)
    return d


def bean_status(bean: Bean, status: JobStatus) -> pb.BeanStatus:
    message = pb.BeanStatus(
        ref=bean_ref(bean), state=BEAN_STATES[status.state], replica=status.replica
    )
    if status.current is not None:
        message.current_run.CopyFrom(run_info(status.current, status.elapsed))
    last = status.last_finished
    if last is not None:
        if last.outcome:
            message.last_outcome = OUTCOMES[last.outcome]
        if last.ended_at:
            message.last_finished_at.CopyFrom(timestamp(last.ended_at))
        if last.error_type:
            message.last_error = f"{last.error_type}: {last.error_message}"
    if status.last_success is not None and status.last_success.ended_at:
        message.last_success_at.CopyFrom(timestamp(status.last_success.ended_at))
    if status.next_run_at is not None:
        message.next_run_at.CopyFrom(timestamp(status.next_run_at))
    if status.disabled_reason:
        message.last_error = message.last_error or f"disabled: {status.disabled_reason}"
    message.health = HEALTHS[status.verdict.health]
    message.health_reason = status.verdict.reason
    message.needs_rerun = status.verdict.needs_rerun
    return message


def stuck_after(request: pb.GetStatusRequest) -> timedelta | None:
    """The request's stuck threshold; None (the jobs' own) when unset."""
    if not request.HasField("stuck_after"):
        return None
    given = request.stuck_after
    # Duration's seconds and nanos must agree in sign; one over a century is no threshold.
    if not 0 <= given.seconds <= MAX_STUCK_AFTER_S or not 0 <= given.nanos < 1_000_000_000:
        raise InvalidArgumentError("GetStatus", "stuck_after must be a positive duration")
    threshold = given.ToTimedelta()
    if threshold <= timedelta(0):
        raise InvalidArgumentError("GetStatus", "stuck_after must be a positive duration")
    return threshold


def audit_entry(entry: AuditEntry) -> pb.AuditEntry:
    return pb.AuditEntry(
        at=timestamp(entry.at),
        actor=entry.actor,
        role=entry.role,
        address=entry.address,
        action=entry.action,
        target=entry.target,
        outcome=entry.outcome,
        detail=entry.detail,
    )


def replica_info(replica: ReplicaInfo, answering: str) -> pb.ReplicaInfo:
    return pb.ReplicaInfo(
        name=replica.name,
        host=replica.host,
        pid=replica.pid,
        version=replica.version,
        started_at=timestamp(replica.started_at),
        heartbeat_at=timestamp(replica.heartbeat_at),
        heartbeat_age=duration(timedelta(seconds=max(0.0, replica.heartbeat_age))),
        state=replica.state,
        running=[pb.ReplicaRun(bean=bean, run_id=run_id) for bean, run_id in replica.running],
        answering=replica.name == answering,
    )
