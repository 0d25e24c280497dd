"""The commands that ask the daemon once and print the answer: beans, info, get, status,
history, show, pause, resume, next; and the shell. One function per command (named in `_table`):
ask the daemon, render the reply, return the exit code.

Loaded only when one of these commands runs; rendering and grpc come in inside each function.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from syncctl._context import note
from syncctl._exit import ExitCode, SyncctlError

if TYPE_CHECKING:
    from syncctl._context import Context


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
    """The table always prints; then exit 8 if the daemon says a bean is failing or stuck (see
    _health), or its run ledger is unhealthy (it cannot record runs, so it refuses them)."""
    from syncctl._health import problems
    from syncctl._render import render_status

    with ctx.client() as client:
        reply = client.get_status(ctx.args.stuck_after)
    now = ctx.now()
    found = problems(reply)
    render_status(ctx.stdout, ctx.mode, reply, now, {p.bean: (p.kind, p.detail) for p in found})
    ctx.stdout.flush()
    for problem in found:
        note(ctx.stderr, f"{problem.bean} is {problem.kind}: {problem.detail}")
    ledger = reply.daemon
    if ledger.ledger_problem:
        kept = f" ({ledger.ledger_unwritten} run records kept in memory until it recovers)"
        note(ctx.stderr, f"ledger unhealthy: {ledger.ledger_problem}{kept}")
    if ledger.cluster_problem:  # cluster mode: this replica cannot renew leases or see the others
        note(ctx.stderr, f"cluster database unreachable: {ledger.cluster_problem}")
    unhealthy = ledger.ledger_problem or ledger.cluster_problem
    return ExitCode.BEAN_FAILING if found or unhealthy else ExitCode.OK


# ---- history, show -------------------------------------------------------------------------


def history(ctx: Context) -> ExitCode:
    from syncctl._render_runs import render_history

    repository = ctx.args.repository
    with ctx.client() as client:
        if repository is None:
            reply = client.history(ctx.args.bean or "", ctx.args.limit)
        else:
            every = repository in ("*", "all")
            reply = client.repository_history(
                "*" if every else repository, ctx.args.bean or "", ctx.args.limit
            )
    render_history(ctx.stdout, ctx.mode, reply, ctx.now(), repository=repository is not None)
    return ExitCode.OK


# ---- notes, sync status --------------------------------------------------------------------


def notes(ctx: Context) -> ExitCode:
    from syncctl._render_repl import render_notes

    subject = ctx.args.subject
    if subject and ":" not in subject:
        subject = f"job:{subject}"  # a bare name is a job's
    with ctx.client() as client:
        if ctx.args.text:
            added = client.add_note(subject, " ".join(ctx.args.text))
            render_notes(ctx.stdout, ctx.mode, [added], ctx.now())
            return ExitCode.OK
        reply = client.list_notes(subject or "", ctx.args.limit)
    render_notes(ctx.stdout, ctx.mode, list(reply.notes), ctx.now())
    return ExitCode.OK


def sync(ctx: Context) -> ExitCode:
    from syncctl._render_repl import render_sync_status

    with ctx.client() as client:
        reply = client.sync_status()
    render_sync_status(ctx.stdout, ctx.mode, reply, ctx.now())
    return ExitCode.OK


def audit(ctx: Context) -> ExitCode:
    from syncctl._render_audit import render_audit

    now = ctx.now()
    since = None if ctx.args.since is None else ctx.args.since.resolve(now)
    with ctx.client() as client:
        reply = client.list_audit(since, ctx.args.limit)
    render_audit(ctx.stdout, ctx.mode, reply, now)
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


def replicas(ctx: Context) -> ExitCode:
    """The cluster's members; exit 8 when one of them is lost (no heartbeat within a lease)."""
    from syncctl._render_cluster import render_replicas

    with ctx.client() as client:
        reply = client.list_replicas()
    render_replicas(ctx.stdout, ctx.mode, reply)
    lost = [r.name for r in reply.replicas if r.state == "lost"]
    ctx.stdout.flush()
    for name in lost:
        note(ctx.stderr, f"replica {name} is lost: no heartbeat within a lease")
    return ExitCode.BEAN_FAILING if lost else ExitCode.OK


# ---- shell ---------------------------------------------------------------------------------


def shell(ctx: Context) -> ExitCode:
    from syncctl._shell import Shell, interactive_lines

    args = ctx.args
    session = Shell(
        lambda address: ctx.client(address),
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
