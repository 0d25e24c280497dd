"""Bad input over gRPC: every refusal is INVALID_ARGUMENT, NOT_FOUND or FAILED_PRECONDITION with
a bounded message and ASCII-safe, bounded trailers, and a refused call starts no run.

The cases the hardening issue reported come first, one test each; then Hypothesis drives Invoke
and every other RPC that takes input with arbitrary names, values, types, counts, timestamps and
JSON, against a real daemon over its unix socket.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote

import grpc
import pytest
from google.protobuf import timestamp_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.app.daemon import Daemon
from syncd.beans.model import Parameter
from syncd.job import JobSpec, RunContext
from syncd.values import Value, ValueType
from syncd_api.v1 import management_pb2 as pb
from syncd_api.v1 import management_pb2_grpc as pb_grpc
from syncd_api.v1 import replication_pb2 as rpb
from syncd_api.v1 import replication_pb2_grpc as rpb_grpc
from tests.background import daemon_in_thread
from tests.services import fresh_postgres_database

CALL_TIMEOUT = 10.0
# A refusal's message quotes at most ~200 characters of input; with its own words, well under this.
DETAILS_MAX = 1000
TRAILER_MAX = 200 * 3  # 200 characters, each at most three bytes percent-encoded ("%C3")…
REFUSALS = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
}


def _day(value: Value) -> Value:
    """A validator that echoes its input, as job packs' validators do."""
    text = str(value)
    try:
        date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)") from None
    return text


def _typed_body(ctx: RunContext) -> None:
    """Finishes at once whatever its arguments (a huge `rows` must not make a long run)."""
    ctx.report_progress(1, 1)


TYPED = JobSpec(
    name="TypedJob",
    trigger_operation="typedJob",
    body=_typed_body,
    description="Takes one parameter of every type.",
    parameters=(
        Parameter(name="flag", type=ValueType.BOOL),
        Parameter(name="rows", type=ValueType.INT),
        Parameter(name="ratio", type=ValueType.FLOAT),
        Parameter(name="label", type=ValueType.STRING),
        Parameter(name="since", type=ValueType.TIMESTAMP),
        Parameter(name="filter", type=ValueType.JSON),
        Parameter(name="day", type=ValueType.STRING, validate=_day),
    ),
)
PARAMS = [p.name for p in TYPED.parameters]


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="sd-"))
    try:
        with daemon_in_thread(root / "state", [TYPED]) as running:
            yield running
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def stub(daemon: Daemon) -> Iterator[pb_grpc.ManagementStub]:
    with grpc.insecure_channel(daemon.listening.addresses[0]) as channel:
        yield pb_grpc.ManagementStub(channel)


@dataclass(frozen=True)
class Refusal:
    code: grpc.StatusCode
    details: str
    trailers: dict[str, str | bytes]


def refusal_of(error: grpc.RpcError) -> Refusal:
    call = cast(Any, error)  # a failed call's RpcError is also its grpc.Call
    return Refusal(call.code(), call.details() or "", dict(call.trailing_metadata() or ()))


def _refusal(call: Any, request: Any) -> Refusal:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=CALL_TIMEOUT)
    return refusal_of(info.value)


def assert_clean_refusal(error: Refusal) -> None:
    """A refusal the caller can act on: a proper code, a bounded message, sendable trailers."""
    assert error.code in REFUSALS, f"{error.code}: {error.details[:300]}"
    assert 0 < len(error.details) <= DETAILS_MAX, len(error.details)
    for key, value in error.trailers.items():
        if key.startswith("syncd-"):
            assert isinstance(value, str) and value.isascii() and value.isprintable(), value
            assert len(value) <= TRAILER_MAX


def _invoke(stub: pb_grpc.ManagementStub, **named: pb.Value) -> Refusal:
    request = pb.InvokeRequest(bean="TypedJob", operation="typedJob", named_arguments=named)
    return _refusal(stub.Invoke, request)


def _ts(seconds: int, nanos: int) -> pb.Value:
    return pb.Value(timestamp_value=timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos))


