"""`syncctl shell`: jmxterm's command language, parsed and run against the real daemon."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from syncctl._connect import Client
from syncctl._exit import ExitCode, SyncctlError
from syncctl._shell import Command, Shell, parse_line
from syncd_api.v1 import management_pb2 as pb

from .conftest import FIRST_RUN, LiveDaemon, syncctl

RUNBOOK = """\
open 1
domain sync.mbean
bean sync.mbean:name=Alpha
run alphaJob
run isCurrentlyRunning
"""


class TestParseLine:
    @pytest.mark.parametrize("line", ["", "   ", "# open 1", "  #comment"])
    def test_blank_lines_and_comments_are_skipped(self, line: str) -> None:
        """Nothing to run on a blank or # line."""
        assert parse_line(line) is None

    def test_options_come_before_arguments(self) -> None:
        """`-b bean` is an option; what follows the operation is its arguments, dashes and all."""
        assert parse_line("run -b Alpha alphaJob -5 x=1") == Command(
            "run", {"b": "Alpha"}, ("alphaJob", "-5", "x=1")
        )

    def test_long_options_and_inline_values(self) -> None:
        """--bean=X and --bean X mean -b X; -m is a flag."""
        assert parse_line("run --bean=Alpha -m op") == Command(
            "run", {"b": "Alpha", "m": True}, ("op",)
        )
        assert parse_line("get --bean Alpha State") == Command("get", {"b": "Alpha"}, ("State",))

    def test_quotes_group_an_argument(self) -> None:
        """Shell-style quoting keeps spaces inside one argument."""
        assert parse_line("run op 'a b' \"c\"") == Command("run", {}, ("op", "a b", "c"))

    @pytest.mark.parametrize(
        ("line", "message"),
        [
            ("launch now", "unknown command 'launch'"),
            ("run -x op", "run: unknown option -x"),
            ("get -b", "get: option -b needs a value"),
            ("run 'open", "cannot parse"),
        ],
    )
    def test_bad_lines_are_usage_errors(self, line: str, message: str) -> None:
        """A line that cannot be understood is a usage error (exit 2) naming the problem."""
        with pytest.raises(SyncctlError) as caught:
            parse_line(line)
        assert caught.value.code is ExitCode.USAGE
        assert message in caught.value.message


@dataclass
class Session:
    shell: Shell
    out: io.StringIO
    err: io.StringIO


def session(daemon: LiveDaemon, *, silent: bool = False) -> Session:
    out, err = io.StringIO(), io.StringIO()
    shell = Shell(
        lambda address: Client(address, timeout=10),
        default_address=daemon.address,
        out=out,
        err=err,
        silent=silent,
    )
    return Session(shell, out, err)


