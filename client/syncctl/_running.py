"""The commands that start or stop runs: run, cancel, run-all (with --wait, they follow)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from syncctl._context import PROG, note
from syncctl._exit import ExitCode, SyncctlError
from syncctl._follow import follow_interruptibly, follow_run_all

if TYPE_CHECKING:
    from syncctl._context import Context
    from syncd_api.v1 import management_pb2 as pb


def run(ctx: Context) -> ExitCode:
    from syncctl._render import Mode, render_invoke

    args = ctx.args
    with ctx.client() as client:
        if args.with_dependants and args.wait:
            from syncctl._chain import run_chain

            return run_chain(ctx, client)
        reply = client.invoke(
            args.bean,
            args.operation,
            args.args,
            dict(args.named),
            with_dependants=args.with_dependants,
        )
        if not args.wait or not reply.HasField("run"):
            render_invoke(ctx.stdout, ctx.mode, reply, ctx.now(), operation=args.operation)
            if args.wait:
                note(ctx.stderr, f"{args.operation} does not start a run; nothing to wait for")
            return ExitCode.OK
        if ctx.mode is not Mode.JSON:
            render_invoke(ctx.stdout, ctx.mode, reply, ctx.now())
            ctx.stdout.flush()
        final = follow_interruptibly(ctx, client, reply.run)
    return _report_outcome(ctx, reply, final)


def _report_outcome(ctx: Context, reply: pb.InvokeResponse, final: pb.RunInfo) -> ExitCode:
    from syncctl._render import Mode, enum_word, invoke_dict, outcome_line, run_dict, write_json
    from syncd_api.v1 import management_pb2 as pb

    succeeded = final.outcome == pb.RUN_OUTCOME_SUCCESS
    mode = ctx.mode
    if mode is Mode.JSON:
        document = invoke_dict(reply, ctx.now())
        document["run"] = run_dict(final, ctx.now())
        write_json(ctx.stdout, document)
    elif mode is Mode.TABLE:
        ctx.stdout.write(outcome_line(final, ctx.now()) + "\n")
    else:
        ctx.stdout.write((enum_word(pb.RunOutcome, final.outcome) or "unknown") + "\n")
    if not succeeded and mode is not Mode.TABLE:
        note(ctx.stderr, outcome_line(final, ctx.now()))
    return ExitCode.OK if succeeded else ExitCode.FAILED


def cancel(ctx: Context) -> ExitCode:
    """Not running is not an error (exit 0). With --wait: follow the run until it has ended,
    whatever its outcome (it may have finished before it saw the cancel)."""
    from syncctl._render import Mode, outcome_line, run_dict, write_json
    from syncctl._render_runs import outcome_word, render_cancel

    args = ctx.args
    with ctx.client() as client:
        reply = client.cancel(args.bean)
        mode = ctx.mode
        if not args.wait or not reply.cancelling or mode is not Mode.JSON:
            render_cancel(ctx.stdout, ctx.stderr, mode, args.bean, reply, ctx.now())
        if not args.wait or not reply.cancelling:
            return ExitCode.OK
        ctx.stdout.flush()
        final = follow_interruptibly(ctx, client, reply.run)
    if mode is Mode.JSON:
        write_json(
            ctx.stdout, {"bean": args.bean, "cancelling": True, "run": run_dict(final, ctx.now())}
        )
    elif mode is Mode.TABLE:
        ctx.stdout.write(outcome_line(final, ctx.now()) + "\n")
    else:
        ctx.stdout.write(outcome_word(final) + "\n")
    return ExitCode.OK


#####RUNALL
# ---- run-all -------------------------------------------------------------------------------


def run_all(ctx: Context) -> ExitCode:
    """Prints the planned order; with --wait, each job's end, and exit 1 unless all succeeded."""
    from syncctl._render import Mode
    from syncctl._render_runs import render_run_all

    with ctx.client() as client:
        if not ctx.args.wait:
            reply = client.run_all()
            render_run_all(ctx.stdout, ctx.mode, reply.jobs)
            return ExitCode.OK
        # Subscribe before asking, so the runs' events have the best chance to arrive; what
        # still slips through is found in the ledger (see _runall).
        with client.watch_events() as events:
            since = ctx.now()
            reply = client.run_all()
            if ctx.mode is not Mode.JSON:
                render_run_all(ctx.stdout, ctx.mode, reply.jobs)
                ctx.stdout.flush()
            try:
                runs = follow_run_all(ctx, client, events, reply.jobs, since)
            except KeyboardInterrupt:
                raise SyncctlError(
                    ExitCode.INTERRUPTED,
                    f"stopped waiting; the remaining jobs carry on in the daemon "
                    f"(see `{PROG} status`)",
                ) from None
    return _report_run_all(ctx, reply.jobs, runs)


def _report_run_all(ctx: Context, jobs: Sequence[str], runs: list[pb.RunInfo]) -> ExitCode:
    from syncctl._render import Mode, write_json
    from syncctl._render_runs import outcome_word, run_all_dict
    from syncd_api.v1 import management_pb2 as pb

    if ctx.mode is Mode.JSON:
        write_json(ctx.stdout, run_all_dict(jobs, runs, ctx.now()))
    failed = [run for run in runs if run.outcome != pb.RUN_OUTCOME_SUCCESS]
    if not failed:
        return ExitCode.OK
    summary = ", ".join(f"{run.bean} {outcome_word(run)}" for run in failed)
    note(ctx.stderr, f"run-all: {len(failed)} of {len(jobs)} jobs did not succeed: {summary}")
    return ExitCode.FAILED
