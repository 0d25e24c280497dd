"""syncctl's commands: argument errors, and each command against a real (small) gRPC server."""

from __future__ import annotations

import io
import json
import os
import pwd
import re
import subprocess
import sys
from pathlib import Path

import pytest

from syncctl import cli
from syncctl._exit import ExitCode
from syncd_api.v1 import management_pb2 as pb

from .conftest import FIRST_RUN, LiveDaemon, syncctl


class TestUsage:
    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            ([], "required: COMMAND"),
            (["launch"], "invalid choice: 'launch'"),
            (["run", "Alpha"], "required: operation"),
            (["info"], "required: bean"),
            (["run", "Alpha", "alphaJob", "--arg", "rows"], "expected NAME=VALUE, got 'rows'"),
            (["--timeout", "0", "status"], "expected a positive number of seconds"),
            (["status", "--bogus"], "unrecognized arguments: --bogus"),
        ],
    )
    def test_bad_command_lines_exit_2_naming_the_problem(
        self, argv: list[str], message: str
    ) -> None:
        """Usage errors never reach the daemon: exit 2 with argparse's message on stderr."""
        result = syncctl(argv)
        assert result.code == ExitCode.USAGE
        assert message in result.err
        assert result.out == ""

    def test_help_exits_0_and_lists_exit_codes(self) -> None:
        """--help succeeds and documents the exit codes."""
        result = syncctl(["--help"])
        assert result.code == 0
        assert "7   the daemon is not reachable" in result.out

    def test_global_options_are_accepted_after_the_command(self) -> None:
        """`syncctl status --address X` and `syncctl --address X status` are the same."""
        parser = cli.build_parser()
        before = parser.parse_args(["--address", "unix:/a", "--timeout", "3", "status"])
        after = parser.parse_args(["status", "--address", "unix:/a", "--timeout", "3"])
        assert (before.address, before.timeout) == (after.address, after.timeout) == ("unix:/a", 3)

    def test_parsing_does_not_import_grpc(self) -> None:
        """Cold start matters: grpc is imported only when a command talks to the daemon."""
        code = (
            "import sys; from syncctl import cli; cli.build_parser().parse_args(['status']); "
            "assert 'grpc' not in sys.modules, 'grpc imported'"
        )
        subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