class TestRunbook:
    def test_the_old_runbook_runs_unchanged(self, daemon: LiveDaemon) -> None:
        """The jmxterm runbook's lines start a run and ask whether it is running."""
        daemon.hold()  # the run stays under way, so isCurrentlyRunning is true
        s = session(daemon)
        assert s.shell.run(RUNBOOK.splitlines()) == 0
        run_id, running = s.out.getvalue().splitlines()
        assert (re.fullmatch(FIRST_RUN, run_id) is not None, running) == (True, "true")
        assert s.err.getvalue().splitlines() == [
            "#Connection to 1 is opened",
            "#domain is set to sync.mbean",
            "#bean is set to sync.mbean:name=Alpha",
            "#calling operation alphaJob of mbean sync.mbean:name=Alpha with params []",
            f"#Just started: run {run_id}",
            "#operation returns: ",
            "#calling operation isCurrentlyRunning of mbean sync.mbean:name=Alpha with params []",
            "#operation returns: ",
        ]

    def test_silent_keeps_values_and_errors_but_drops_messages(self, daemon: LiveDaemon) -> None:
        """-v silent: stdout unchanged, stderr holds only errors."""
        daemon.hold()
        s = session(daemon, silent=True)
        assert s.shell.run([*RUNBOOK.splitlines(), "bean Nope"]) == ExitCode.NOT_FOUND
        run_id, running = s.out.getvalue().splitlines()
        assert (re.fullmatch(FIRST_RUN, run_id) is not None, running) == (True, "true")
        assert s.err.getvalue() == "#line 6: no bean named 'Nope'\n"

    def test_commands_work_without_open(self, daemon: LiveDaemon) -> None:
        """With no `open`, the shell talks to the default daemon."""
        s = session(daemon)
        assert s.shell.run(["run -b Alpha isCurrentlyRunning"]) == 0
        assert s.out.getvalue() == "false\n"

    def test_open_with_an_address_connects_there(self, daemon: LiveDaemon) -> None:
        """`open unix:/path` uses that address, not the default."""
        out, err = io.StringIO(), io.StringIO()
        shell = Shell(
            lambda address: Client(address, timeout=10),
            default_address="unix:/nonexistent/syncd.sock",
            out=out,
            err=err,
        )
        assert shell.run([f"open {daemon.address}", "open"]) == 0
        assert out.getvalue() == f"{daemon.address}\n"

    def test_open_fails_at_once_when_nothing_listens(self, sock_dir: Path) -> None:
        """`open 1` against a missing socket reports it (exit 7) instead of failing later."""
        out, err = io.StringIO(), io.StringIO()
        shell = Shell(
            lambda address: Client(address, timeout=10),
            default_address=f"unix:{sock_dir}/run/syncd.sock",
            out=out,
            err=err,
        )
        assert shell.run(["open 1"]) == ExitCode.UNREACHABLE
        assert f"{sock_dir}/run/syncd.sock" in err.getvalue()

    def test_a_failed_open_leaves_the_shell_not_connected(
        self, daemon: LiveDaemon, sock_dir: Path
    ) -> None:
        """After `open host:port` fails, commands fail with "not connected" (as in jmxterm)
        instead of quietly reaching the default daemon; a later good `open` connects."""
        s = session(daemon)  # the default daemon is up: it must not be reached
        gone = f"unix:{sock_dir}/gone.sock"
        status = s.shell.run(
            [f"open {gone}", "beans", "run -b Alpha isCurrentlyRunning"], numbered=True
        )
        assert status == ExitCode.UNREACHABLE
        errors = [e for e in s.err.getvalue().splitlines() if e.startswith("#line")]
        assert errors[0].startswith("#line 1: cannot reach syncd")
        assert errors[1] == f"#line 2: not connected (open {gone} failed); use open to connect"
        assert errors[2].startswith("#line 3: not connected")
        assert s.out.getvalue() == ""
        assert daemon.calls == []

        again = session(daemon)
        lines = [f"open {gone}", f"open {daemon.address}", "run -b Alpha isCurrentlyRunning"]
        assert again.shell.run(lines) == ExitCode.UNREACHABLE  # the first line's failure
        assert again.out.getvalue() == "false\n"

    def test_a_failed_host_port_open_is_not_connected_either(self, daemon: LiveDaemon) -> None:
        """The same for a TCP address nobody listens on."""
        s = session(daemon)
        assert s.shell.run(["open 127.0.0.1:1", "domains"]) == ExitCode.UNREACHABLE
        assert "#line 2: not connected (open 127.0.0.1:1 failed)" in s.err.getvalue()
        assert daemon.calls == []