class TestReportedCases:
    """The inputs the issue found answered INTERNAL or RESOURCE_EXHAUSTED."""

    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            ("", "not valid JSON"),
            ('{"a": [1,', "not valid JSON"),
            ("[" * 100_000, "nested deeper than 32"),
            ("[" * 40 + "]" * 40, "nested deeper than 32"),
            ("NaN", "not valid JSON"),
            ("1e999", "not valid JSON"),
            ('"\\ud800"', "surrogate"),
        ],
        ids=["empty", "truncated", "100k-deep", "40-deep", "nan", "overflow", "surrogate"],
    )
    def test_bad_json_value(self, stub: pb_grpc.ManagementStub, text: str, reason: str) -> None:
        error = _invoke(stub, filter=pb.Value(json_value=text))
        assert_clean_refusal(error)
        assert error.code is grpc.StatusCode.INVALID_ARGUMENT
        assert reason in error.details
        assert error.trailers["syncd-parameter"] == "filter"

    @pytest.mark.parametrize(
        ("value", "reason"),
        [
            (_ts(0, -1), "nanos -1"),
            (_ts(0, 1_000_000_000), "nanos 1000000000"),
            (_ts(2**62, 0), "outside years 1-9999"),
            (_ts(-(2**62), 0), "outside years 1-9999"),
            (pb.Value(string_value="9999-12-31T23:59:59-23:59"), "outside years 1-9999"),
            (pb.Value(string_value="0001-01-01T00:00:00+23:59"), "outside years 1-9999"),
            (pb.Value(string_value="yesterday"), "expected an ISO 8601 timestamp"),
        ],
        ids=[
            "negative-nanos",
            "nanos-overflow",
            "seconds-high",
            "seconds-low",
            "date-high",
            "date-low",
            "text",
        ],
    )
    def test_bad_timestamp(
        self, stub: pb_grpc.ManagementStub, value: pb.Value, reason: str
    ) -> None:
        error = _invoke(stub, since=value)
        assert_clean_refusal(error)
        assert error.code is grpc.StatusCode.INVALID_ARGUMENT
        assert reason in error.details

    @pytest.mark.parametrize("name", ["séconds", "a\nb", "\x00", "名前", "x" * 20_000])
    def test_odd_parameter_names(self, stub: pb_grpc.ManagementStub, name: str) -> None:
        """Non-ASCII, control characters, a 20 KB name: INVALID_ARGUMENT, name in a safe trailer."""
        error = _invoke(stub, **{name: pb.Value(string_value="1")})
        assert_clean_refusal(error)
        assert error.code is grpc.StatusCode.INVALID_ARGUMENT
        assert "no parameter named" in error.details
        sent = error.trailers["syncd-parameter"]
        assert isinstance(sent, str) and name.startswith(unquote(sent))

    def test_a_huge_value_is_quoted_briefly(self, stub: pb_grpc.ManagementStub) -> None:
        """A 100 KB value a validator refuses: the message quotes its head and says its size."""
        error = _invoke(stub, day=pb.Value(string_value="9" * 100_000))
        assert_clean_refusal(error)
        details = error.details
        assert "is not a date" in details  # the validator's reason survives the cut
        assert "characters cut" in details

    def test_a_huge_bean_name_is_not_found_briefly(self, stub: pb_grpc.ManagementStub) -> None:
        error = _refusal(stub.DescribeBean, pb.DescribeBeanRequest(bean="B" * 100_000))
        assert_clean_refusal(error)
        assert error.code is grpc.StatusCode.NOT_FOUND
        assert "(100000 characters)" in error.details

    def test_text_no_store_keeps_is_refused(self, stub: pb_grpc.ManagementStub) -> None:
        error = _invoke(stub, label=pb.Value(string_value="a\x00b"))
        assert_clean_refusal(error)
        assert "NUL" in error.details

    def test_an_integer_outside_64_bits_is_refused(self, stub: pb_grpc.ManagementStub) -> None:
        error = _invoke(stub, rows=pb.Value(string_value=str(2**64)))
        assert_clean_refusal(error)
        assert "64-bit" in error.details

    def test_good_arguments_still_start_a_run(self, stub: pb_grpc.ManagementStub) -> None:
        """The checks refuse only what is wrong: every type, well formed, is taken."""
        reply = stub.Invoke(
            pb.InvokeRequest(
                bean="TypedJob",
                operation="typedJob",
                named_arguments={
                    "flag": pb.Value(bool_value=True),
                    "rows": pb.Value(int_value=2),
                    "ratio": pb.Value(float_value=0.5),
                    "label": pb.Value(string_value="é\nb"),
                    "since": pb.Value(string_value="2026-01-31T00:00:00+01:00"),
                    "filter": pb.Value(json_value=json.dumps({"a": [1, 2.5, "x"]})),
                    "day": pb.Value(string_value="2026-01-31"),
                },
            ),
            timeout=CALL_TIMEOUT,
        )
        assert reply.run.run_id
        _wait_finished(stub, reply.run.run_id)
        assert reply.run.arguments["since"].timestamp_value.ToJsonString() == "2026-01-30T23:00:00Z"


