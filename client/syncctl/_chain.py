"""`syncctl run … --with-dependants --wait`: the run, then the dependants the daemon runs after
it, followed as `run-all --wait` follows its jobs (the daemon answers with the chain's names;
their runs start later, so they are found through the events, with the ledger as fallback).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from syncctl._context import PROG, note
from syncctl._exit import ExitCode, SyncctlError
from syncctl._follow import follow_interruptibly, follow_run_all

if TYPE_CHECKING:
    from syncctl._connect import Client
    from syncctl._context import Context
    from syncd_api.v1 import management_pb2 as pb


def run_chain(ctx: Context, client: Client) -> ExitCode:
    """`run --with-dependants --wait`: follow the run, then each dependant the daemon runs
    after it (as `run-all --wait` follows its jobs); exit 0 only if every one succeeded."""
    from syncctl._render import Mode, render_invoke

    args = ctx.args
    # Subscribe first: the dependants' events must not slip by before the watch is open.
    with client.watch_events() as events:
        since = ctx.now()
        reply = client.invoke(
            args.bean, args.operation, args.args, dict(args.named), with_dependants=True
        )
        if ctx.mode is not Mode.JSON:
            render_invoke(ctx.stdout, ctx.mode, reply, ctx.now())
            ctx.stdout.flush()
        first = follow_interruptibly(ctx, client, reply.run)
        if ctx.mode is not Mode.JSON:
            _write_outcome(ctx, first, chained=bool(reply.chain))
        try:
            chained = follow_run_all(ctx, client, events, reply.chain, since)
        except KeyboardInterrupt:
            raise SyncctlError(
                ExitCode.INTERRUPTED,
                f"stopped waiting; the dependants carry on in the daemon (see `{PROG} status`)",
            ) from None
    return _report_chain(ctx, reply, first, chained)


def _write_outcome(ctx: Context, final: pb.RunInfo, *, chained: bool) -> None:
    """The first run's end, in the form the chain's lines take after it."""
    from syncctl._render import Mode, outcome_line
    from syncctl._render_runs import outcome_word, run_all_result_line

    if not chained:
        text = outcome_line(final, ctx.now()) if ctx.mode is Mode.TABLE else outcome_word(final)
    else:
        text = run_all_result_line(ctx.mode, final, ctx.now())
    ctx.stdout.write(text + "\n")
    ctx.stdout.flush()


def _report_chain(
    ctx: Context, reply: pb.InvokeResponse, first: pb.RunInfo, chained: list[pb.RunInfo]
) -> ExitCode:
    from syncctl._render import Mode, invoke_dict, run_dict, write_json
    from syncctl._render_runs import outcome_word
    from syncd_api.v1 import management_pb2 as pb

    if ctx.mode is Mode.JSON:
        document = invoke_dict(reply, ctx.now())
        document["run"] = run_dict(first, ctx.now())
        document["chain_runs"] = [run_dict(run, ctx.now()) for run in chained]
        write_json(ctx.stdout, document)
    failed = [run for run in (first, *chained) if run.outcome != pb.RUN_OUTCOME_SUCCESS]
    if not failed:
        return ExitCode.OK
    summary = ", ".join(f"{run.bean} {outcome_word(run)}" for run in failed)
    total = 1 + len(chained)
    note(ctx.stderr, f"{len(failed)} of {total} runs of the chain did not succeed: {summary}")
    return ExitCode.FAILED