class TestCommands:
    def test_domains_and_beans_list_object_names(self, daemon: LiveDaemon) -> None:
        """`domains` prints sync.mbean; `beans` prints each full object name."""
        s = session(daemon)
        assert s.shell.run(["domains", "beans -d sync.mbean"]) == 0
        assert s.out.getvalue().splitlines() == [
            "sync.mbean",
            "sync.mbean:name=Alpha",
            "sync.mbean:name=Broken",
            "sync.mbean:name=Daemon",  # the daemon's own bean
        ]
        assert "#domain = sync.mbean:" in s.err.getvalue()

    def test_unknown_domain_is_not_found(self, daemon: LiveDaemon) -> None:
        """jmxterm's wording for a misspelt domain, exit 3."""
        s = session(daemon)
        assert s.shell.run(["domain java.lang"]) == ExitCode.NOT_FOUND
        assert "Domain java.lang doesn't exist" in s.err.getvalue()

    def test_short_and_domain_relative_bean_names(self, daemon: LiveDaemon) -> None:
        """`bean Alpha` and `bean name=Alpha` (after `domain`) select the same bean."""
        s = session(daemon)
        assert (
            s.shell.run(["bean Alpha", "bean", "domain sync.mbean", "bean name=Broken", "bean"])
            == 0
        )
        assert s.out.getvalue().splitlines() == ["sync.mbean:name=Alpha", "sync.mbean:name=Broken"]

    def test_domain_relative_name_without_a_domain_is_a_usage_error(
        self, daemon: LiveDaemon
    ) -> None:
        """`bean name=X` needs a domain, as in jmxterm."""
        s = session(daemon)
        assert s.shell.run(["bean name=Alpha"]) == ExitCode.USAGE

    def test_info_lists_attributes_and_operations_like_jmxterm(self, daemon: LiveDaemon) -> None:
        """`info`: "# attributes" and "# operations" with %N indexes, sorted by name."""
        s = session(daemon)
        s.shell.run(["info -b Alpha"])
        lines = s.out.getvalue().splitlines()
        split = lines.index("# operations")
        attributes, operations = lines[1:split], lines[split + 1 :]
        assert lines[0] == "# attributes"
        assert "  %5   - LastSuccessAt (timestamp, r)" in attributes
        assert "  %8   - State (string, r)" in attributes
        assert "  %0   - run alphaJob(int rows)" in operations
        assert "  %3   - bool isCurrentlyRunning()" in operations
        names = [line.split(" - ")[1].split(" (")[0] for line in attributes]
        assert names == sorted(names)
        assert [line.split()[0] for line in attributes + operations] == [
            *(f"%{n}" for n in range(len(attributes))),
            *(f"%{n}" for n in range(len(operations))),
        ]

    def test_get_prints_name_equals_value(self, daemon: LiveDaemon) -> None:
        """`get` prints `Name = value;` lines; `*` reads them all."""
        s = session(daemon)
        assert syncctl(["run", "Alpha", "run", "--wait"], daemon=daemon).code == 0
        assert s.shell.run(["bean Alpha", "get State", "get *"]) == 0
        lines = s.out.getvalue().splitlines()
        assert lines[:2] == ["State = idle;", "State = idle;"]
        assert "LastSuccessAt = 2023-11-14T22:14:35Z;" in lines[2:]
        assert "CurrentRunId = null;" in lines[2:]

    def test_run_passes_arguments_positionally_as_text(self, daemon: LiveDaemon) -> None:
        """`run op 5` sends "5" as the first positional argument."""
        s = session(daemon)
        assert s.shell.run(["run -b Alpha alphaJob 5"]) == 0
        request = daemon.calls[-1].request
        assert isinstance(request, pb.InvokeRequest)
        assert [a.string_value for a in request.arguments] == ["5"]
        assert "with params [5]" in s.err.getvalue()

    @pytest.mark.parametrize("line", ["run alphaJob", "info", "get State"])
    def test_bean_commands_need_a_bean(self, daemon: LiveDaemon, line: str) -> None:
        """Without `bean` or -b there is nothing to act on: a usage error."""
        s = session(daemon)
        assert s.shell.run([line]) == ExitCode.USAGE
        assert "-b option or bean command" in s.err.getvalue()


class TestErrorsAndExit:
    def test_errors_are_reported_and_the_shell_carries_on(self, daemon: LiveDaemon) -> None:
        """A failing line prints its error; later lines still run."""
        s = session(daemon)
        code = s.shell.run(["bean Alpah", "bean Alpha", "run isCurrentlyRunning"])
        assert code == ExitCode.NOT_FOUND
        assert "#line 1: no bean named 'Alpah'; did you mean Alpha?" in s.err.getvalue()
        assert s.out.getvalue() == "false\n"

    def test_exit_status_is_the_last_failure(self, daemon: LiveDaemon) -> None:
        """Two failures: the later one's code is the shell's exit status."""
        daemon.hold()
        s = session(daemon)
        lines = ["bean Alpha", "run alphaJob", "run alphaJob", "frobnicate"]
        assert s.shell.run(lines) == ExitCode.USAGE
        assert "Already running" in s.err.getvalue()

    def test_already_running_in_the_shell_is_exit_4(self, daemon: LiveDaemon) -> None:
        """The runbook's trigger, twice: the second is refused with the active run id."""
        daemon.hold()
        s = session(daemon)
        assert (
            s.shell.run(["bean Alpha", "run alphaJob", "run alphaJob"]) == ExitCode.ALREADY_RUNNING
        )
        run_id = s.out.getvalue().strip()
        assert re.fullmatch(FIRST_RUN, run_id)
        assert run_id in s.err.getvalue().splitlines()[-1]

    def test_quit_stops_reading(self, daemon: LiveDaemon) -> None:
        """Lines after `quit` are not run."""
        s = session(daemon)
        assert s.shell.run(["quit", "bogus command"]) == 0
        assert s.err.getvalue() == "#bye\n"

    def test_help_lists_the_commands(self, daemon: LiveDaemon) -> None:
        """`help` prints every command."""
        s = session(daemon)
        s.shell.run(["help"])
        listed = {line.split()[0].rstrip(",") for line in s.out.getvalue().splitlines()[1:-1]}
        assert {
            "open",
            "close",
            "domains",
            "domain",
            "beans",
            "bean",
            "info",
            "get",
            "run",
        } <= listed
        assert {"help", "exit"} <= listed