def _wait_finished(stub: pb_grpc.ManagementStub, run_id: str) -> None:
    for info in stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=CALL_TIMEOUT):
        if info.state == pb.RUN_STATE_FINISHED:
            return


# --- Hypothesis ------------------------------------------------------------------------------

_INT32 = st.integers(-(2**31), 2**31 - 1)
_INT64 = st.integers(-(2**63), 2**63 - 1)
_TEXT = st.text(max_size=300)  # valid UTF-8 only: protobuf strings cannot carry anything else
_json_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
_json_values = st.recursive(
    _json_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
_json_text = st.one_of(
    _json_values.map(json.dumps),
    _TEXT,
    st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 3000).map(lambda n: '{"a":' * n),
    st.text(alphabet='[]{}",:0123456789.eE+-\\u', max_size=200),
)
_timestamps = st.builds(
    lambda s, n: timestamp_pb2.Timestamp(seconds=s, nanos=n),
    st.one_of(_INT64, st.integers(-62_135_596_800, 253_402_300_799)),
    _INT32,
)
_values = st.one_of(
    st.just(pb.Value()),
    st.builds(lambda b: pb.Value(bool_value=b), st.booleans()),
    st.builds(lambda i: pb.Value(int_value=i), _INT64),
    st.builds(lambda f: pb.Value(float_value=f), st.floats()),
    st.builds(lambda t: pb.Value(string_value=t), _TEXT),
    st.builds(
        lambda t: pb.Value(string_value=t),
        st.sampled_from(
            [
                "9999-12-31T23:59:59-23:59",
                "0001-01-01T00:00:00+01:00",
                "2026-01-31",
                "²",
                "1e999",
                "nan",
                "true",
                "ANY",
                str(2**63),
                "-0",
                "2026-02-30",
            ]
        ),
    ),
    st.builds(lambda ts: pb.Value(timestamp_value=ts), _timestamps),
    st.builds(lambda j: pb.Value(json_value=j), _json_text),
)
_names = st.one_of(st.sampled_from(PARAMS), _TEXT, st.text(string.printable, max_size=5))
_beans = st.one_of(
    st.sampled_from(["TypedJob", "sync.mbean:name=TypedJob", "typedjob", "Daemon", "", "*"]),
    _TEXT,
)
_operations = st.one_of(
    st.sampled_from(
        ["typedJob", "run", "isCurrentlyRunning", "cancel", "elapsedTime", "status", "TYPEDJOB"]
    ),
    _TEXT,
)


class Calls:
    """Shared state of a property run: the runs accepted calls started."""

    def __init__(self, stub: pb_grpc.ManagementStub) -> None:
        self.stub = stub
        self.accepted_runs: set[str] = set()

    def run_ids(self) -> set[str]:
        reply = self.stub.History(pb.HistoryRequest(limit=10_000), timeout=CALL_TIMEOUT)
        return {r.run_id for r in reply.runs}

    def check(self, call: Any, request: Any) -> Any:
        """Make the call; a refusal must be clean and must have started no run."""
        before = self.run_ids()
        try:
            reply = call(request, timeout=CALL_TIMEOUT)
        except grpc.RpcError as error:
            assert_clean_refusal(refusal_of(error))
            new = self.run_ids() - before - self.accepted_runs
            assert not new, f"a refused call started {new}"
            return None
        if isinstance(reply, pb.InvokeResponse) and reply.run.run_id:
            self.accepted_runs.add(reply.run.run_id)
            _wait_finished(self.stub, reply.run.run_id)  # the next example starts from idle
        return reply


_FAST = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def calls(stub: pb_grpc.ManagementStub) -> Calls:
    return Calls(stub)


