"""One function per syncctl command: ask the daemon, render the reply, return the exit code.

Imported by `cli` at start-up, so it imports nothing but the standard library and `_exit` at
module level; rendering and grpc come in inside each command.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import IO, TYPE_CHECKING

from syncctl._exit import ExitCode, SyncctlError

if TYPE_CHECKING:
    from syncctl._connect import Client, Stream
    from syncctl.cli import Context
    from syncd_api.v1 import management_pb2 as pb

PROG = "syncctl"


def _note(err: IO[str], text: str) -> None:
    err.write(f"{PROG}: {text}\n")
    err.flush()


# ---- beans, info, get, status --------------------------------------------------------------


def beans(ctx: Context) -> ExitCode:
    from syncctl._render import render_beans

    with ctx.client() as client:
        reply = client.list_beans()
    render_beans(ctx.stdout, ctx.mode, reply)
    return ExitCode.OK


def info(ctx: Context) -> ExitCode:
    from syncctl._render import render_info

    with ctx.client() as client:
        bean_info = client.describe_bean(ctx.args.bean)
    render_info(ctx.stdout, ctx.mode, bean_info)
    return ExitCode.OK


def get(ctx: Context) -> ExitCode:
    from syncctl._render import render_attributes

    with ctx.client() as client:
        reply = client.get_attributes(ctx.args.bean, ctx.args.attributes)
    render_attributes(ctx.stdout, ctx.mode, reply, ctx.now())
    return ExitCode.OK


def status(ctx: Context) -> ExitCode:
    """The table always prints; then exit 8 if any bean is failing or stuck (see _health), or
    the daemon's run ledger is unhealthy (it cannot record runs, so it refuses them)."""
    from syncctl._health import problems
    from syncctl._render import render_status

    with ctx.client() as client:
        reply = client.get_status()
    now = ctx.now()
    found = problems(reply, now, ctx.args.stuck_after)
    render_status(ctx.stdout, ctx.mode, reply, now, {p.bean: (p.kind, p.detail) for p in found})
    ctx.stdout.flush()
    for problem in found:
        _note(ctx.stderr, f"{problem.bean} is {problem.kind}: {problem.detail}")
    ledger = reply.daemon
    if ledger.ledger_problem:
        kept = f" ({ledger.ledger_unwritten} run records kept in memory until it recovers)"
        _note(ctx.stderr, f"ledger unhealthy: {ledger.ledger_problem}{kept}")
    return ExitCode.BEAN_FAILING if found or ledger.ledger_problem else ExitCode.OK


# ---- run, cancel ---------------------------------------------------------------------------


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
                _note(ctx.stderr, f"{args.operation} does not start a run; nothing to wait for")
            return ExitCode.OK
        if ctx.mode is not Mode.JSON:
            render_invoke(ctx.stdout, ctx.mode, reply, ctx.now())
            ctx.stdout.flush()
        final = _follow_interruptibly(ctx, client, reply.run)
    return _report_outcome(ctx, reply, final)


def _follow_interruptibly(ctx: Context, client: Client, run: pb.RunInfo) -> pb.RunInfo:
    try:
        return _follow(ctx, client, run)
    except KeyboardInterrupt:
        raise SyncctlError(
            ExitCode.INTERRUPTED,
            f"stopped waiting; run {run.run_id} carries on in the daemon (see `{PROG} status`)",
        ) from None


def _follow(ctx: Context, client: Client, run: pb.RunInfo) -> pb.RunInfo:
    """Watch a run until it finishes; a progress line on stderr when that is a terminal."""
    from syncctl._render import progress_line
    from syncd_api.v1 import management_pb2 as pb

    progress = ctx.tty and ctx.stderr.isatty()
    last = run
    for update in client.watch_run(run.run_id):
        last = update
        if progress:
            ctx.stderr.write(f"\r\x1b[K{progress_line(update, ctx.now())}")
            ctx.stderr.flush()
        if update.state == pb.RUN_STATE_FINISHED:
            break
    if progress:
        ctx.stderr.write("\r\x1b[K")
    if last.state != pb.RUN_STATE_FINISHED:
        # The stream ended early (e.g. the daemon is shutting down): ask once more.
        last = client.get_run(run.run_id)
        if last.state != pb.RUN_STATE_FINISHED:
            raise SyncctlError(
                ExitCode.UNAVAILABLE,
                f"the daemon stopped reporting run {run.run_id} before it finished "
                f"(see `{PROG} status`)",
            )
    return last


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
        _note(ctx.stderr, outcome_line(final, ctx.now()))
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
        final = _follow_interruptibly(ctx, client, reply.run)
    if mode is Mode.JSON:
        write_json(
            ctx.stdout, {"bean": args.bean, "cancelling": True, "run": run_dict(final, ctx.now())}
        )
    elif mode is Mode.TABLE:
        ctx.stdout.write(outcome_line(final, ctx.now()) + "\n")
    else:
        ctx.stdout.write(outcome_word(final) + "\n")
    return ExitCode.OK


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
                runs = _follow_run_all(ctx, client, events, reply.jobs, since)
            except KeyboardInterrupt:
                raise SyncctlError(
                    ExitCode.INTERRUPTED,
                    f"stopped waiting; the remaining jobs carry on in the daemon "
                    f"(see `{PROG} status`)",
                ) from None
    return _report_run_all(ctx, reply.jobs, runs)


