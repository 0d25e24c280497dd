"""Rendering replies: a table on a TTY, stable tab-separated lines when piped, JSON on request."""

from __future__ import annotations

import io
import json
import re

import pytest

from syncctl._render import (
    Mode,
    cell,
    choose_mode,
    enum_word,
    human_duration,
    jmx_value_text,
    render_attributes,
    render_info,
    render_invoke,
    render_status,
    value_python,
    value_text,
)
from syncctl._render_cluster import render_replicas
from syncctl._render_runs import render_history, render_run
from syncd_api.v1 import management_pb2 as pb

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
NOW = float(T0 + 3600)


def ref(name: str) -> pb.BeanRef:
    return pb.BeanRef(name=name, object_name=f"sync.mbean:name={name}")


def status_reply() -> pb.GetStatusResponse:
    """One bean mid-run, one that failed last night, as the daemon would report them."""
    reply = pb.GetStatusResponse(daemon=pb.DaemonInfo(version="1.2.3", pid=42))
    reply.daemon.started_at.FromSeconds(T0)
    busy = reply.beans.add(ref=ref("PersonOwnerRebuildJob"), state=pb.BEAN_STATE_RUNNING)
    busy.current_run.run_id = "r-1"
    busy.current_run.started_at.FromSeconds(T0 + 3600 - 192)
    busy.last_outcome = pb.RUN_OUTCOME_SUCCESS
    busy.last_success_at.FromSeconds(T0 - 86400)
    busy.next_run_at.FromSeconds(T0 + 3600 + 7200)
    failed = reply.beans.add(ref=ref("PostFundingStatusSyncJob"), state=pb.BEAN_STATE_IDLE)
    failed.last_outcome = pb.RUN_OUTCOME_FAILED
    failed.last_error = "OperationalError:\tconnection\nrefused"
    return reply


def render(mode: Mode) -> str:
    out = io.StringIO()
    render_status(out, mode, status_reply(), NOW)
    return out.getvalue()


class TestStatus:
    def test_piped_status_is_header_less_tab_separated_with_dashes(self) -> None:
        """Fixed columns, "-" for empty cells, ISO times, elapsed in seconds."""
        assert render(Mode.TSV).splitlines() == [
            "PersonOwnerRebuildJob\trunning\tr-1\t192.000\tsuccess"
            "\t2025-12-31T00:00:00Z\t2026-01-01T03:00:00Z",
            "PostFundingStatusSyncJob\tidle\t-\t-\tfailed\t-\t-",
        ]

    def test_tty_status_has_relative_times_and_the_last_errors(self) -> None:
        """A person reads "(1d01h ago)", "(in 2h00m)" and each bean's last error."""
        text = render(Mode.TABLE)
        lines = text.splitlines()
        assert lines[0] == "syncd 1.2.3 · pid 42 · up 1h00m · 2 beans"
        assert lines[2].startswith("BEAN ")
        assert "r-1 (3m12s)" in lines[3]
        assert "2025-12-31T00:00:00Z (1d01h ago)" in lines[3]
        assert "2026-01-01T03:00:00Z (in 2h00m)" in lines[3]
        assert (
            lines[-1]
            == "PostFundingStatusSyncJob: last error: OperationalError: connection refused"
        )

    def test_tty_columns_line_up(self) -> None:
        """Every table row starts its STATE column at the same offset."""
        lines = render(Mode.TABLE).splitlines()[2:5]
        offsets = {
            line.index(word) for line, word in zip(lines, ("STATE", "running", "idle"), strict=True)
        }
        assert len(offsets) == 1

    def test_json_status_carries_every_field(self) -> None:
        """--json: daemon info and per-bean fields with UTC ISO times and null for unset."""
        document = json.loads(render(Mode.JSON))
        assert document["daemon"] == {
            "version": "1.2.3",
            "pid": 42,
            "started_at": "2026-01-01T00:00:00Z",
            "draining": False,
            "ledger_problem": None,
            "ledger_unwritten": 0,
            "replica": None,
            "cluster_problem": None,
        }
        busy, failed = document["beans"]
        assert busy["current_run"]["elapsed_seconds"] == 192
        assert busy["next_run_at"] == "2026-01-01T03:00:00Z"
        assert failed["current_run"] is None
        assert failed["last_error"] == "OperationalError:\tconnection\nrefused"

    def test_cluster_mode_names_the_replica_running_each_run(self) -> None:
        """In cluster mode the daemon line names the answering replica and an unreachable
        cluster database; a run under way names the replica that runs it."""
        reply = status_reply()
        reply.daemon.replica = "blue"
        reply.daemon.cluster_problem = "connection refused"
        reply.beans[0].replica = "green"
        out = io.StringIO()
        render_status(out, Mode.TABLE, reply, NOW)
        first, *rest = out.getvalue().splitlines()
        assert first.startswith("replica blue")
        assert "CLUSTER UNREACHABLE: connection refused" in first
        assert any("on green" in line for line in rest)
        as_json = io.StringIO()
        render_status(as_json, Mode.JSON, reply, NOW)
        assert json.loads(as_json.getvalue())["beans"][0]["replica"] == "green"

    def test_draining_shows_on_the_daemon_line(self) -> None:
        """A draining daemon says so above the table."""
        reply = status_reply()
        reply.daemon.draining = True
        out = io.StringIO()
        render_status(out, Mode.TABLE, reply, NOW)
        assert "DRAINING" in out.getvalue().splitlines()[0]