class TestInvokeProperties:
    @_FAST
    @given(
        bean=_beans,
        operation=_operations,
        positional=st.lists(_values, max_size=9),
        named=st.dictionaries(_names, _values, max_size=5),
        with_dependants=st.booleans(),
    )
    def test_any_invoke_is_answered_cleanly(
        self,
        calls: Calls,
        bean: str,
        operation: str,
        positional: list[pb.Value],
        named: dict[str, pb.Value],
        with_dependants: bool,
    ) -> None:
        request = pb.InvokeRequest(
            bean=bean,
            operation=operation,
            arguments=positional,
            named_arguments=named,
            with_dependants=with_dependants,
        )
        calls.check(calls.stub.Invoke, request)

    @_FAST
    @given(named=st.dictionaries(st.sampled_from(PARAMS), _values, min_size=1, max_size=7))
    def test_any_typed_arguments_are_answered_cleanly(
        self, calls: Calls, named: dict[str, pb.Value]
    ) -> None:
        """Every parameter's type meets every kind of value (the likeliest way in)."""
        request = pb.InvokeRequest(bean="TypedJob", operation="typedJob", named_arguments=named)
        calls.check(calls.stub.Invoke, request)


class TestOtherRpcProperties:
    @_FAST
    @given(bean=_beans, names=st.lists(_TEXT, max_size=3))
    def test_describe_and_attributes(self, calls: Calls, bean: str, names: list[str]) -> None:
        calls.check(calls.stub.DescribeBean, pb.DescribeBeanRequest(bean=bean))
        calls.check(calls.stub.GetAttributes, pb.GetAttributesRequest(bean=bean, names=names))

    @_FAST
    @given(run_id=_TEXT, bean=_beans, limit=_INT32, days=st.floats())
    def test_runs_history_and_fires(
        self, calls: Calls, run_id: str, bean: str, limit: int, days: float
    ) -> None:
        calls.check(calls.stub.GetRun, pb.GetRunRequest(run_id=run_id))
        calls.check(calls.stub.History, pb.HistoryRequest(bean=bean, limit=limit))
        calls.check(calls.stub.ListFires, pb.ListFiresRequest(days=days))

    @_FAST
    @given(
        limit=_INT32,
        seconds=st.integers(-(2**63), 2**63 - 1),
        nanos=_INT32,
        since=st.booleans(),
    )
    def test_list_audit(
        self, calls: Calls, limit: int, seconds: int, nanos: int, since: bool
    ) -> None:
        """Any limit and any (even invalid) `since` Timestamp: an answer or a clean refusal."""
        request = pb.ListAuditRequest(limit=limit)
        if since:
            request.since.seconds, request.since.nanos = seconds, nanos
        calls.check(calls.stub.ListAudit, request)

    @_FAST
    @given(
        subject=st.one_of(st.sampled_from(["job:TypedJob", "run:x", "job:", "widget:1"]), _TEXT),
        text=_TEXT,
        repository=st.one_of(st.sampled_from(["", "*", "all"]), _TEXT),
        bean=_beans,
        limit=_INT32,
    )
    def test_notes_and_repository_reads(
        self, calls: Calls, subject: str, text: str, repository: str, bean: str, limit: int
    ) -> None:
        calls.check(calls.stub.AddNote, pb.AddNoteRequest(subject=subject, text=text))
        calls.check(calls.stub.ListNotes, pb.ListNotesRequest(subject=subject, limit=limit))
        calls.check(
            calls.stub.RepositoryHistory,
            pb.RepositoryHistoryRequest(repository=repository, bean=bean, limit=limit),
        )
        calls.check(calls.stub.GetSyncStatus, pb.GetSyncStatusRequest())

    @_FAST
    @given(bean=_beans)
    def test_cancel_pause_resume(self, calls: Calls, bean: str) -> None:
        calls.check(calls.stub.Cancel, pb.CancelRequest(bean=bean))
        calls.check(calls.stub.Pause, pb.PauseRequest(bean=bean))
        calls.check(calls.stub.Resume, pb.PauseRequest(bean=bean))

    @_FAST
    @given(job=_beans, run_id=_TEXT, level=st.one_of(st.just("info"), _TEXT), lines=_INT32)
    def test_tail_logs(self, calls: Calls, job: str, run_id: str, level: str, lines: int) -> None:
        request = pb.TailLogsRequest(job=job, run_id=run_id, level=level, lines=lines)
        calls.check(lambda r, timeout: list(calls.stub.TailLogs(r, timeout=timeout)), request)

    @_FAST
    @given(run_id=_TEXT, bean=_beans)
    def test_watch_run_and_events(self, calls: Calls, run_id: str, bean: str) -> None:
        calls.check(
            lambda r, timeout: list(calls.stub.WatchRun(r, timeout=timeout)),
            pb.WatchRunRequest(run_id=run_id),
        )

        def attach(request: pb.WatchEventsRequest, timeout: float) -> None:
            stream = cast(Any, calls.stub.WatchEvents(request, timeout=timeout))
            try:
                stream.initial_metadata()  # sent once attached, or the refusal ends the call
                if stream.done() and stream.code() is not grpc.StatusCode.OK:
                    raise stream  # the call is the RpcError
            finally:
                stream.cancel()

        calls.check(attach, pb.WatchEventsRequest(bean=bean))