class TestUnreachable:
    def test_missing_socket_exits_7_naming_the_socket_path(self, sock_dir: Path) -> None:
        """No daemon at the address: exit 7, and the message says which socket was tried."""
        socket = sock_dir / "run" / "syncd.sock"
        result = syncctl(["status"], env={"SYNCD_STATE_DIR": str(sock_dir)})
        assert result.code == ExitCode.UNREACHABLE
        assert str(socket) in result.err
        assert "No such file or directory" in result.err

    def test_main_reports_unreachable_through_sys_streams(
        self, sock_dir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The console entry point returns 7 and writes the error to stderr."""
        address = f"unix:{sock_dir / 'nothing.sock'}"
        assert cli.main(["beans", "--address", address]) == ExitCode.UNREACHABLE
        assert f"{sock_dir / 'nothing.sock'}" in capsys.readouterr().err


class TestReadCommands:
    def test_beans_piped_is_one_tab_separated_line_per_bean(self, daemon: LiveDaemon) -> None:
        """Piped `beans`: name, object name, aliases, description; "-" for an empty cell."""
        result = syncctl(["beans"], daemon=daemon)
        assert result.code == 0
        assert "Alpha\tsync.mbean:name=Alpha\t-\tFirst job." in result.out.splitlines()
        assert "Broken\tsync.mbean:name=Broken\t-\t-" in result.out.splitlines()

    def test_beans_json(self, daemon: LiveDaemon) -> None:
        """--json prints the bean list as a document."""
        result = syncctl(["beans", "--json"], daemon=daemon)
        beans = {bean["name"]: bean for bean in json.loads(result.out)["beans"]}
        assert beans["Alpha"] == {
            "name": "Alpha",
            "object_name": "sync.mbean:name=Alpha",
            "aliases": [],
            "description": "First job.",
        }

    def test_info_on_a_tty_shows_signatures(self, daemon: LiveDaemon) -> None:
        """`info` reads like MBeanInfo: the object name, operations with types, attributes."""
        result = syncctl(["info", "sync.mbean:name=Alpha"], daemon=daemon, tty=True)
        assert result.code == 0
        assert result.out.startswith("sync.mbean:name=Alpha\n  First job.\n")
        assert "alphaJob(int rows=0)  run" in result.out
        assert "LastSuccessAt" in result.out

    def test_unknown_bean_exits_3_with_the_suggestion(self, daemon: LiveDaemon) -> None:
        """NOT_FOUND: exit 3, and the daemon's "did you mean" reaches stderr."""
        result = syncctl(["info", "Alpah"], daemon=daemon)
        assert result.code == ExitCode.NOT_FOUND
        assert "did you mean Alpha?" in result.err

    def test_get_named_attributes_piped(self, daemon: LiveDaemon) -> None:
        """Piped `get`: name<TAB>value, timestamps in UTC ISO 8601."""
        assert syncctl(["run", "Alpha", "alphaJob", "--wait"], daemon=daemon).code == 0
        result = syncctl(["get", "Alpha", "State", "LastSuccessAt"], daemon=daemon)
        # The run started at STARTED and took 75 s of the daemon's clock.
        assert result.out.splitlines() == ["State\tidle", "LastSuccessAt\t2023-11-14T22:14:35Z"]
        request = daemon.calls[-1].request
        assert isinstance(request, pb.GetAttributesRequest)
        assert list(request.names) == ["State", "LastSuccessAt"]

    def test_get_without_names_reads_every_attribute_as_json(self, daemon: LiveDaemon) -> None:
        """`get <bean>` alone asks for all attributes."""
        assert syncctl(["run", "Alpha", "alphaJob", "--wait"], daemon=daemon).code == 0
        result = syncctl(["get", "Alpha", "--json"], daemon=daemon)
        attributes = json.loads(result.out)["attributes"]
        assert (attributes["State"], attributes["LastSuccessAt"]) == (
            "idle",
            "2023-11-14T22:14:35Z",
        )
        assert "NextRunAt" in attributes
        (request,) = daemon.requests("GetAttributes")
        assert list(request.names) == []

    def test_unknown_attribute_exits_3(self, daemon: LiveDaemon) -> None:
        """A misspelt attribute is NOT_FOUND."""
        assert syncctl(["get", "Alpha", "Sate"], daemon=daemon).code == ExitCode.NOT_FOUND


class TestRun:
    def test_trigger_prints_the_run_id_when_piped(self, daemon: LiveDaemon) -> None:
        """Piped `run`: just the run id, for `id=$(syncctl run …)`."""
        result = syncctl(["run", "Alpha", "alphaJob"], daemon=daemon)
        assert result.code == 0
        assert re.fullmatch(FIRST_RUN + "\n", result.out), result.out

    def test_trigger_on_a_tty_says_just_started(self, daemon: LiveDaemon) -> None:
        """On a terminal the old service's words come back with the run id."""
        result = syncctl(["run", "Alpha", "run"], daemon=daemon, tty=True)
        assert re.fullmatch(f"Just started: run {FIRST_RUN} \\(Alpha alphaJob\\)\n", result.out)

    def test_arguments_travel_as_text_positional_and_named(self, daemon: LiveDaemon) -> None:
        """Positional args stay positional (even with '='); --arg k=v becomes a named one."""
        syncctl(["run", "Alpha", "alphaJob", "5"], daemon=daemon)
        syncctl(["run", "Broken", "brokenJob", "--arg", "rows=6"], daemon=daemon)
        first, second = (c.request for c in daemon.calls if c.method == "Invoke")
        assert isinstance(first, pb.InvokeRequest)
        assert isinstance(second, pb.InvokeRequest)
        assert [a.string_value for a in first.arguments] == ["5"]
        assert not first.named_arguments
        assert not second.arguments
        assert second.named_arguments["rows"].string_value == "6"

    def test_with_dependants_asks_for_the_chain_and_shows_it(self, daemon: LiveDaemon) -> None:
        """--with-dependants sets the request flag; a terminal shows the queued jobs."""
        result = syncctl(["run", "Alpha", "alphaJob", "--with-dependants"], daemon=daemon, tty=True)
        request = daemon.calls[-1].request
        assert isinstance(request, pb.InvokeRequest)
        assert request.with_dependants
        assert result.out.splitlines()[-1] == "then: Broken"  # Broken runs after Alpha

    def test_every_call_notes_its_actor_but_the_run_records_the_kernels_uid(
        self, daemon: LiveDaemon
    ) -> None:
        """The syncd-actor metadata is the client's note (user@host (uid N)); the run's actor is
        what the daemon read from the socket (uid N (user)), not that note."""
        result = syncctl(["run", "Alpha", "alphaJob", "--wait"], daemon=daemon)
        actor = daemon.calls[0].metadata["syncd-actor"]
        assert "(uid " in actor
        assert all(call.metadata["syncd-actor"] == actor for call in daemon.calls)
        shown = json.loads(syncctl(["show", result.out.split()[0], "--json"], daemon=daemon).out)
        assert shown["actor"] == f"uid {os.getuid()} ({pwd.getpwuid(os.getuid()).pw_name})"

    def test_already_running_exits_4_naming_the_active_run(self, daemon: LiveDaemon) -> None:
        """A second trigger while a run is under way: exit 4 and the run id on stderr."""
        run_id = daemon.start()
        result = syncctl(["run", "Alpha", "alphaJob"], daemon=daemon)
        assert result.code == ExitCode.ALREADY_RUNNING
        assert run_id in result.err

    def test_bad_argument_exits_5_naming_the_parameter(self, daemon: LiveDaemon) -> None:
        """INVALID_ARGUMENT: exit 5 and the parameter's name on stderr."""
        result = syncctl(["run", "Alpha", "alphaJob", "many"], daemon=daemon)
        assert result.code == ExitCode.INVALID_ARGUMENT
        assert "parameter 'rows'" in result.err

    def test_draining_daemon_exits_6(self, daemon: LiveDaemon) -> None:
        """A daemon shutting down refuses new runs: exit 6 with its message."""
        daemon.start("Broken")  # the drain waits for it
        daemon.drain()
        result = syncctl(["run", "Alpha", "alphaJob"], daemon=daemon)
        assert result.code == ExitCode.UNAVAILABLE
        assert "shutting down and starts no new runs" in result.err

    def test_non_trigger_result_is_printed_as_a_value(self, daemon: LiveDaemon) -> None:
        """isCurrentlyRunning prints true/false."""
        result = syncctl(["run", "Alpha", "isCurrentlyRunning"], daemon=daemon)
        assert result.out == "false\n"

    def test_wait_exits_0_when_the_run_succeeds(self, daemon: LiveDaemon) -> None:
        """--wait follows the run; piped it prints the id, then the outcome."""
        result = syncctl(["run", "Alpha", "alphaJob", "--wait"], daemon=daemon)
        assert result.code == 0
        assert re.fullmatch(f"{FIRST_RUN}\nsuccess\n", result.out), result.out

    def test_wait_exits_1_and_reports_the_error_when_the_run_fails(
        self, daemon: LiveDaemon
    ) -> None:
        """A failed run: exit 1, the outcome on stdout, the error on stderr."""
        result = syncctl(["run", "Broken", "brokenJob", "--wait"], daemon=daemon)
        assert result.code == ExitCode.FAILED
        run_id, outcome = result.out.splitlines()
        assert re.fullmatch(FIRST_RUN, run_id)
        assert outcome == "failed"
        assert f"run {run_id} failed after 1m15s: ValueError: bad input row 7" in result.err

    def test_wait_on_a_tty_prints_one_outcome_line(self, daemon: LiveDaemon) -> None:
        """On a terminal: "Just started …", then "run … success in 1m15s"."""
        result = syncctl(["run", "Alpha", "alphaJob", "--wait"], daemon=daemon, tty=True)
        run_id = result.out.split()[3]
        assert re.fullmatch(FIRST_RUN, run_id)
        assert result.out.splitlines() == [
            f"Just started: run {run_id} (Alpha alphaJob)",
            f"run {run_id} success in 1m15s",
        ]

    def test_wait_json_prints_the_finished_run(self, daemon: LiveDaemon) -> None:
        """--wait --json: one document whose run is the finished one."""
        result = syncctl(["run", "Broken", "brokenJob", "--wait", "--json"], daemon=daemon)
        document = json.loads(result.out)
        assert re.fullmatch(FIRST_RUN, document["result"])
        assert document["run"]["run_id"] == document["result"]
        assert document["run"]["outcome"] == "failed"
        assert document["run"]["error_message"] == "bad input row 7"
        assert document["run"]["elapsed_seconds"] == 75


class TestShellCommand:
    def test_shell_reads_the_runbook_from_stdin(self, daemon: LiveDaemon) -> None:
        """`syncctl shell < runbook`: values on stdout, no prompt, exit 0."""
        out, err = io.StringIO(), io.StringIO()
        daemon.hold()  # so that isCurrentlyRunning is true
        runbook = "open 1\nbean Alpha\nrun alphaJob\nrun isCurrentlyRunning\n"
        code = cli.run(
            ["shell", "-v", "silent", "--address", daemon.address],
            stdout=out,
            stderr=err,
            stdin=io.StringIO(runbook),
            environ={},
        )
        assert (code, err.getvalue()) == (0, "")
        assert re.fullmatch(f"{FIRST_RUN}\ntrue\n", out.getvalue()), out.getvalue()

    def test_shell_reads_a_file_with_dash_i(self, daemon: LiveDaemon, sock_dir: Path) -> None:
        """-i FILE runs the file's commands; the status is the last failure's."""
        script = sock_dir / "runbook.txt"
        script.write_text("bean Alpha\nget Sate\n", encoding="utf-8")
        result = syncctl(["shell", "-i", str(script)], daemon=daemon)
        assert result.code == ExitCode.NOT_FOUND
        assert "#line 2: bean sync.mbean:name=Alpha has no attribute 'Sate'" in result.err


class TestStatus:
    def test_status_piped_has_fixed_columns(self, daemon: LiveDaemon) -> None:
        """bean, state, run id, elapsed seconds, last outcome, last success, next run."""
        run_id = daemon.start()
        result = syncctl(["status"], daemon=daemon)
        alpha, broken = (line.split("\t") for line in result.out.splitlines())
        assert alpha[:3] == ["Alpha", "running", run_id]
        assert float(alpha[3]) >= 0  # seconds under way, as the daemon measures them
        assert alpha[4:] == ["-", "-", "2023-11-15T00:00:00Z"]
        assert broken == ["Broken", "idle", "-", "-", "-", "-", "2023-11-15T00:13:00Z"]

    def test_status_on_a_tty_is_a_table_with_the_daemon_line(self, daemon: LiveDaemon) -> None:
        """A header line about the daemon, then an aligned table."""
        run_id = daemon.start()
        lines = syncctl(["status"], daemon=daemon, tty=True).out.splitlines()
        assert re.fullmatch(rf"syncd \S+ · pid {os.getpid()} · up 1m30s · 2 beans", lines[0])
        assert lines[2].split() == [
            "BEAN",
            "STATE",
            "RUN",
            "LAST",
            "OUTCOME",
            "LAST",
            "SUCCESS",
            "NEXT",
            "RUN",
        ]
        alpha = lines[3].split()
        assert alpha[:3] == ["Alpha", "running", run_id]
        assert alpha[4:] == ["-", "-", "2023-11-15T00:00:00Z", "(in", "1h45m)"]

    def test_status_json(self, daemon: LiveDaemon) -> None:
        """--json: the daemon and every bean, current run included."""
        run_id = daemon.start()
        document = json.loads(syncctl(["status", "--json"], daemon=daemon).out)
        assert document["daemon"]["pid"] == os.getpid()
        alpha = document["beans"][0]
        assert (alpha["name"], alpha["state"]) == ("Alpha", "running")
        assert alpha["current_run"]["run_id"] == run_id
        assert document["beans"][1]["current_run"] is None


class TestParserShortcut:
    @pytest.mark.parametrize(
        ("argv", "command"),
        [
            (["status"], "status"),
            (["--address", "unix:/a", "--timeout=3", "logs", "-f"], "logs"),
            (["--address=unix:/a", "run-all"], "run-all"),
            (["--help"], None),
            (["--json", "status"], None),
            (["launch"], None),
            (["--address"], None),
            ([], None),
        ],
    )
    def test_command_in_finds_the_command_or_defers(
        self, argv: list[str], command: str | None
    ) -> None:
        """Only global options may precede the command; anything else gets the full parser."""
        assert cli.command_in(argv) == command

    @pytest.mark.parametrize(
        "argv",
        [
            ["status", "--stuck-after", "90m"],
            ["history", "Alpha", "--limit", "5", "--json"],
            ["logs", "-f", "-n", "0", "--job", "Alpha", "--level", "info"],
            ["--address", "unix:/a", "pause"],
            ["next", "--days", "2"],
            ["run", "Alpha", "run", "--arg", "rows=5", "--wait"],
        ],
    )
    def test_the_one_command_parser_parses_as_the_full_one(self, argv: list[str]) -> None:
        """The start-up shortcut changes nothing about what a command line means."""
        full = cli.build_parser().parse_args(argv)
        assert cli.build_parser(cli.command_in(argv)).parse_args(argv) == full


class TestDurations:
    @pytest.mark.parametrize(
        ("text", "seconds"),
        [("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200), ("1h30m", 5400), ("1.5d", 129600)],
    )
    def test_parse_duration(self, text: str, seconds: float) -> None:
        """Bare seconds, or numbers with s/m/h/d units, summed."""
        assert cli.parse_duration(text) == seconds

    @pytest.mark.parametrize("text", ["", "m", "1h30", "5x", "1..5h"])
    def test_bad_durations_are_refused(self, text: str) -> None:
        """Anything else is a ValueError (a usage error on the command line)."""
        with pytest.raises(ValueError):  # noqa: PT011  (the message varies by mistake)
            cli.parse_duration(text)