class TestReplicas:
    def test_a_single_daemon_says_it_is_not_in_cluster_mode(self) -> None:
        """Without a cluster the table says so, and --json says cluster false."""
        out = io.StringIO()
        render_replicas(out, Mode.TABLE, pb.ListReplicasResponse(cluster=False))
        assert "Not in cluster mode" in out.getvalue()
        out = io.StringIO()
        render_replicas(out, Mode.JSON, pb.ListReplicasResponse(cluster=False))
        assert json.loads(out.getvalue()) == {"cluster": False, "replica": None, "replicas": []}

    def test_replicas_show_state_heartbeat_and_runs(self) -> None:
        """Each replica: its state, host and pid, heartbeat age and the runs it holds; piped
        output is one tab-separated line per replica."""
        blue = pb.ReplicaInfo(name="blue", host="h1", pid=7, state="live", answering=True)
        blue.heartbeat_at.FromSeconds(T0)
        blue.heartbeat_age.FromSeconds(2)
        blue.running.add(bean="PersonOwnerRebuildJob", run_id="r1")
        green = pb.ReplicaInfo(name="green", host="h2", pid=8, state="lost")
        green.heartbeat_age.FromSeconds(95)
        reply = pb.ListReplicasResponse(cluster=True, replica="blue", replicas=[blue, green])
        out = io.StringIO()
        render_replicas(out, Mode.TABLE, reply)
        table = out.getvalue()
        assert "blue (this one)" in table and "PersonOwnerRebuildJob (r1)" in table
        assert "lost" in table
        out = io.StringIO()
        render_replicas(out, Mode.TSV, reply)
        assert out.getvalue().splitlines()[1].split("\t")[:5] == [
            "green",
            "lost",
            "h2",
            "8",
            "95.000",
        ]

    def test_history_names_the_replica_that_ran_each_run_in_cluster_mode(self) -> None:
        """A REPLICA column on a terminal when runs carry one; piped columns never change."""
        run = pb.RunInfo(run_id="r1", bean="PersonOwnerRebuildJob", replica="green")
        reply = pb.HistoryResponse(runs=[run])
        out = io.StringIO()
        render_history(out, Mode.TABLE, reply, NOW)
        header, line = out.getvalue().splitlines()[:2]
        assert "REPLICA" in header and "green" in line
        out = io.StringIO()
        render_history(out, Mode.TSV, reply, NOW)
        assert "green" not in out.getvalue()