_record_types = st.one_of(st.sampled_from(["job", "run", "hold", "note", "repo"]), _TEXT)
_streams = st.one_of(st.sampled_from(["from_parent", "from_child", "acked_by_child"]), _TEXT)
_UINT64 = st.integers(0, 2**64 - 1)
_rversions = st.builds(lambda h, o: rpb.Version(hlc=h, origin=o), _UINT64, _TEXT)
_bodies = st.one_of(
    _json_text,
    st.fixed_dictionaries(
        {},
        optional={
            "bean": _TEXT,
            "started_at": st.one_of(_TEXT, st.just("2026-01-01T00:00:00+00:00")),
            "rows_read": st.one_of(_INT64, st.integers(), _TEXT),
            "paused_at": _TEXT,
            "body": _TEXT,
            "name": _TEXT,
        },
    ).map(json.dumps),
)
_changes = st.builds(
    lambda t, i, v, d, b, oob: rpb.Change(
        type=t, id=i, version=v, deleted=d, body_json=b, out_of_band=oob
    ),
    _record_types,
    st.one_of(st.sampled_from(["a", "b"]), _TEXT),
    _rversions,
    st.booleans(),
    _bodies,
    st.booleans(),
)


@pytest.fixture(scope="module")
def repl(daemon: Daemon) -> Iterator[rpb_grpc.ReplicationStub]:
    with grpc.insecure_channel(daemon.listening.addresses[0]) as channel:
        yield rpb_grpc.ReplicationStub(channel)


class TestReplicationRpcProperties:
    """The repository's service meets garbage like the control plane does: refused cleanly
    (or, when it is a well-formed batch, applied), never INTERNAL, and no run starts."""

    @_FAST
    @given(
        source=_TEXT,
        epoch=_TEXT,
        stream=_streams,
        start=_INT64,
        end=_INT64,
        changes=st.lists(_changes, max_size=4),
    )
    def test_any_batch_is_answered_cleanly(
        self,
        calls: Calls,
        repl: rpb_grpc.ReplicationStub,
        source: str,
        epoch: str,
        stream: str,
        start: int,
        end: int,
        changes: list[rpb.Change],
    ) -> None:
        request = rpb.ApplyChangesRequest(
            source_id=source,
            source_epoch=epoch,
            stream=stream,
            from_cursor=start,
            to_cursor=end,
            changes=changes,
        )
        calls.check(repl.ApplyChanges, request)

    @_FAST
    @given(
        since=_INT64,
        limit=_INT32,
        up_to=st.one_of(st.none(), _INT64),
        min_hlc=_UINT64,
        keys=st.lists(st.tuples(_record_types, _TEXT), max_size=3),
        bits=_INT32,
        bucket=_INT32,
    )
    def test_any_read_is_answered_cleanly(
        self,
        calls: Calls,
        repl: rpb_grpc.ReplicationStub,
        since: int,
        limit: int,
        up_to: int | None,
        min_hlc: int,
        keys: list[tuple[str, str]],
        bits: int,
        bucket: int,
    ) -> None:
        changes = rpb.GetChangesRequest(since_cursor=since, limit=limit, min_hlc=min_hlc)
        if up_to is not None:
            changes.up_to_cursor = up_to
        calls.check(repl.GetChanges, changes)
        record_keys = [rpb.RecordKey(type=t, id=i) for t, i in keys]
        calls.check(repl.GetRecords, rpb.GetRecordsRequest(keys=record_keys))
        calls.check(repl.GetDigest, rpb.GetDigestRequest(prefix_bits=bits))
        calls.check(repl.ListVersions, rpb.ListVersionsRequest(bucket=bucket, prefix_bits=bits))
        calls.check(repl.GetInfo, rpb.GetInfoRequest())

    @_FAST
    @given(
        peer=_TEXT,
        epoch=_TEXT,
        stream=_streams,
        cursor=_INT64,
        keys=st.lists(st.tuples(_record_types, _TEXT), max_size=3),
    )
    def test_any_cursor_or_pingback_call_is_answered_cleanly(
        self,
        calls: Calls,
        repl: rpb_grpc.ReplicationStub,
        peer: str,
        epoch: str,
        stream: str,
        cursor: int,
        keys: list[tuple[str, str]],
    ) -> None:
        request = rpb.CursorRequest(peer_id=peer, peer_epoch=epoch, stream=stream, cursor=cursor)
        calls.check(repl.GetCursor, request)
        calls.check(repl.AckCursor, request)
        calls.check(repl.GetPingbacks, rpb.PingbacksRequest(child_id=peer))
        record_keys = [rpb.RecordKey(type=t, id=i) for t, i in keys]
        calls.check(repl.ClearPingbacks, rpb.ClearPingbacksRequest(child_id=peer, keys=record_keys))
        for path in (peer, f"/{peer}", "/", "/dev/null"):
            calls.check(repl.ImportBundle, rpb.ImportBundleRequest(path=path))


