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

from syncctl import _commands
from syncctl._exit import DESCRIPTIONS, ExitCode, SyncctlError

if TYPE_CHECKING:
    from syncctl._connect import Client
    from syncctl._render import Mode

PROG = "syncctl"

# Which Management RPCs each command may call. The parity test checks it both ways: every RPC
# of the service has a command, and running each command calls nothing it does not list here.
RPCS: dict[str, tuple[str, ...]] = {
    "beans": ("ListBeans",),
    "info": ("DescribeBean",),
    "get": ("GetAttributes",),
    "run": ("Invoke", "WatchRun", "GetRun", "WatchEvents", "History"),
    "cancel": ("Cancel", "WatchRun", "GetRun"),
    "run-all": ("RunAll", "WatchEvents", "GetRun", "History"),
    "status": ("GetStatus",),
    "history": ("History",),
    "show": ("GetRun",),
    "pause": ("Pause",),
    "resume": ("Resume",),
    "next": ("ListFires",),
    "logs": ("TailLogs",),
    "watch": ("WatchEvents",),
    "shell": ("ListBeans", "DescribeBean", "Invoke", "GetAttributes"),
}


# ---- arguments -----------------------------------------------------------------------------


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {text!r}")
    return value


def _positive_days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of days, got {text!r}") from None
    if not value > 0:  # 0 would mean the daemon's default (1 day), not what was typed
        raise argparse.ArgumentTypeError(f"expected a positive number of days, got {text!r}")
    return value


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds from "90", "90s", "15m", "2h", "1h30m", "1.5d"; ValueError otherwise."""
    rest = text.strip().lower()
    if not rest:
        raise ValueError("empty duration")
    with contextlib.suppress(ValueError):
        return float(rest)  # bare seconds
    total = 0.0
    number = ""
    for char in rest:
        if char.isdigit() or char == ".":
            number += char
        elif char in _UNITS and number:
            total += float(number) * _UNITS[char]
            number = ""
        else:
            raise ValueError(f"bad duration {text!r}")
    if number:
        raise ValueError(f"bad duration {text!r}: a number needs a unit (s, m, h, d)")
    return total


def _duration(text: str) -> float:
    try:
        value = parse_duration(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a duration like 90s, 15m, 2h or 1h30m, got {text!r}"
        ) from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive duration, got {text!r}")
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


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or (with `only`) one that knows just that command.

    argparse's subparsers are not free (each ArgumentParser looks up its translations), so a
    plain `syncctl status` builds only the command it runs; help and errors use the full one.
    """

    def wanted(name: str) -> bool:
        return only is None or name == only

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
        help="deadline for each request (default: 10); following (--wait, logs -f, watch) has none",
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

    def command(
        name: str, help_text: str, *, json: bool = True, more: str = ""
    ) -> argparse.ArgumentParser:
        """A subcommand; `more` extends its own --help beyond the one line in the list."""
        parents = [connection, as_json] if json else [connection]
        return commands.add_parser(
            name,
            help=help_text,
            description=f"{help_text} {more}".strip(),
            parents=parents,
            formatter_class=_HelpFormatter,
        )

    if wanted("beans"):
        command("beans", "List the daemon's beans.")

    if wanted("info"):
        info = command("info", "Describe a bean: its operations and attributes.")
        info.add_argument("bean", help="bean name: PersonOwnerRebuildJob or sync.mbean:name=...")

    if wanted("get"):
        get = command("get", "Read a bean's attributes (all of them when none are named).")
        get.add_argument("bean", help="bean name")
        get.add_argument("attributes", nargs="*", metavar="attr", help="attribute names")

    if wanted("run"):
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
            help="after this run, run every job that depends on this one (a trigger only); "
            "with --wait, follow them all",
        )
        run.add_argument(
            "--wait",
            action="store_true",
            help="follow the run (and its dependants) to the end; exit 0 only if all succeeded",
        )

    if wanted("cancel"):
        cancel = command(
            "cancel",
            "Cancel a bean's run; not running is not an error.",
            more="A job that ignores the request is stopped after its cancel_grace.",
        )
        cancel.add_argument("bean", help="bean name")
        cancel.add_argument(
            "--wait", action="store_true", help="follow the run until it has ended; then exit 0"
        )

    if wanted("run-all"):
        run_all = command(
            "run-all",
            'The old "Run All Jobs": every enabled job, one after another, in dependency order.',
        )
        run_all.add_argument(
            "--wait",
            action="store_true",
            help="follow every job to its end; exit 0 only if all succeeded",
        )

    if wanted("status"):
        status = command(
            "status",
            "Every bean: state, current run, last outcome, last success, next run (UTC).",
            more="Exits 8 when a bean is failing (its last run failed, timed out or was "
            "interrupted) or stuck (its run is cancelling, or running longer than "
            "--stuck-after), so it can serve as a monitoring check; the table prints anyway.",
        )
        status.add_argument(
            "--stuck-after",
            type=_duration,
            default=None,
            metavar="DURATION",
            help="also count a run under way longer than this as stuck (e.g. 90m, 2h)",
        )

    if wanted("history"):
        history = command("history", "Recent runs, newest first.")
        history.add_argument("bean", nargs="?", help="only this bean's runs")
        history.add_argument(
            "--limit",
            "-n",
            type=_positive_int,
            default=20,
            metavar="N",
            help="at most N runs (default: 20)",
        )

    if wanted("show"):
        show = command("show", "Every field of one run.")
        show.add_argument("run_id", metavar="run-id", help="a run id, as `history` shows it")

    for verb, text in (
        ("pause", "Stop scheduled runs of a bean, or of every bean (manual runs still work)."),
        ("resume", "Let a paused bean (or the whole daemon) run on schedule again, from now."),
    ):
        if wanted(verb):
            held = command(verb, text, more="Prints the holds now in force.")
            held.add_argument("bean", nargs="?", help="bean name (default: the whole daemon)")

    if wanted("next"):
        upcoming = command("next", "Upcoming scheduled runs, in UTC order (paused beans left out).")
        upcoming.add_argument(
            "--days",
            type=_positive_days,
            default=1.0,
            metavar="N",
            help="how far ahead, in days (default: 1; the daemon allows up to 366)",
        )

    if wanted("logs"):
        logs = command(
            "logs",
            "The daemon's last log lines, then (with -f) each new one.",
            more="Readable on a terminal; the daemon's JSON lines as they are when piped or "
            "with --json. Ctrl-C ends -f with exit 0.",
        )
        logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
        logs.add_argument(
            "-n",
            "--lines",
            type=_count,
            default=10,
            metavar="N",
            help="how many past lines first (default: 10; 0: none)",
        )
        logs.add_argument("--job", metavar="BEAN", help="only this job's lines")
        logs.add_argument("--run", metavar="RUN_ID", help="only this run's lines")
        logs.add_argument(
            "--level", metavar="LEVEL", help="at least this level: debug, info, warning, error"
        )

    if wanted("watch"):
        watch = command(
            "watch",
            "Daemon events as they happen, one line each.",
            more="Runs started, progressing, finished, skipped, missed; beans paused and "
            "resumed; the daemon draining. --json prints one object per line. Ctrl-C ends it "
            "with exit 0.",
        )
        watch.add_argument("bean", nargs="?", help="only this bean's events")

    if wanted("shell"):
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


