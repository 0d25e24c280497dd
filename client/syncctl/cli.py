"""syncctl: the operator's client for syncd (what jmxterm was for the JMX beans).

Start-up time matters (operators and scripts call it cold), so this module imports only the
standard library it needs to parse arguments; grpc and the generated code are imported once a
command actually talks to the daemon.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO, TYPE_CHECKING

from syncctl._exit import DESCRIPTIONS, ExitCode, SyncctlError

if TYPE_CHECKING:
    from syncctl._connect import Client
    from syncctl._render import Mode
    from syncd_api.v1 import management_pb2 as pb

PROG = "syncctl"


# ---- arguments -----------------------------------------------------------------------------


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _name_value(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _exit_code_epilog() -> str:
    lines = ["exit codes:"]
    lines += [f"  {int(code):<4d}{text}" for code, text in DESCRIPTIONS.items()]
    return "\n".join(lines)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """argparse's formatter, minus the `import shutil` and terminal query it does per instance.

    argparse builds a formatter for every add_argument call, so at start-up (when no help is
    printed) the width does not matter; for help, ask the terminal once, as shutil would.
    """

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        super().__init__(prog, indent_increment, max_help_position, width or _help_width())


def _help_width() -> int:
    try:
        columns = int(os.environ.get("COLUMNS", "0")) or os.get_terminal_size(1).columns
    except (OSError, ValueError):
        columns = 80
    return max(columns - 2, 40)


def build_parser() -> argparse.ArgumentParser:
    # Global options are accepted before or after the command: a parent parser adds them to
    # both, with SUPPRESS defaults so the subcommand does not overwrite what came first.
    connection = argparse.ArgumentParser(add_help=False, formatter_class=_HelpFormatter)
    connection.add_argument(
        "--address",
        default=argparse.SUPPRESS,
        metavar="ADDR",
        help="daemon address: unix:/path, a socket path, or host:port "
        "(default: $SYNCD_ADDRESS, else the socket under the daemon's state directory)",
    )
    connection.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=argparse.SUPPRESS,
        metavar="SECONDS",
        help="deadline for each request (default: 10); `run --wait` follows a run without one",
    )
    as_json = argparse.ArgumentParser(add_help=False, formatter_class=_HelpFormatter)
    as_json.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON"
    )

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Operate syncd, the sync-job daemon: list beans, run jobs, check status.",
        epilog=_exit_code_epilog(),
        formatter_class=_HelpFormatter,
        parents=[connection],
    )
    # An explicit prog spares argparse a help formatter (and its shutil import) at start-up.
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, prog=PROG)

    def command(name: str, help_text: str, *, json: bool = True) -> argparse.ArgumentParser:
        parents = [connection, as_json] if json else [connection]
        return commands.add_parser(
            name,
            help=help_text,
            description=help_text,
            parents=parents,
            formatter_class=_HelpFormatter,
        )

    command("beans", "List the daemon's beans.")

    info = command("info", "Describe a bean: its operations and attributes.")
    info.add_argument("bean", help="bean name: PersonOwnerRebuildJob or sync.mbean:name=...")

    get = command("get", "Read a bean's attributes (all of them when none are named).")
    get.add_argument("bean", help="bean name")
    get.add_argument("attributes", nargs="*", metavar="attr", help="attribute names")

    run = command("run", "Invoke an operation; a job's trigger starts a run and prints its id.")
    run.add_argument("bean", help="bean name")
    run.add_argument("operation", help="operation name, e.g. personOwnerRebuildJob or run")
    run.add_argument("args", nargs="*", metavar="arg", help="positional arguments, as text")
    run.add_argument(
        "--arg",
        dest="named",
        action="append",
        type=_name_value,
        default=[],
        metavar="NAME=VALUE",
        help="a named argument (repeatable)",
    )
    run.add_argument(
        "--with-dependants",
        action="store_true",
        help="after this run, run every job that depends on this one (a trigger only)",
    )
    run.add_argument(
        "--wait",
        action="store_true",
        help="follow the run to its end; exit 0 only if it succeeded",
    )

    command(
        "status",
        "Every bean: state, current run, last outcome, last success, next run (UTC).",
    )

    shell = command(
        "shell",
        "Read jmxterm commands (open, domain, bean, run, ...) from the terminal or stdin.",
        json=False,
    )
    shell.add_argument(
        "-n", "--non-interactive", action="store_true", help="no prompt (as jmxterm -n)"
    )
    shell.add_argument(
        "-v",
        "--verbose",
        choices=("silent", "brief", "verbose"),
        default="brief",
        help="silent drops the #-messages (as jmxterm -v silent)",
    )
    shell.add_argument(
        "-i", "--input", metavar="FILE", help="read commands from FILE instead of stdin"
    )
    return parser


# ---- running -------------------------------------------------------------------------------


class Context:
    """What a command needs: where the daemon is, how to print, and the clock for "3m ago"."""

    def __init__(
        self,
        args: argparse.Namespace,
        *,
        stdout: IO[str],
        stderr: IO[str],
        stdin: IO[str],
        environ: Mapping[str, str],
        tty: bool,
        now: Callable[[], float],
    ) -> None:
        from syncctl._connect import DEFAULT_TIMEOUT, resolve_address

        self.args = args
        self.stdout = stdout
        self.stderr = stderr
        self.stdin = stdin
        self.tty = tty
        self.now = now
        self.address = resolve_address(getattr(args, "address", None), environ)
        self.timeout: float = getattr(args, "timeout", DEFAULT_TIMEOUT)

    @property
    def mode(self) -> Mode:
        from syncctl._render import choose_mode

        return choose_mode(json_flag=getattr(self.args, "json", False), tty=self.tty)

    def client(self) -> Client:
        from syncctl._connect import Client

        return Client(self.address, timeout=self.timeout)


def main(argv: Sequence[str] | None = None) -> int:
    """The `syncctl` console script."""
    return run(
        list(sys.argv[1:] if argv is None else argv),
        stdout=sys.stdout,
        stderr=sys.stderr,
        stdin=sys.stdin,
        environ=os.environ,
    )


def run(
    argv: Sequence[str],
    *,
    stdout: IO[str],
    stderr: IO[str],
    stdin: IO[str],
    environ: Mapping[str, str],
    tty: bool | None = None,
    now: Callable[[], float] = time.time,
) -> int:
    """main() with its surroundings passed in, so tests can drive every mode."""
    parser = build_parser()
    try:
        # argparse prints to sys.stdout/sys.stderr; point those at this run's streams.
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            args = parser.parse_args(argv)
    except SystemExit as stop:  # argparse exits 2 on a usage error, 0 after --help
        return stop.code if isinstance(stop.code, int) else ExitCode.USAGE
    ctx = Context(
        args,
        stdout=stdout,
        stderr=stderr,
        stdin=stdin,
        environ=environ,
        tty=stdout.isatty() if tty is None else tty,
        now=now,
    )
    try:
        return int(_COMMANDS[args.command](ctx))
    except SyncctlError as error:
        stderr.write(f"{PROG}: {error.message}\n")
        return int(error.code)
    except KeyboardInterrupt:
        stderr.write(f"\n{PROG}: interrupted\n")
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        # The reader went away (`syncctl beans | head -1`): say nothing, and keep Python's
        # shutdown flush from raising again on the dead pipe.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stdout.fileno())
        except (OSError, ValueError):
            pass
        return int(ExitCode.FAILED)


# ---- commands ------------------------------------------------------------------------------


def _beans(ctx: Context) -> ExitCode:
    from syncctl._render import render_beans

    with ctx.client() as client:
        reply = client.list_beans()
    render_beans(ctx.stdout, ctx.mode, reply)
    return ExitCode.OK


def _info(ctx: Context) -> ExitCode:
    from syncctl._render import render_info

    with ctx.client() as client:
        info = client.describe_bean(ctx.args.bean)
    render_info(ctx.stdout, ctx.mode, info)
    return ExitCode.OK


def _get(ctx: Context) -> ExitCode:
    from syncctl._render import render_attributes

    with ctx.client() as client:
        reply = client.get_attributes(ctx.args.bean, ctx.args.attributes)
    render_attributes(ctx.stdout, ctx.mode, reply, ctx.now())
    return ExitCode.OK


def _status(ctx: Context) -> ExitCode:
    from syncctl._render import render_status

    with ctx.client() as client:
        reply = client.get_status()
    render_status(ctx.stdout, ctx.mode, reply, ctx.now())
    return ExitCode.OK


def _run(ctx: Context) -> ExitCode:
    from syncctl._render import Mode, render_invoke

    args = ctx.args
    with ctx.client() as client:
        reply = client.invoke(
            args.bean,
            args.operation,
            args.args,
            dict(args.named),
            with_dependants=args.with_dependants,
        )
        if not args.wait or not reply.HasField("run"):
            render_invoke(ctx.stdout, ctx.mode, reply, ctx.now())
            if args.wait:
                ctx.stderr.write(
                    f"{PROG}: {args.operation} does not start a run; nothing to wait for\n"
                )
            return ExitCode.OK
        if ctx.mode is not Mode.JSON:
            render_invoke(ctx.stdout, ctx.mode, reply, ctx.now())
            ctx.stdout.flush()
        try:
            final = _follow(ctx, client, reply.run)
        except KeyboardInterrupt:
            raise SyncctlError(
                ExitCode.INTERRUPTED,
                f"stopped waiting; run {reply.run.run_id} carries on in the daemon "
                f"(see `{PROG} status`)",
            ) from None
    return _report_outcome(ctx, reply, final)


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
        ctx.stderr.write(f"{PROG}: {outcome_line(final, ctx.now())}\n")
    return ExitCode.OK if succeeded else ExitCode.FAILED


def _shell(ctx: Context) -> ExitCode:
    from syncctl._connect import Client
    from syncctl._shell import Shell, interactive_lines

    args = ctx.args
    shell = Shell(
        lambda address: Client(address, timeout=ctx.timeout),
        default_address=ctx.address,
        out=ctx.stdout,
        err=ctx.stderr,
        silent=args.verbose == "silent",
    )
    if args.input:
        try:
            with open(args.input, encoding="utf-8") as source:
                return ExitCode(shell.run(source.readlines()))
        except OSError as error:
            raise SyncctlError(ExitCode.USAGE, f"cannot read {args.input}: {error}") from None
    if ctx.stdin.isatty() and not args.non_interactive:
        return ExitCode(shell.run(interactive_lines("$ "), numbered=False))
    return ExitCode(shell.run(ctx.stdin))


_COMMANDS: dict[str, Callable[[Context], ExitCode]] = {
    "beans": _beans,
    "info": _info,
    "get": _get,
    "run": _run,
    "status": _status,
    "shell": _shell,
}