class TestValues:
    def test_value_kinds_as_text(self) -> None:
        """bool as true/false, JSON raw, null empty, timestamps ISO."""
        stamp = pb.Value()
        stamp.timestamp_value.FromSeconds(T0)
        assert value_text(pb.Value(bool_value=True)) == "true"
        assert value_text(pb.Value(int_value=7)) == "7"
        assert value_text(pb.Value(float_value=0.5)) == "0.5"
        assert value_text(pb.Value(json_value='[{"a": 1}]')) == '[{"a": 1}]'
        assert value_text(pb.Value()) == ""
        assert value_text(stamp) == "2026-01-01T00:00:00Z"
        assert value_text(stamp, mode=Mode.TABLE, now=NOW) == "2026-01-01T00:00:00Z (1h00m ago)"

    def test_values_as_json_parse_structured_results(self) -> None:
        """json_value becomes real JSON; null stays null."""
        assert value_python(pb.Value(json_value='{"a": [1]}')) == {"a": [1]}
        assert value_python(pb.Value()) is None

    def test_jmxterm_prints_null_for_nothing(self) -> None:
        """The shell keeps jmxterm's spelling for a void or null result."""
        assert jmx_value_text(pb.Value()) == "null"
        assert jmx_value_text(pb.Value(string_value="0s")) == "0s"

    @pytest.mark.parametrize(
        ("seconds", "text"),
        [
            (0, "0s"),
            (0.004, "4ms"),
            (0.4, "0.4s"),
            (0.44, "0.4s"),
            (59.9, "59s"),
            (192, "3m12s"),
            (7500, "2h05m"),
            (97200, "1d03h"),
        ],
    )
    def test_durations_are_short(self, seconds: float, text: str) -> None:
        """Durations fit a table cell; a sub-second one keeps its size instead of "0s"."""
        assert human_duration(seconds) == text

    def test_a_sub_second_run_reads_its_duration(self) -> None:
        """`show` of a 0.4 s run says 0.4s, where whole seconds said 0s."""
        run = pb.RunInfo(run_id="r1", bean="QuickJob")
        run.elapsed.FromNanoseconds(400_000_000)
        out = io.StringIO()
        render_run(out, Mode.TABLE, run, 0.0)
        assert re.search(r"^duration\s+0\.4s$", out.getvalue(), re.MULTILINE), out.getvalue()

    def test_cells_never_hold_tabs_newlines_or_nothing(self) -> None:
        """A TSV cell cannot break the line or the columns."""
        assert cell("a\tb\nc") == "a b c"
        assert cell("") == "-"

    def test_enum_words(self) -> None:
        """Enum values print as lower-case words; unspecified prints as nothing."""
        assert enum_word(pb.RunOutcome, pb.RUN_OUTCOME_SKIPPED_ALREADY_RUNNING) == (
            "skipped_already_running"
        )
        assert enum_word(pb.BeanState, pb.BEAN_STATE_UNSPECIFIED) == ""


class TestModes:
    @pytest.mark.parametrize(
        ("json_flag", "tty", "mode"),
        [
            (True, True, Mode.JSON),
            (True, False, Mode.JSON),
            (False, True, Mode.TABLE),
            (False, False, Mode.TSV),
        ],
    )
    def test_mode_follows_json_flag_then_tty(self, json_flag: bool, tty: bool, mode: Mode) -> None:
        """--json always wins; otherwise a terminal gets a table and a pipe gets TSV."""
        assert choose_mode(json_flag=json_flag, tty=tty) is mode


class TestOtherReplies:
    def test_invoke_piped_prints_the_run_id_only(self) -> None:
        """A started run, piped: the id, nothing else."""
        reply = pb.InvokeResponse(
            result=pb.Value(string_value="r-7"),
            run=pb.RunInfo(run_id="r-7", bean="A", operation="aJob"),
            message="Just started",
        )
        out = io.StringIO()
        render_invoke(out, Mode.TSV, reply, NOW)
        assert out.getvalue() == "r-7\n"

    def test_void_result_prints_nothing_when_piped(self) -> None:
        """A void operation leaves stdout empty rather than printing a placeholder."""
        out = io.StringIO()
        render_invoke(out, Mode.TSV, pb.InvokeResponse(result=pb.Value()), NOW)
        assert out.getvalue() == ""

    def test_info_piped_prefixes_each_line_with_its_kind(self) -> None:
        """operation/attribute lines, so `grep ^operation` works."""
        info = pb.BeanInfo(
            ref=ref("A"),
            operations=[
                pb.OperationInfo(
                    name="aJob",
                    return_type=pb.VALUE_TYPE_RUN,
                    impact=pb.IMPACT_ACTION,
                    parameters=[pb.ParameterInfo(name="since", type=pb.VALUE_TYPE_TIMESTAMP)],
                ),
                pb.OperationInfo(name="run", return_type=pb.VALUE_TYPE_RUN, alias_of="aJob"),
            ],
            attributes=[pb.AttributeInfo(name="State", type=pb.VALUE_TYPE_STRING)],
        )
        out = io.StringIO()
        render_info(out, Mode.TSV, info)
        assert out.getvalue().splitlines() == [
            "operation\taJob([timestamp since])\trun\taction\t-",
            "operation\trun()\trun\t-\talias of aJob",
            "attribute\tState\tstring\t-",
        ]

    def test_attributes_on_a_tty_are_aligned(self) -> None:
        """`get` on a terminal: names padded, "-" for an empty value."""
        reply = pb.GetAttributesResponse(
            ref=ref("A"),
            attributes=[
                pb.Attribute(name="State", value=pb.Value(string_value="idle")),
                pb.Attribute(name="CurrentRunId", value=pb.Value()),
            ],
        )
        out = io.StringIO()
        render_attributes(out, Mode.TABLE, reply, NOW)
        assert out.getvalue().splitlines() == ["State         idle", "CurrentRunId  -"]


