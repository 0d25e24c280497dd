"""The command table: every syncctl command declared once — its name, help, the Management RPCs
it may call, its arguments, and its handler as a dotted path.

The parser (`cli.build_parser`), the dispatch (`handler`) and the RPC parity test all read this
table. Handlers are named, not imported, so a cold `syncctl status` loads only the module that
runs it; this module itself imports nothing beyond the standard library and `_argtypes`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from syncctl import _argtypes as types

if TYPE_CHECKING:
    from syncctl._context import Context
    from syncctl._exit import ExitCode


# Named tuples, not dataclasses: every cold `syncctl` start builds this table, and the
# dataclasses module with its class generation costs ~1.5 ms of CPU that nothing else needs.
class Arg(NamedTuple):
    """One `add_argument` call: its names and its keyword options, as argparse takes them."""

    names: tuple[str, ...]
    options: dict[str, Any]


def arg(*names: str, **options: Any) -> Arg:
    return Arg(names, options)


class Command(NamedTuple):
    """One syncctl command. `more` extends its own --help beyond the one line in the list;
    `json` says whether it takes --json; `handler` is "module:function"."""

    name: str
    help: str
    rpcs: tuple[str, ...]
    handler: str
    arguments: tuple[Arg, ...] = ()
    more: str = ""
    json: bool = True


_BEAN = arg("bean", help="bean name")
_WHOLE_DAEMON = arg("bean", nargs="?", help="bean name (default: the whole daemon)")

COMMANDS: tuple[Command, ...] = (
    Command(
        "beans",
        "List the daemon's beans.",
        rpcs=("ListBeans",),
        handler="syncctl._commands:beans",
    ),
    Command(
        "info",
        "Describe a bean: its operations and attributes.",
        rpcs=("DescribeBean",),
        handler="syncctl._commands:info",
        arguments=(arg("bean", help="bean name: PersonOwnerRebuildJob or sync.mbean:name=..."),),
    ),
    Command(
        "get",
        "Read a bean's attributes (all of them when none are named).",
        rpcs=("GetAttributes",),
        handler="syncctl._commands:get",
        arguments=(_BEAN, arg("attributes", nargs="*", metavar="attr", help="attribute names")),
    ),
    Command(
        "run",
        "Invoke an operation; a job's trigger starts a run and prints its id.",
        rpcs=("Invoke", "WatchRun", "GetRun", "WatchEvents", "History"),
        handler="syncctl._running:run",
        arguments=(
            _BEAN,
            arg("operation", help="operation name, e.g. personOwnerRebuildJob or run"),
            arg("args", nargs="*", metavar="arg", help="positional arguments, as text"),
            arg(
                "--arg",
                dest="named",
                action="append",
                type=types.name_value,
                default=[],
                metavar="NAME=VALUE",
                help="a named argument (repeatable)",
            ),
            arg(
                "--with-dependants",
                action="store_true",
                help="after this run, run every job that depends on this one (a trigger only); "
                "with --wait, follow them all",
            ),
            arg(
                "--wait",
                action="store_true",
                help="follow the run (and its dependants) to the end; exit 0 only if all succeeded",
            ),
        ),
    ),
    Command(
        "cancel",
        "Cancel a bean's run; not running is not an error.",
        more="A job that ignores the request is stopped after its cancel_grace.",
        rpcs=("Cancel", "WatchRun", "GetRun"),
        handler="syncctl._running:cancel",
        arguments=(
            _BEAN,
            arg(
                "--wait",
                action="store_true",
                help="follow the run until it has ended; then exit 0",
            ),
        ),
    ),
    Command(
        "run-all",
        'The old "Run All Jobs": every enabled job, one after another, in dependency order.',
        rpcs=("RunAll", "WatchEvents", "GetRun", "History"),
        handler="syncctl._running:run_all",
        arguments=(
            arg(
                "--wait",
                action="store_true",
                help="follow every job to its end; exit 0 only if all succeeded",
            ),
        ),
    ),
    Command(
        "status",
        "Every bean: state, current run, last outcome, last success, next run (UTC).",
        more="Exits 8 when the daemon says a bean is failing (its last run failed, timed out "
        "or was interrupted) or stuck (its run is cancelling, or running longer than "
        "--stuck-after, else than its timeout plus cancel grace), so it can serve as a "
        "monitoring check; the table prints anyway.",
        rpcs=("GetStatus",),
        handler="syncctl._commands:status",
        arguments=(
            arg(
                "--stuck-after",
                type=types.duration,
                default=None,
                metavar="DURATION",
                help="count a run under way longer than this as stuck (e.g. 90m, 2h)",
            ),
        ),
    ),
    Command(
        "history",
        "Recent runs, newest first.",
        rpcs=("History", "RepositoryHistory"),
        handler="syncctl._commands:history",
        arguments=(
            arg("bean", nargs="?", help="only this bean's runs"),
            arg(
                "--repository",
                default=None,
                metavar="NAME",
                help="runs of another repository of the cluster; all: every repository's",
            ),
            arg(
                "--limit",
                "-n",
                type=types.positive_int,
                default=20,
                metavar="N",
                help="at most N runs (default: 20)",
            ),
        ),
    ),
    Command(
        "audit",
        "The audit trail, newest first: state changes and refused credentials.",
        rpcs=("ListAudit",),
        handler="syncctl._commands:audit",
        arguments=(
            arg(
                "--since",
                type=types.since,
                default=None,
                metavar="WHEN",
                help="only entries since WHEN: a duration ago (30m, 2h, 7d) or an ISO time",
            ),
            arg(
                "--limit",
                "-n",
                type=types.positive_int,
                default=100,
                metavar="N",
                help="at most N entries (default: 100)",
            ),
        ),
        more="Each entry: when, who (a uid from the kernel, a token's name, a certificate's"
        " subject), their role, from where, what, on which bean, and the outcome.",
    ),
    Command(
        "note",
        "Add a note to a job or run, or list notes (replicated to the cluster).",
        rpcs=("AddNote", "ListNotes"),
        handler="syncctl._commands:notes",
        arguments=(
            arg("subject", nargs="?", help="job:<Bean> (or just the bean) or run:<run-id>"),
            arg("text", nargs="*", help="the note; without it, the subject's notes are listed"),
            arg(
                "--limit",
                "-n",
                type=types.positive_int,
                default=50,
                metavar="N",
                help="list at most N notes (default: 50)",
            ),
        ),
    ),
    Command(
        "sync",
        "Replication: each peer's cursors and lag, and the last SynchronizeJobData table.",
        rpcs=("GetSyncStatus",),
        handler="syncctl._commands:sync",
        arguments=(arg("action", choices=["status"], help="status"),),
    ),
    Command(
        "show",
        "Every field of one run.",
        rpcs=("GetRun",),
        handler="syncctl._commands:show",
        arguments=(arg("run_id", metavar="run-id", help="a run id, as `history` shows it"),),
    ),
    Command(
        "pause",
        "Stop scheduled runs of a bean, or of every bean (manual runs still work).",
        more="Prints the holds now in force.",
        rpcs=("Pause",),
        handler="syncctl._commands:pause",
        arguments=(_WHOLE_DAEMON,),
    ),
    Command(
        "resume",
        "Let a paused bean (or the whole daemon) run on schedule again, from now.",
        more="Prints the holds now in force.",
        rpcs=("Resume",),
        handler="syncctl._commands:resume",
        arguments=(_WHOLE_DAEMON,),
    ),
    Command(
        "next",
        "Upcoming scheduled runs, in UTC order (paused beans left out).",
        rpcs=("ListFires",),
        handler="syncctl._commands:next_fires",
        arguments=(
            arg(
                "--days",
                type=types.positive_days,
                default=1.0,
                metavar="N",
                help="how far ahead, in days (default: 1; the daemon allows up to 366)",
            ),
        ),
    ),
    Command(
        "replicas",
        "Cluster mode: the replicas, each one's last heartbeat and the runs it holds.",
        more="A replica is live, left (stopped cleanly) or lost (no heartbeat within a lease:"
        " stopped or cut off from the database); exit 8 when one is lost. A single daemon"
        " says it is not in cluster mode.",
        rpcs=("ListReplicas",),
        handler="syncctl._commands:replicas",
    ),
    Command(
        "logs",
        "The daemon's last log lines, then (with -f) each new one.",
        more="Readable on a terminal; the daemon's JSON lines as they are when piped or "
        "with --json. Ctrl-C ends -f with exit 0.",
        rpcs=("TailLogs",),
        handler="syncctl._streams:logs",
        arguments=(
            arg("-f", "--follow", action="store_true", help="keep printing new lines"),
            arg(
                "-n",
                "--lines",
                type=types.count,
                default=10,
                metavar="N",
                help="how many past lines first (default: 10; 0: none)",
            ),
            arg("--job", metavar="BEAN", help="only this job's lines"),
            arg("--run", metavar="RUN_ID", help="only this run's lines"),
            arg(
                "--level", metavar="LEVEL", help="at least this level: debug, info, warning, error"
            ),
        ),
    ),
    Command(
        "watch",
        "Daemon events as they happen, one line each.",
        more="Runs started, progressing, finished, skipped, missed; beans paused and "
        "resumed; the daemon draining. --json prints one object per line. Ctrl-C ends it "
        "with exit 0.",
        rpcs=("WatchEvents",),
        handler="syncctl._streams:watch",
        arguments=(arg("bean", nargs="?", help="only this bean's events"),),
    ),
    Command(
        "shell",
        "Read jmxterm commands (open, domain, bean, run, ...) from the terminal or stdin.",
        rpcs=("ListBeans", "DescribeBean", "Invoke", "GetAttributes"),
        handler="syncctl._commands:shell",
        json=False,
        arguments=(
            arg("-n", "--non-interactive", action="store_true", help="no prompt (as jmxterm -n)"),
            arg(
                "-v",
                "--verbose",
                choices=("silent", "brief", "verbose"),
                default="brief",
                help="silent drops the #-messages (as jmxterm -v silent)",
            ),
            arg("-i", "--input", metavar="FILE", help="read commands from FILE instead of stdin"),
        ),
    ),
)

BY_NAME: dict[str, Command] = {command.name: command for command in COMMANDS}


def handler(command: Command) -> Callable[[Context], ExitCode]:
    """Import the command's handler now, and only it."""
    module, _, function = command.handler.partition(":")
    found: Callable[[Context], ExitCode] = getattr(importlib.import_module(module), function)
    return found
