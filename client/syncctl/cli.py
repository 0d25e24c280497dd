"""syncctl: the operator's client for syncd (what jmxterm was for the JMX beans).

Start-up time matters (operators and scripts call it cold), so this module imports only the
standard library it needs to parse arguments; grpc and the generated code are imported once a
command actually talks to the daemon. The commands themselves are declared in `_table`; this
module builds the parser from that table and dispatches to the handler it names.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO

from syncctl import _table
from syncctl._argtypes import parse_duration, positive_seconds
from syncctl._context import PROG, Context
from syncctl._exit import DESCRIPTIONS, ExitCode, SyncctlError

__all__ = ["PROG", "build_parser", "command_in", "main", "parse_duration", "run"]


# ---- arguments -----------------------------------------------------------------------------


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
        type=positive_seconds,
        default=argparse.SUPPRESS,
        metavar="SECONDS",
        help="deadline for each request (default: 10); following (--wait, logs -f, watch) has none",
    )
    connection.add_argument(
        "--token",
        default=argparse.SUPPRESS,
        metavar="TOKEN",
        help="bearer token for a TCP address (shows in the process list: prefer"
        " --token-file or $SYNCD_TOKEN)",
    )
    connection.add_argument(
        "--token-file",
        default=argparse.SUPPRESS,
        metavar="FILE",
        help="read the bearer token from FILE (default: $SYNCD_TOKEN, else $SYNCD_TOKEN_FILE)",
    )
    connection.add_argument(
        "--tls-ca",
        default=argparse.SUPPRESS,
        metavar="FILE",
        help="connect with TLS, verifying the daemon with this CA bundle (PEM)",
    )
    connection.add_argument(
        "--cert", default=argparse.SUPPRESS, metavar="FILE", help="client certificate (PEM)"
    )
    connection.add_argument(
        "--key", default=argparse.SUPPRESS, metavar="FILE", help="client certificate's key (PEM)"
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

    for entry in _table.COMMANDS:
        if wanted(entry.name):
            sub = command(entry.name, entry.help, json=entry.json, more=entry.more)
            for argument in entry.arguments:
                sub.add_argument(*argument.names, **argument.options)
    return parser


_GLOBAL_OPTIONS = (
    "--address",
    "--timeout",
    "--token",
    "--token-file",
    "--tls-ca",
    "--cert",
    "--key",
)


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
            return token if token in _table.BY_NAME else None
    return None


# ---- running -------------------------------------------------------------------------------


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
        return int(_table.handler(_table.BY_NAME[args.command])(ctx))
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