class TestAudit:
    @staticmethod
    def _reply() -> pb.ListAuditResponse:
        reply = pb.ListAuditResponse()
        entry = reply.entries.add(
            actor="token ci",
            role="operator",
            address="ipv4:10.0.0.5:51234",
            action="run",
            target="QuickJob.run",
            outcome="ok",
            detail="run 20260101T000000-abcdef",
        )
        entry.at.FromSeconds(T0)
        return reply

    def test_piped_each_entry_is_one_tab_separated_line(self) -> None:
        """at, actor, role, address, action, target, outcome, detail."""
        from syncctl._render_audit import render_audit

        out = io.StringIO()
        render_audit(out, Mode.TSV, self._reply(), NOW)
        assert out.getvalue().split("\t") == [
            "2026-01-01T00:00:00Z",
            "token ci",
            "operator",
            "ipv4:10.0.0.5:51234",
            "run",
            "QuickJob.run",
            "ok",
            "run 20260101T000000-abcdef\n",
        ]

    def test_json_and_an_empty_table(self) -> None:
        from syncctl._render_audit import render_audit

        out = io.StringIO()
        render_audit(out, Mode.JSON, self._reply(), NOW)
        (entry,) = json.loads(out.getvalue())["entries"]
        assert (entry["at"], entry["actor"]) == ("2026-01-01T00:00:00Z", "token ci")
        out = io.StringIO()
        render_audit(out, Mode.TABLE, pb.ListAuditResponse(), NOW)
        assert out.getvalue() == "No audit entries.\n"


def sync_status_reply() -> pb.GetSyncStatusResponse:
    """A parent whose last cycle repaired three records for one child and failed another."""
    reply = pb.GetSyncStatusResponse(repository="hq", cluster_id="c", last_status=1)
    reply.last_finished_at.FromSeconds(T0)
    reply.last_sync.add(
        child_repository="ohio",
        result="ok",
        pulled=5,
        pushed=7,
        conflicts=1,
        repaired=3,
        last_sync_time="2026-01-01T00:00:00Z",
    )
    reply.last_sync.add(child_repository="az", result="failed", error="unreachable")
    return reply


def test_sync_status_shows_what_anti_entropy_repaired_per_child() -> None:
    from syncctl._render_repl import render_sync_status

    table = io.StringIO()
    render_sync_status(table, Mode.TABLE, sync_status_reply(), NOW)
    header, ohio, az = table.getvalue().splitlines()[-3:]
    assert header.split()[:6] == ["CHILD", "RESULT", "PULLED", "PUSHED", "CONFLICTS", "REPAIRED"]
    assert ohio.split()[:6] == ["ohio", "ok", "5", "7", "1", "3"]
    assert az.split()[:6] == ["az", "failed", "0", "0", "0", "0"] and "unreachable" in az
    tsv = io.StringIO()
    render_sync_status(tsv, Mode.TSV, sync_status_reply(), NOW)
    # Piped, the count is the last column: the columns scripts read stay where they were.
    child = [line.split("\t") for line in tsv.getvalue().splitlines() if line.startswith("child")]
    assert child[0] == ["child", "ohio", "ok", "5", "7", "1", "2026-01-01T00:00:00Z", "-", "3"]
    assert child[1][-2:] == ["unreachable", "0"]
