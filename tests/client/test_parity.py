"""Parity (style guide §4.18): every RPC of the Management service is used by a syncctl command.

The command table (`_table.COMMANDS`) says which RPCs each command may call. These tests hold it to the service descriptor
(nothing missing, nothing invented) and to behaviour: each command, run against MiniDaemon,
calls only RPCs it lists, and together the commands call every RPC the service has.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import pytest

from syncctl import _table, cli
from syncd_api.v1 import management_pb2 as pb

from .conftest import InterruptAfter, MiniDaemon, event, log_json, syncctl

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


def _prepare_watch(daemon: MiniDaemon) -> None:
    daemon.initial_events = [event("run.started", "Alpha", "run-9", message="manual")]


def _prepare_run_all(daemon: MiniDaemon) -> None:
    daemon.initial_events = []
    daemon.expect_watchers = 1


# (argv, setup, stdout lines before a Ctrl-C (0: none), stdin)
SAMPLES: list[tuple[list[str], Callable[[MiniDaemon], None] | None, int, str]] = [
    (["beans"], None, 0, ""),
    (["info", "Alpha"], None, 0, ""),
    (["get", "Alpha"], None, 0, ""),
    (["run", "Alpha", "run"], None, 0, ""),
    (["status"], None, 0, ""),
    (["cancel", "Alpha", "--wait"], None, 0, ""),
    (["run", "Broken", "run", "--wait"], None, 0, ""),
    (["history"], None, 0, ""),
    (["show", "run-1"], None, 0, ""),
    (["pause", "Alpha"], None, 0, ""),
    (["resume", "Alpha"], None, 0, ""),
    (["next"], None, 0, ""),
    (["logs"], None, 0, ""),
    (["watch"], _prepare_watch, 1, ""),
    (["run-all", "--wait"], _prepare_run_all, 0, ""),
    (["shell"], None, 0, "bean Alpha\ninfo\nget State\nrun isCurrentlyRunning\n"),
]


def test_the_samples_run_every_command() -> None:
    """The behavioural check below leaves no command out."""
    assert {argv[0] for argv, *_ in SAMPLES} == set(_table.BY_NAME)


def test_commands_call_only_what_they_declare_and_together_every_rpc(
    mini_daemon: MiniDaemon,
) -> None:
    """Run each command for real; compare the RPCs the server saw with the table."""
    mini_daemon.log_lines = [log_json("daemon.started")]
    seen: set[str] = set()
    for argv, prepare, interrupt_after, stdin in SAMPLES:
        if prepare is not None:
            prepare(mini_daemon)
        before = len(mini_daemon.calls)
        stdout = InterruptAfter(interrupt_after) if interrupt_after else None
        result = syncctl(argv, daemon=mini_daemon, stdout=stdout, stdin=stdin)
        assert result.code in (0, 1), (argv, result.err)
        called = {call.method for call in mini_daemon.calls[before:]}
        assert called, argv
        assert called <= set(_table.BY_NAME[argv[0]].rpcs), (argv, called)
        seen |= called
    assert seen == METHODS


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_rpc_is_served_by_mini_daemon(method: str) -> None:
    """MiniDaemon implements the whole service, so the check above can see every call."""
    assert method in vars(MiniDaemon)
