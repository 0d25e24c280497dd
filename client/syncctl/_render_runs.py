"""Output for the ledger and scheduler commands: history, show, cancel, run-all, pause/resume,
next. Same conventions as `_render`: a table on a TTY, fixed tab-separated columns when piped,
one JSON document with `--json`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO, Any

from syncctl._render import (
    EMPTY,
    Mode,
    cell,
    enum_word,
    human_duration,
    iso,
    relative,
    run_dict,
    run_elapsed,
    value_python,
    when,
    write_json,
    write_rows,
)
from syncd_api.v1 import management_pb2 as pb

ALL = "*"  # the daemon's name for a whole-daemon hold
ERROR_WIDTH = 60  # an error cell on a terminal; piped and JSON output keep the whole text


def shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def outcome_word(run: pb.RunInfo) -> str:
    """The outcome, or the state ("running", "cancelling") of a run not yet finished."""
    return enum_word(pb.RunOutcome, run.outcome) or enum_word(pb.RunState, run.state)


def error_text(run: pb.RunInfo) -> str:
    return ": ".join(p for p in (run.error_type, run.error_message) if p)


# ---- history -------------------------------------------------------------------------------


def render_history(
    out: IO[str], mode: Mode, reply: pb.HistoryResponse, now: float, *, repository: bool = False
) -> None:
    """Newest first. TSV columns: run id, bean, trigger, started, seconds, outcome, rows read,
    rows written, error; with `repository`, the repository that ran it comes first."""
    if mode is Mode.JSON:
        runs = [
            {**run_dict(run, now), **({"repository": run.repository} if repository else {})}
            for run in reply.runs
        ]
        write_json(out, {"runs": runs})
        return
    rows: list[tuple[str, ...]] = []
    for run in reply.runs:
        elapsed = run_elapsed(run, now)
        trigger = enum_word(pb.Trigger, run.trigger)
        if mode is Mode.TSV:
            seconds = "" if elapsed is None else f"{elapsed:.3f}"
            rows.append(
                (
                    run.run_id,
                    run.bean,
                    trigger,
                    when(run, "started_at", mode=mode, now=now),
                    seconds,
                    outcome_word(run),
                    str(run.rows_read),
                    str(run.rows_written),
                    error_text(run),
                )
            )
        else:
            rows.append(
                (
                    run.run_id,
                    run.bean,
                    trigger,
                    when(run, "started_at", mode=mode, now=now),
                    "" if elapsed is None else human_duration(elapsed),
                    outcome_word(run),
                    f"{run.rows_read}/{run.rows_written}",
                    shorten(error_text(run), ERROR_WIDTH),
                )
            )
    if mode is Mode.TABLE and not rows:
        out.write("No runs recorded.\n")
        return
    headers: tuple[str, ...] = (
        "RUN",
        "BEAN",
        "TRIGGER",
        "STARTED",
        "DURATION",
        "OUTCOME",
        "ROWS R/W",
        "ERROR",
    )
    if mode is Mode.TABLE and any(run.replica for run in reply.runs):  # cluster mode
        headers = (*headers[:3], "REPLICA", *headers[3:])
        rows = [
            (*r[:3], run.replica or "-", *r[3:]) for r, run in zip(rows, reply.runs, strict=True)
        ]
    if repository:
        headers = ("REPOSITORY", *headers)
        rows = [(run.repository, *row) for run, row in zip(reply.runs, rows, strict=True)]
    write_rows(out, mode, headers, rows)


# ---- show ----------------------------------------------------------------------------------


def _arguments_text(run: pb.RunInfo) -> str:
    import json  # lazily, as in _render: start-up time matters

    parts = []
    for name, value in sorted(run.arguments.items()):
        python = value_python(value)
        parts.append(f"{name}={python if isinstance(python, str) else json.dumps(python)}")
    return ", ".join(parts)


def render_run(out: IO[str], mode: Mode, run: pb.RunInfo, now: float) -> None:
    """Every field of one run: `field<TAB>value` lines piped (the JSON key names), an aligned
    list on a TTY, the run's document with --json."""
    document = run_dict(run, now)
    if mode is Mode.JSON:
        write_json(out, document)
        return
    if mode is Mode.TSV:
        import json

        for key, value in document.items():
            if isinstance(value, dict):
                text = json.dumps(value, separators=(",", ":")) if value else ""
            elif value is None:
                text = ""
            else:
                text = str(value)
            out.write(f"{key}\t{cell(text)}\n")
        return
    elapsed = run_elapsed(run, now)
    progress = ""
    if run.progress_total:
        percent = 100 * run.progress_done // max(1, run.progress_total)
        progress = f"{run.progress_done}/{run.progress_total} ({percent}%)"
    elif run.progress_done:
        progress = f"{run.progress_done} done"
    fields = [
        ("run", run.run_id),
        ("bean", run.bean),
        ("operation", run.operation),
        ("arguments", _arguments_text(run)),
        ("trigger", enum_word(pb.Trigger, run.trigger)),
        ("actor", run.actor),
        ("slot time", when(run, "slot_time", mode=mode, now=now)),
        ("started", when(run, "started_at", mode=mode, now=now)),
        ("ended", when(run, "ended_at", mode=mode, now=now)),
        ("duration", "" if elapsed is None else human_duration(elapsed)),
        ("state", enum_word(pb.RunState, run.state)),
        ("outcome", enum_word(pb.RunOutcome, run.outcome)),
        ("error type", run.error_type),
        ("error", " ".join(run.error_message.split())),
        ("rows", f"{run.rows_read} read, {run.rows_written} written"),
        ("progress", progress),
    ]
    width = max(len(name) for name, _ in fields)
    for name, text in fields:
        out.write(f"{name.ljust(width)}  {text or EMPTY}\n")