# Methods whose raw-bytes requests are sent (RunAll takes no input and starts every job).
_RAW_METHODS = [
    m for m in pb.DESCRIPTOR.services_by_name["Management"].methods if m.name != "RunAll"
] + list(rpb.DESCRIPTOR.services_by_name["Replication"].methods)


class TestUndecodableRequests:
    """Bytes that are no request message are INVALID_ARGUMENT, not gRPC's own UNKNOWN."""

    @pytest.mark.parametrize(
        "raw", [b"\x0a\x02\xff\xfe", b"\xff\xff\xff", b"\x0a\x80"], ids=["utf8", "wire", "short"]
    )
    def test_corrupt_request_is_invalid_argument(self, daemon: Daemon, raw: bytes) -> None:
        with grpc.insecure_channel(daemon.listening.addresses[0]) as channel:
            describe = channel.unary_unary("/syncd.v1.Management/DescribeBean", None, None)
            error = _refusal(describe, raw)
        assert error.code is grpc.StatusCode.INVALID_ARGUMENT
        assert "is not a valid syncd.v1.DescribeBeanRequest" in error.details

    @settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
    @given(method=st.sampled_from(_RAW_METHODS), raw=st.binary(max_size=64))
    def test_any_bytes_to_any_method(self, daemon: Daemon, method: Any, raw: bytes) -> None:
        path = f"/{method.containing_service.full_name}/{method.name}"
        with grpc.insecure_channel(daemon.listening.addresses[0]) as channel:
            if method.server_streaming:
                call = channel.unary_stream(path, None, None)
                try:
                    for _ in call(raw, timeout=0.5):  # a follow stream ends by the deadline
                        pass
                except grpc.RpcError as exc:
                    code = refusal_of(exc).code
                    assert code in REFUSALS | {grpc.StatusCode.DEADLINE_EXCEEDED}, code
                return
            try:
                channel.unary_unary(path, None, None)(raw, timeout=CALL_TIMEOUT)
            except grpc.RpcError as exc:
                assert_clean_refusal(refusal_of(exc))


def test_text_postgresql_cannot_hold_is_refused_before_the_ledger(short_tmp: Path) -> None:
    """On a PostgreSQL ledger too, a run id or argument with NUL is NOT_FOUND / INVALID_ARGUMENT
    (PostgreSQL refuses NUL in text: asking it would be INTERNAL), and no run starts."""
    with (
        fresh_postgres_database() as url,
        daemon_in_thread(short_tmp / "state", [TYPED], ledger_url=url) as daemon,
        grpc.insecure_channel(daemon.listening.addresses[0]) as channel,
    ):
        stub = pb_grpc.ManagementStub(channel)
        for run_id in ("a\x00b", "x" * 100_000):
            error = _refusal(stub.GetRun, pb.GetRunRequest(run_id=run_id))
            assert_clean_refusal(error)
            assert error.code is grpc.StatusCode.NOT_FOUND
            error = _refusal(
                lambda r, timeout: list(stub.WatchRun(r, timeout=timeout)),
                pb.WatchRunRequest(run_id=run_id),
            )
            assert error.code is grpc.StatusCode.NOT_FOUND
        for value in (pb.Value(string_value="a\x00b"), pb.Value(json_value='["\\u0000"]')):
            name = "label" if value.HasField("string_value") else "filter"
            assert_clean_refusal(_invoke(stub, **{name: value}))
        assert not stub.History(pb.HistoryRequest(), timeout=CALL_TIMEOUT).runs
