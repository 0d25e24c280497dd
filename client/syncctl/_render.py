"""Turning Management replies into output: a table on a TTY, tab-separated when piped, or JSON.

Piped output is for scripts and stays stable: one record per line, fixed columns, no header,
"-" for an empty cell (so `read` and `cut` never see two tabs in a row), UTC ISO 8601 times and
durations in seconds. On a TTY, times also get a relative form ("in 3h12m") and durations read as
"3m12s". `--json` prints one JSON document per command with the same field names everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

from syncctl._output import EMPTY as EMPTY
from syncctl._output import Mode as Mode
from syncctl._output import cell as cell
from syncctl._output import choose_mode as choose_mode
from syncctl._output import write_json as write_json
from syncctl._output import write_rows as write_rows
from syncd_api.v1 import management_pb2 as pb

if TYPE_CHECKING:
    from google.protobuf.timestamp_pb2 import Timestamp

# ---- scalar formatting ---------------------------------------------------------------------


def enum_word(enum_type: Any, number: int) -> str:
    """BEAN_STATE_RUNNING -> "running"; the zero ("unspecified") value -> ""."""
    if number == 0:
        return ""
    try:
        name: str = enum_type.Name(number)
    except ValueError:
        return str(number)
    prefix = enum_type.Name(0).removesuffix("UNSPECIFIED")
    return name.removeprefix(prefix).lower()


def timestamp_seconds(ts: Timestamp) -> float:
    return float(ts.seconds) + ts.nanos / 1e9


def iso(ts: Timestamp, *, precise: bool = False) -> str:
    """A Timestamp as UTC ISO 8601 with a Z; whole seconds unless `precise`."""
    moment = datetime.fromtimestamp(ts.seconds, tz=UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if precise and ts.nanos:
        text += f".{ts.nanos // 1000:06d}".rstrip("0")
    return text + "Z"


def human_duration(seconds: float) -> str:
    """0s, 40ms, 0.4s, 42s, 3m12s, 2h05m, 3d04h: short enough for a table cell."""
    if seconds <= 0:
        return "0s"
    if seconds < 0.1:  # a quick run is not "0s": it took a measurable time
        return f"{max(1, round(seconds * 1000))}ms"
    if seconds < 1:
        return f"{seconds:.1f}s"
    total = int(seconds)
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def relative(ts: Timestamp, now: float) -> str:
    delta = timestamp_seconds(ts) - now
    if abs(delta) < 1:
        return "now"
    return f"in {human_duration(delta)}" if delta > 0 else f"{human_duration(-delta)} ago"


def when(message: Any, field: str, *, mode: Mode, now: float) -> str:
    """A Timestamp field for a table or TSV cell ("" when unset)."""
    if not message.HasField(field):
        return ""
    ts = getattr(message, field)
    if mode is Mode.TABLE:
        return f"{iso(ts)} ({relative(ts, now)})"
    return iso(ts)


def when_json(message: Any, field: str) -> str | None:
    return iso(getattr(message, field), precise=True) if message.HasField(field) else None


def value_python(value: pb.Value) -> Any:
    """A Value as plain JSON-able Python: timestamps as ISO text, json_value parsed."""
    kind = value.WhichOneof("kind")
    if kind is None or kind == "null_value":
        return None
    if kind == "timestamp_value":
        return iso(value.timestamp_value, precise=True)
    if kind == "json_value":
        import json  # lazily: most commands never need it, and start-up time matters

        try:
            return json.loads(value.json_value)
        except ValueError:
            return value.json_value
    return getattr(value, kind)


def value_text(value: pb.Value, *, mode: Mode = Mode.TSV, now: float = 0.0) -> str:
    """A Value for a person or a script: true/false, numbers, raw text, compact JSON."""
    kind = value.WhichOneof("kind")
    if kind is None or kind == "null_value":
        return ""
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "timestamp_value":
        ts = value.timestamp_value
        return f"{iso(ts)} ({relative(ts, now)})" if mode is Mode.TABLE else iso(ts, precise=True)
    if kind == "float_value":
        return repr(value.float_value)
    return str(getattr(value, kind))


def jmx_value_text(value: pb.Value) -> str:
    """A Value as jmxterm printed one: `null` for nothing, strings unquoted."""
    kind = value.WhichOneof("kind")
    if kind is None or kind == "null_value":
        return "null"
    return value_text(value)


def run_elapsed(run: pb.RunInfo, now: float) -> float | None:
    if run.HasField("elapsed"):
        return run.elapsed.seconds + run.elapsed.nanos / 1e9
    if not run.HasField("started_at"):
        return None
    end = timestamp_seconds(run.ended_at) if run.HasField("ended_at") else now
    return max(0.0, end - timestamp_seconds(run.started_at))


def run_dict(run: pb.RunInfo, now: float) -> dict[str, Any]:
    elapsed = run_elapsed(run, now)
    return {
        "run_id": run.run_id,
        "bean": run.bean,
        "operation": run.operation,
        "arguments": {k: value_python(v) for k, v in sorted(run.arguments.items())},
        "trigger": enum_word(pb.Trigger, run.trigger) or None,
        "actor": run.actor or None,
        "slot_time": when_json(run, "slot_time"),
        "started_at": when_json(run, "started_at"),
        "ended_at": when_json(run, "ended_at"),
        "elapsed_seconds": None if elapsed is None else round(elapsed, 3),
        "state": enum_word(pb.RunState, run.state) or None,
        "outcome": enum_word(pb.RunOutcome, run.outcome) or None,
        "error_type": run.error_type or None,
        "error_message": run.error_message or None,
        "rows_read": run.rows_read,
        "rows_written": run.rows_written,
        "progress_done": run.progress_done,
        "progress_total": run.progress_total,
        "replica": run.replica or None,  # cluster mode: the replica that ran it
    }


def bean_ref_dict(ref: pb.BeanRef) -> dict[str, Any]:
    return {
        "name": ref.name,
        "object_name": ref.object_name,
        "aliases": list(ref.aliases),
        "description": ref.description,
    }


def type_word(number: int) -> str:
    """VALUE_TYPE_INT -> "int"; unspecified -> "void"."""
    return enum_word(pb.ValueType, number) or "void"


def operation_dict(op: pb.OperationInfo) -> dict[str, Any]:
    return {
        "name": op.name,
        "parameters": [
            {
                "name": p.name,
                "type": type_word(p.type),
                "required": p.required,
                "default": value_python(p.default_value) if p.HasField("default_value") else None,
                "description": p.description,
            }
            for p in op.parameters
        ],
        "returns": type_word(op.return_type),
        "impact": enum_word(pb.Impact, op.impact) or None,
        "description": op.description,
        "alias_of": op.alias_of or None,
    }


def bean_info_dict(info: pb.BeanInfo) -> dict[str, Any]:
    return {
        "bean": bean_ref_dict(info.ref),
        "operations": [operation_dict(op) for op in info.operations],
        "attributes": [
            {"name": a.name, "type": type_word(a.type), "description": a.description}
            for a in info.attributes
        ],
    }


def bean_status_dict(
    status: pb.BeanStatus, now: float, problem: tuple[str, str] | None = None
) -> dict[str, Any]:
    current = run_dict(status.current_run, now) if status.HasField("current_run") else None
    return {
        "name": status.ref.name,
        "object_name": status.ref.object_name,
        "state": enum_word(pb.BeanState, status.state) or None,
        "current_run": current,
        "last_outcome": enum_word(pb.RunOutcome, status.last_outcome) or None,
        "last_finished_at": when_json(status, "last_finished_at"),
        "last_success_at": when_json(status, "last_success_at"),
        "next_run_at": when_json(status, "next_run_at"),
        "last_error": status.last_error or None,
        "health": enum_word(pb.Health, status.health) or None,
        "health_reason": status.health_reason or None,
        "needs_rerun": status.needs_rerun,
        "replica": status.replica or None,  # cluster mode: who runs current_run
        # What `status` as a monitoring check holds against the bean: kind and why.
        "problem": {"kind": problem[0], "detail": problem[1]} if problem else None,
    }


def status_dict(
    reply: pb.GetStatusResponse,
    now: float,
    problems: Mapping[str, tuple[str, str]] | None = None,
) -> dict[str, Any]:
    problems = problems or {}
    daemon = reply.daemon
    return {
        "daemon": {
            "version": daemon.version,
            "pid": daemon.pid,
            "started_at": when_json(daemon, "started_at"),
            "draining": daemon.draining,
            "ledger_problem": daemon.ledger_problem or None,
            "ledger_unwritten": daemon.ledger_unwritten,
            "replica": daemon.replica or None,
            "cluster_problem": daemon.cluster_problem or None,
        },
        "beans": [bean_status_dict(b, now, problems.get(b.ref.name)) for b in reply.beans],
    }


# ---- writing -------------------------------------------------------------------------------


def signature(op: pb.OperationInfo) -> str:
    """personOwnerRebuildJob(string since=, int limit)"""
    params = []
    for p in op.parameters:
        text = f"{type_word(p.type)} {p.name}"
        if p.HasField("default_value"):
            text += f"={value_text(p.default_value)}"
        elif not p.required:
            text = f"[{text}]"
        params.append(text)
    return f"{op.name}({', '.join(params)})"


# ---- one function per command --------------------------------------------------------------


def render_beans(out: IO[str], mode: Mode, reply: pb.ListBeansResponse) -> None:
    if mode is Mode.JSON:
        write_json(out, {"beans": [bean_ref_dict(b) for b in reply.beans]})
        return
    # Aliases are other names of the same bean, so they share its row, not rows of their own.
    rows = [(b.name, b.object_name, ", ".join(b.aliases), b.description) for b in reply.beans]
    write_rows(out, mode, ("NAME", "OBJECT NAME", "ALIASES", "DESCRIPTION"), rows)


def render_info(out: IO[str], mode: Mode, info: pb.BeanInfo) -> None:
    if mode is Mode.JSON:
        write_json(out, bean_info_dict(info))
        return
    ops = [
        (
            signature(op),
            type_word(op.return_type),
            enum_word(pb.Impact, op.impact),
            f"alias of {op.alias_of}" if op.alias_of else op.description,
        )
        for op in info.operations
    ]
    attrs = [(a.name, type_word(a.type), a.description) for a in info.attributes]
    if mode is Mode.TSV:
        for alias in info.ref.aliases:
            out.write(f"alias\t{alias}\n")
        for op_row in ops:
            out.write("\t".join(cell(c) for c in ("operation", *op_row)) + "\n")
        for attr_row in attrs:
            out.write("\t".join(cell(c) for c in ("attribute", *attr_row)) + "\n")
        return
    out.write(info.ref.object_name + "\n")
    if info.ref.description:
        out.write(f"  {info.ref.description}\n")
    if info.ref.aliases:
        out.write(f"  also answers to: {', '.join(info.ref.aliases)}\n")
    out.write("\n")
    write_rows(out, mode, ("OPERATION", "RETURNS", "IMPACT", "DESCRIPTION"), ops)
    out.write("\n")
    write_rows(out, mode, ("ATTRIBUTE", "TYPE", "DESCRIPTION"), attrs)


def render_attributes(
    out: IO[str], mode: Mode, reply: pb.GetAttributesResponse, now: float
) -> None:
    if mode is Mode.JSON:
        write_json(
            out,
            {
                "bean": bean_ref_dict(reply.ref),
                "attributes": {a.name: value_python(a.value) for a in reply.attributes},
            },
        )
        return
    rows = [(a.name, value_text(a.value, mode=mode, now=now)) for a in reply.attributes]
    if mode is Mode.TSV:
        write_rows(out, mode, ("NAME", "VALUE"), rows)
        return
    width = max((len(name) for name, _ in rows), default=0)
    for name, text in rows:
        out.write(f"{name.ljust(width)}  {text or EMPTY}\n")


def invoke_dict(reply: pb.InvokeResponse, now: float) -> dict[str, Any]:
    return {
        "result": value_python(reply.result),
        "message": reply.message or None,
        "run": run_dict(reply.run, now) if reply.HasField("run") else None,
        "chain": list(reply.chain),
    }


def render_invoke(
    out: IO[str], mode: Mode, reply: pb.InvokeResponse, now: float, *, operation: str = ""
) -> None:
    """A started run prints its id (piped) or "Just started: run <id> …" (TTY); else the result
    (a search's documents and a reload's changes in their readable form, see _render_results)."""
    if mode is Mode.JSON:
        write_json(out, invoke_dict(reply, now))
        return
    if reply.result.WhichOneof("kind") == "json_value" and not reply.HasField("run"):
        from syncctl._render_results import render_result

        if render_result(out, mode, operation, reply.message, reply.result.json_value):
            return
    if mode is Mode.TSV:
        text = value_text(reply.result, mode=mode, now=now)
        if not text and reply.HasField("run"):
            text = reply.run.run_id
        if text:
            out.write(text + "\n")
        return
    if reply.HasField("run"):
        run = reply.run
        lead = reply.message or "Started"
        out.write(f"{lead}: run {run.run_id} ({run.bean} {run.operation})\n")
        if reply.chain:
            out.write(f"then: {', '.join(reply.chain)}\n")
        return
    text = value_text(reply.result, mode=mode, now=now)
    if reply.message and text:
        out.write(f"{reply.message}: {text}\n")
    elif reply.message or text:
        out.write((reply.message or text) + "\n")


def status_rows(reply: pb.GetStatusResponse, mode: Mode, now: float) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for status in reply.beans:
        run_id = elapsed_text = ""
        if status.HasField("current_run"):
            run = status.current_run
            run_id = run.run_id
            elapsed = run_elapsed(run, now)
            if elapsed is not None:
                elapsed_text = human_duration(elapsed) if mode is Mode.TABLE else f"{elapsed:.3f}"
        state = enum_word(pb.BeanState, status.state)
        outcome = enum_word(pb.RunOutcome, status.last_outcome)
        success = when(status, "last_success_at", mode=mode, now=now)
        next_run = when(status, "next_run_at", mode=mode, now=now)
        if mode is Mode.TABLE:
            current = f"{run_id} ({elapsed_text})" if run_id and elapsed_text else run_id
            if run_id and status.replica:  # cluster mode: which replica runs it
                current += f" on {status.replica}"
            rows.append((status.ref.name, state, current, outcome, success, next_run))
        else:
            rows.append((status.ref.name, state, run_id, elapsed_text, outcome, success, next_run))
    return rows


def render_status(
    out: IO[str],
    mode: Mode,
    reply: pb.GetStatusResponse,
    now: float,
    problems: Mapping[str, tuple[str, str]] | None = None,
) -> None:
    if mode is Mode.JSON:
        write_json(out, status_dict(reply, now, problems))
        return
    rows = status_rows(reply, mode, now)
    if mode is Mode.TSV:
        headers: tuple[str, ...] = ("BEAN", "STATE", "RUN", "ELAPSED", "LAST", "SUCCESS", "NEXT")
        write_rows(out, mode, headers, rows)
        return
    daemon = reply.daemon
    parts = [f"syncd {daemon.version or '?'}", f"pid {daemon.pid}"]
    if daemon.replica:
        parts.insert(0, f"replica {daemon.replica}")
    if daemon.HasField("started_at"):
        parts.append(f"up {human_duration(now - timestamp_seconds(daemon.started_at))}")
    parts.append(f"{len(reply.beans)} beans")
    if daemon.draining:
        parts.append("DRAINING: new runs are refused")
    if daemon.ledger_problem:
        parts.append(f"LEDGER UNHEALTHY: {daemon.ledger_problem}")
    if daemon.cluster_problem:
        parts.append(f"CLUSTER UNREACHABLE: {daemon.cluster_problem}")
    out.write(" · ".join(parts) + "\n\n")
    headers = ("BEAN", "STATE", "RUN", "LAST OUTCOME", "LAST SUCCESS", "NEXT RUN")
    write_rows(out, mode, headers, rows)
    errors = [(s.ref.name, s.last_error) for s in reply.beans if s.last_error]
    if errors:
        out.write("\n")
        for name, error in errors:
            out.write(f"{name}: last error: {' '.join(error.split())}\n")


def progress_line(run: pb.RunInfo, now: float) -> str:
    """One line for a run under way: "running 3m12s · 1200/5000 (24%) · 1200 read, 900 written"."""
    state = enum_word(pb.RunState, run.state) or "pending"
    elapsed = run_elapsed(run, now)
    parts = [f"run {run.run_id} {state}" + (f" {human_duration(elapsed)}" if elapsed else "")]
    if run.progress_total:
        percent = 100 * run.progress_done // max(1, run.progress_total)
        parts.append(f"{run.progress_done}/{run.progress_total} ({percent}%)")
    elif run.progress_done:
        parts.append(f"{run.progress_done} done")
    if run.rows_read or run.rows_written:
        parts.append(f"{run.rows_read} read, {run.rows_written} written")
    return " · ".join(parts)


def outcome_line(run: pb.RunInfo, now: float) -> str:
    """ "run 01J… success in 3m12s" or "run 01J… failed after 12s: KeyError: 'x'"."""
    outcome = enum_word(pb.RunOutcome, run.outcome) or enum_word(pb.RunState, run.state)
    elapsed = run_elapsed(run, now)
    text = f"run {run.run_id} {outcome or 'unknown'}"
    if elapsed is not None:
        joiner = "in" if run.outcome == pb.RUN_OUTCOME_SUCCESS else "after"
        text += f" {joiner} {human_duration(elapsed)}"
    error = ": ".join(p for p in (run.error_type, run.error_message) if p)
    if error:
        text += f": {error}"
    return text