# ---- cancel --------------------------------------------------------------------------------


def render_cancel(
    out: IO[str], err: IO[str], mode: Mode, bean: str, reply: pb.CancelResponse, now: float
) -> None:
    """Piped: the run id being cancelled, or nothing (and a note on stderr) when idle."""
    if mode is Mode.JSON:
        document = run_dict(reply.run, now) if reply.HasField("run") else None
        write_json(out, {"bean": bean, "cancelling": reply.cancelling, "run": document})
        return
    if not reply.cancelling:
        note = f"{bean} has no run under way; nothing to cancel"
        if mode is Mode.TABLE:
            out.write(note + "\n")
        else:
            err.write(f"syncctl: {note}\n")
        return
    run = reply.run
    if mode is Mode.TSV:
        out.write(run.run_id + "\n")
        return
    out.write(
        f"Cancelling run {run.run_id} ({run.bean} {run.operation}); "
        "a job that ignores it is stopped after its cancel_grace\n"
    )


# ---- run-all -------------------------------------------------------------------------------


def render_run_all(out: IO[str], mode: Mode, jobs: Sequence[str]) -> None:
    """The planned order. Piped: one job name per line."""
    if mode is Mode.JSON:
        write_json(out, {"jobs": list(jobs)})
        return
    if mode is Mode.TSV:
        for job in jobs:
            out.write(job + "\n")
        return
    if not jobs:
        out.write("Run all: no enabled jobs.\n")
        return
    out.write(f"Run all: {len(jobs)} jobs, one after another:\n")
    for number, job in enumerate(jobs, start=1):
        out.write(f"  {number}. {job}\n")


def run_all_result_line(mode: Mode, run: pb.RunInfo, now: float) -> str:
    """One finished job of a `run-all --wait`: bean, run id, outcome (and more on a TTY)."""
    if mode is Mode.TSV:
        return "\t".join(cell(c) for c in (run.bean, run.run_id, outcome_word(run)))
    from syncctl._render import outcome_line

    return f"{run.bean}: {outcome_line(run, now)}"


def run_all_dict(jobs: Sequence[str], runs: Sequence[pb.RunInfo], now: float) -> dict[str, Any]:
    return {"jobs": list(jobs), "runs": [run_dict(run, now) for run in runs]}


# ---- pause / resume ------------------------------------------------------------------------


def _hold_order(name: str) -> tuple[bool, str]:
    return (name != ALL, name)


def render_holds(
    out: IO[str], mode: Mode, verb: str, bean: str, reply: pb.PauseResponse, now: float
) -> None:
    """Every hold now in force. Piped: `bean<TAB>since` per hold ("*": the whole daemon)."""
    holds = sorted(reply.holds.items(), key=lambda item: _hold_order(item[0]))
    if mode is Mode.JSON:
        write_json(out, {"holds": {name: iso(ts, precise=True) for name, ts in holds}})
        return
    if mode is Mode.TSV:
        write_rows(out, mode, ("BEAN", "SINCE"), [(name, iso(ts)) for name, ts in holds])
        return
    target = bean if bean and bean != ALL else "every bean (the whole daemon)"
    if verb == "pause":
        out.write(f"Paused {target}: scheduled runs wait; manual runs still work.\n")
    else:
        out.write(f"Resumed {target}: scheduled runs go on from now.\n")
    if not holds:
        out.write("Nothing is paused.\n")
        return
    rows = [
        (
            "* (whole daemon)" if name == ALL else name,
            f"{iso(ts)} ({relative(ts, now)})",
        )
        for name, ts in holds
    ]
    out.write("\n")
    write_rows(out, mode, ("PAUSED", "SINCE"), rows)


# ---- next ----------------------------------------------------------------------------------


def render_fires(
    out: IO[str],
    mode: Mode,
    reply: pb.ListFiresResponse,
    days: float,
    now: float,
) -> None:
    """Upcoming fires in UTC order. Piped: `at<TAB>bean`."""
    if mode is Mode.JSON:
        write_json(
            out,
            {
                "days": days,
                "fires": [{"at": iso(f.at), "bean": f.bean} for f in reply.fires],
            },
        )
        return
    if mode is Mode.TSV:
        write_rows(out, mode, ("AT", "BEAN"), [(iso(f.at), f.bean) for f in reply.fires])
        return
    span = f"{days:g} day" + ("" if days == 1 else "s")
    if not reply.fires:
        out.write(f"No scheduled runs in the next {span} (paused beans are left out).\n")
        return
    rows = [(f"{iso(f.at)} ({relative(f.at, now)})", f.bean) for f in reply.fires]
    write_rows(out, mode, ("AT (UTC)", "BEAN"), rows)