_GLOBAL_OPTIONS = ("--address", "--timeout")


def command_in(argv: Sequence[str]) -> str | None:
    """The command `argv` names, when that is plain to see; None sends it to the full parser.

    Only the global options may come before the command; anything else there (help, a typo)
    is left to the full parser, so its messages stay exactly argparse's.
    """
    i = 0
    while i < len(argv):
        token = argv[i]
        if token in _GLOBAL_OPTIONS:
            i += 2
        elif token.startswith(tuple(f"{o}=" for o in _GLOBAL_OPTIONS)):
            i += 1
        elif token.startswith("-"):
            return None
        else:
            return token if token in RPCS else None
    return None


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
        self.environ = environ
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
    parser = build_parser(command_in(argv))
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

_COMMANDS: dict[str, Callable[[Context], ExitCode]] = {
    "beans": _commands.beans,
    "info": _commands.info,
    "get": _commands.get,
    "run": _commands.run,
    "cancel": _commands.cancel,
    "run-all": _commands.run_all,
    "status": _commands.status,
    "history": _commands.history,
    "show": _commands.show,
    "pause": _commands.pause,
    "resume": _commands.resume,
    "next": _commands.next_fires,
    "logs": _commands.logs,
    "watch": _commands.watch,
    "shell": _commands.shell,
}