# With no event for this long, ask the ledger about the current job: its end may have come
# before the event stream was subscribed. Rare, so a relaxed pace is enough.
RECONCILE_AFTER = 2.0


def _follow_run_all(
    ctx: Context,
    client: Client,
    events: Stream[pb.DaemonEvent],
    jobs: Sequence[str],
    since: float,
) -> list[pb.RunInfo]:
    import queue
    import threading

    from syncctl._render import Mode
    from syncctl._render_runs import run_all_result_line
    from syncctl._runall import RunAllTracker, Settled

    tracker = RunAllTracker(jobs, since)
    runs: list[pb.RunInfo] = []

    def report(settled: Settled | None) -> None:
        if settled is None:
            return
        # The event says how it ended; the run itself has the duration, rows and error.
        run = client.get_run(settled.run_id)
        runs.append(run)
        if ctx.mode is not Mode.JSON:
            ctx.stdout.write(run_all_result_line(ctx.mode, run, ctx.now()) + "\n")
            ctx.stdout.flush()

    def reconcile(*, ended: bool = False) -> None:
        while (current := tracker.current) is not None:
            settled = tracker.reconcile(client.history(current, 10).runs, ended=ended)
            if settled is None:
                return
            report(settled)
            ended = False  # known only of the job the chain was on

    # A thread reads the stream so this one can wait with a timeout (and still take Ctrl-C).
    inbox: queue.Queue[pb.DaemonEvent | SyncctlError | None] = queue.Queue()

    def read() -> None:
        try:
            for event in events:
                inbox.put(event)
        except SyncctlError as error:
            inbox.put(error)
        inbox.put(None)

    threading.Thread(target=read, name="run-all-events", daemon=True).start()
    lost = ""
    while not tracker.done:
        try:
            item = inbox.get(timeout=RECONCILE_AFTER)
        except queue.Empty:
            reconcile()
            continue
        if item is None or isinstance(item, SyncctlError):
            lost = f" ({item.message})" if item is not None else ""
            # The stream ended (a shutdown?): whatever the ledger can still tell is all there is.
            with contextlib.suppress(SyncctlError):
                reconcile()
            break
        if item.missed:
            _note(ctx.stderr, f"… {item.missed} events missed (watcher too slow)")
            reconcile()
        elif tracker.moved_on(item):
            reconcile(ended=True)
        report(tracker.feed(item))
    if not tracker.done:
        raise SyncctlError(
            ExitCode.UNAVAILABLE,
            f"the daemon stopped reporting before run-all ended{lost}; not seen to finish: "
            f"{', '.join(tracker.remaining)} (see `{PROG} history`)",
        )
    return runs


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
    _note(ctx.stderr, f"run-all: {len(failed)} of {len(jobs)} jobs did not succeed: {summary}")
    return ExitCode.FAILED


# ---- history, show -------------------------------------------------------------------------


def history(ctx: Context) -> ExitCode:
    from syncctl._render_runs import render_history

    with ctx.client() as client:
        reply = client.history(ctx.args.bean or "", ctx.args.limit)
    render_history(ctx.stdout, ctx.mode, reply, ctx.now())
    return ExitCode.OK


def show(ctx: Context) -> ExitCode:
    from syncctl._render_runs import render_run

    with ctx.client() as client:
        found = client.get_run(ctx.args.run_id)
    render_run(ctx.stdout, ctx.mode, found, ctx.now())
    return ExitCode.OK


