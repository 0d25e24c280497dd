"""Parity (style guide §4.18): every RPC of the Management service is used by a syncctl command.

The command table (`_table.COMMANDS`) says which RPCs each command may call. These tests hold
it to the service descriptor (nothing missing, nothing invented) and to behaviour: each command,
run against the real daemon, calls only RPCs it lists, and together the commands call every RPC
the service has.
"""

from __future__ import annotations

import argparse
import json

from syncctl import _table, cli
from syncd_api.v1 import management_pb2 as pb

from .conftest import InterruptAfter, LiveDaemon, syncctl

SERVICE = pb.DESCRIPTOR.services_by_name["Management"]
METHODS = {method.name for method in SERVICE.methods}


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    for action in parser._actions:  # argparse offers no public way to list subcommands
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    raise AssertionError("no subcommands")


def test_every_rpc_has_a_command() -> None:
    """No RPC of the service is left without a syncctl command."""
    used = set().union(*(command.rpcs for command in _table.COMMANDS))
    assert sorted(METHODS - used) == []


def test_the_table_names_only_real_rpcs() -> None:
    """A renamed or removed RPC cannot linger in the table."""
    used = set().union(*(command.rpcs for command in _table.COMMANDS))
    assert sorted(used - METHODS) == []


def test_the_table_covers_exactly_the_commands() -> None:
    """Every command the parser offers has an entry, and every entry is a command."""
    assert _commands(cli.build_parser()) == set(_table.BY_NAME)
    assert len(_table.BY_NAME) == len(_table.COMMANDS)  # no name declared twice


def _last_run(daemon: LiveDaemon) -> str:
    run_id: str = json.loads(syncctl(["history", "--json"], daemon=daemon).out)["runs"][0]["run_id"]
    return run_id


# (argv, stdout lines before a Ctrl-C (0: none), stdin); "{run}" is the newest run's id.
SAMPLES: list[tuple[list[str], int, str]] = [
    (["beans"], 0, ""),
    (["info", "Alpha"], 0, ""),
    (["get", "Alpha"], 0, ""),
    (["run", "Alpha", "run"], 0, ""),
    (["status"], 0, ""),
    (["cancel", "Alpha", "--wait"], 0, ""),
    (["run", "Broken", "run", "--wait"], 0, ""),
    (["history"], 0, ""),
    (["history", "--repository", "all"], 0, ""),
    (["note", "Alpha", "checked", "by", "hand"], 0, ""),
    (["note", "Alpha"], 0, ""),
    (["sync", "status"], 0, ""),
    (["show", "{run}"], 0, ""),
    (["audit", "--since", "1h"], 0, ""),
    (["pause", "Alpha"], 0, ""),
    (["resume", "Alpha"], 0, ""),
    (["next"], 0, ""),
    (["replicas"], 0, ""),
    (["logs"], 0, ""),
    (["watch"], 1, ""),
    (["run-all", "--wait"], 0, ""),
    (["shell"], 0, "bean Alpha\ninfo\nget State\nrun isCurrentlyRunning\n"),
]


def test_the_samples_run_every_command() -> None:
    """The behavioural check below leaves no command out."""
    assert {argv[0] for argv, *_ in SAMPLES} == set(_table.BY_NAME)


def test_commands_call_only_what_they_declare_and_together_every_rpc(
    daemon: LiveDaemon,
) -> None:
    """Run each command against the daemon; compare the RPCs it sent with the table."""
    seen: set[str] = set()
    for template, interrupt_after, stdin in SAMPLES:
        argv = [_last_run(daemon) if word == "{run}" else word for word in template]
        if argv[:2] == ["cancel", "Alpha"]:
            daemon.start()  # something to cancel
        before = len(daemon.calls)
        stdout = InterruptAfter(interrupt_after) if interrupt_after else None
        if argv[0] == "watch":  # a watcher prints only what happens while it watches
            with daemon.once_following("WatchEvents", lambda: daemon.run_plain("Alpha")):
                result = syncctl(argv, daemon=daemon, stdout=stdout, stdin=stdin)
        else:
            result = syncctl(argv, daemon=daemon, stdout=stdout, stdin=stdin)
        assert result.code in (0, 1), (argv, result.err)
        called = {call.method for call in daemon.calls[before:]}
        assert called, argv
        assert called <= set(_table.BY_NAME[argv[0]].rpcs), (argv, called)
        seen |= called
    assert seen == METHODS