# ---- pause, resume, next -------------------------------------------------------------------


def pause(ctx: Context) -> ExitCode:
    from syncctl._render_runs import render_holds

    with ctx.client() as client:
        reply = client.pause(ctx.args.bean or "")
    render_holds(ctx.stdout, ctx.mode, "pause", ctx.args.bean or "", reply, ctx.now())
    return ExitCode.OK


def resume(ctx: Context) -> ExitCode:
    from syncctl._render_runs import render_holds

    with ctx.client() as client:
        reply = client.resume(ctx.args.bean or "")
    render_holds(ctx.stdout, ctx.mode, "resume", ctx.args.bean or "", reply, ctx.now())
    return ExitCode.OK


def next_fires(ctx: Context) -> ExitCode:
    from syncctl._render_runs import render_fires

    with ctx.client() as client:
        reply = client.list_fires(ctx.args.days)
    render_fires(ctx.stdout, ctx.mode, reply, ctx.args.days, ctx.now())
    return ExitCode.OK


# ---- logs, watch ---------------------------------------------------------------------------


def logs(ctx: Context) -> ExitCode:
    """Ctrl-C is how `logs -f` is meant to end, so it exits 0 (as `watch` does)."""
    from syncctl._render import Mode
    from syncctl._tail import pretty_log_line, use_colour

    args = ctx.args
    pretty = ctx.mode is Mode.TABLE
    colour = pretty and use_colour(ctx.environ, ctx.tty)
    out = ctx.stdout
    with ctx.client() as client:
        stream = client.tail_logs(
            lines=args.lines,
            follow=args.follow,
            job=args.job or "",
            run_id=args.run or "",
            level=args.level or "",
        )
        with stream, _stream_end("log", follow=args.follow):
            for batch in stream:
                for line in batch.lines:
                    if line.missed:
                        _note(ctx.stderr, f"… {line.missed} lines missed (follower too slow)")
                    out.write(
                        (pretty_log_line(line.json, colour=colour) if pretty else line.json) + "\n"
                    )
                # Flush each message: a follower (person, pipe or script) wants it now.
                out.flush()
    return ExitCode.OK


def watch(ctx: Context) -> ExitCode:
    """One line per daemon event until Ctrl-C (exit 0)."""
    from syncctl._tail import event_line

    mode = ctx.mode
    out = ctx.stdout
    with ctx.client() as client:
        events = client.watch_events(ctx.args.bean or "")
        with events, _stream_end("event", follow=True):
            for event in events:
                if event.missed:
                    _note(ctx.stderr, f"… {event.missed} events missed (watcher too slow)")
                out.write(event_line(event, mode) + "\n")
                out.flush()
    return ExitCode.OK


@contextlib.contextmanager
def _stream_end(what: str, *, follow: bool) -> Iterator[None]:
    """How a live stream ends: Ctrl-C is the normal way (exit 0); the daemon closing it, or
    dropping it at a shutdown, is reported (exit 6)."""
    try:
        yield
    except KeyboardInterrupt:
        return
    except SyncctlError as error:
        if follow and error.code is ExitCode.UNAVAILABLE:
            raise SyncctlError(
                ExitCode.UNAVAILABLE,
                f"the daemon ended the {what} stream (is it shutting down?): {error.message}",
            ) from None
        raise
    if follow:
        raise SyncctlError(
            ExitCode.UNAVAILABLE, f"the daemon ended the {what} stream (is it shutting down?)"
        )


# ---- shell ---------------------------------------------------------------------------------


def shell(ctx: Context) -> ExitCode:
    from syncctl._connect import Client
    from syncctl._shell import Shell, interactive_lines

    args = ctx.args
    session = Shell(
        lambda address: Client(address, timeout=ctx.timeout),
        default_address=ctx.address,
        out=ctx.stdout,
        err=ctx.stderr,
        silent=args.verbose == "silent",
    )
    if args.input:
        try:
            with open(args.input, encoding="utf-8") as source:
                return ExitCode(session.run(source.readlines()))
        except OSError as error:
            raise SyncctlError(ExitCode.USAGE, f"cannot read {args.input}: {error}") from None
    if ctx.stdin.isatty() and not args.non_interactive:
        return ExitCode(session.run(interactive_lines("$ "), numbered=False))
    return ExitCode(session.run(ctx.stdin))
