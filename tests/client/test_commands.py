"""The ledger, scheduler and stream commands against the real daemon: cancel, run-all, history,
show, pause/resume, next, logs, watch, and `status` as a monitoring check."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from syncctl import _follow
from syncctl._exit import ExitCode
from syncd.observability.events import Event, EventKind
from syncd_api.v1 import management_pb2 as pb

from .conftest import FIRST_RUN, NOW, STARTED, InterruptAfter, LiveDaemon, syncctl
from .relay import Faults

AT = datetime.fromtimestamp(STARTED, UTC)  # the daemon's clock, as the tests begin
# The id of a run started once the first run has ended (75 s of the daemon's clock later).
SECOND_RUN = r"20231114T221435\.\d{3}-[0-9a-f]{16}"


def requests_of(daemon: LiveDaemon, method: str) -> list[object]:
    return daemon.requests(method)


def start(daemon: LiveDaemon, bean: str = "Alpha") -> str:
    """Start a run (it stays running until released or cancelled) and return its id."""
    return daemon.start(bean)


def ended(result_line: str, bean: str, pattern: str, outcome: str) -> bool:
    """A piped `run-all --wait` line: bean, run id, outcome."""
    return re.fullmatch(f"{bean}\t{pattern}\t{outcome}", result_line) is not None


class TestCancel:
    def test_cancelling_a_run_prints_its_id_when_piped(self, daemon: LiveDaemon) -> None:
        """Piped: the id of the run being cancelled, for scripts; exit 0."""
        run_id = start(daemon)
        result = syncctl(["cancel", "Alpha"], daemon=daemon)
        assert (result.code, result.out) == (0, f"{run_id}\n")
        (request,) = requests_of(daemon, "Cancel")
        assert isinstance(request, pb.CancelRequest)
        assert request.bean == "Alpha"

    def test_cancelling_on_a_tty_explains_the_grace(self, daemon: LiveDaemon) -> None:
        """On a terminal: which run, and that a stubborn job is stopped after cancel_grace."""
        run_id = start(daemon)
        result = syncctl(["cancel", "Alpha"], daemon=daemon, tty=True)
        assert result.out.startswith(f"Cancelling run {run_id} (Alpha alphaJob)")
        assert "cancel_grace" in result.out

    def test_an_idle_bean_is_not_an_error(self, daemon: LiveDaemon) -> None:
        """Nothing to cancel: exit 0, nothing on stdout (piped), a note on stderr."""
        result = syncctl(["cancel", "Alpha"], daemon=daemon)
        assert (result.code, result.out) == (0, "")
        assert "Alpha has no run under way; nothing to cancel" in result.err

    def test_an_idle_bean_as_json(self, daemon: LiveDaemon) -> None:
        """--json: cancelling false and no run."""
        result = syncctl(["cancel", "Alpha", "--json"], daemon=daemon)
        assert json.loads(result.out) == {"bean": "Alpha", "cancelling": False, "run": None}

    def test_wait_follows_the_run_to_its_cancelled_end(self, daemon: LiveDaemon) -> None:
        """--wait: the run id, then its outcome once it has ended; exit 0."""
        run_id = start(daemon)
        result = syncctl(["cancel", "Alpha", "--wait"], daemon=daemon)
        assert (result.code, result.out.splitlines()) == (0, [run_id, "cancelled"])

    def test_wait_json_prints_the_ended_run(self, daemon: LiveDaemon) -> None:
        """--wait --json: one document whose run has ended."""
        start(daemon)
        result = syncctl(["cancel", "Alpha", "--wait", "--json"], daemon=daemon)
        document = json.loads(result.out)
        assert document["run"]["outcome"] == "cancelled"

    def test_unknown_bean_exits_3_with_the_suggestion(self, daemon: LiveDaemon) -> None:
        """A misspelt bean: NOT_FOUND, with the daemon's "did you mean"."""
        result = syncctl(["cancel", "Alpah"], daemon=daemon)
        assert result.code == ExitCode.NOT_FOUND
        assert "did you mean Alpha?" in result.err

    def test_missing_bean_is_a_usage_error(self) -> None:
        """`cancel` needs a bean: exit 2 without asking the daemon."""
        result = syncctl(["cancel"])
        assert result.code == ExitCode.USAGE
        assert "required: bean" in result.err


class TestRunAll:
    def test_piped_prints_the_planned_order(self, daemon: LiveDaemon) -> None:
        """Without --wait: one job per line, in the order the daemon will run them."""
        result = syncctl(["run-all"], daemon=daemon)
        assert (result.code, result.out) == (0, "Alpha\nBroken\n")

    def test_on_a_tty_numbers_the_jobs(self, daemon: LiveDaemon) -> None:
        """On a terminal the plan reads as a numbered list."""
        result = syncctl(["run-all"], daemon=daemon, tty=True)
        assert result.out.splitlines() == [
            "Run all: 2 jobs, one after another:",
            "  1. Alpha",
            "  2. Broken",
        ]

    def test_wait_reports_each_job_and_exits_1_when_one_failed(self, daemon: LiveDaemon) -> None:
        """--wait: the plan, then bean/run/outcome per job as it ends; exit 1, summary on stderr."""
        result = syncctl(["run-all", "--wait"], daemon=daemon)
        assert result.code == ExitCode.FAILED
        lines = result.out.splitlines()
        assert lines[:2] == ["Alpha", "Broken"]
        assert ended(lines[2], "Alpha", FIRST_RUN, "success"), lines
        assert ended(lines[3], "Broken", SECOND_RUN, "failed"), lines
        assert len(lines) == 4
        assert "run-all: 1 of 2 jobs did not succeed: Broken failed" in result.err

    def test_wait_exits_0_when_every_job_succeeded(self, daemon: LiveDaemon) -> None:
        """All succeeded: exit 0; the terminal shows each run's outcome line."""
        daemon.broken.fails = False
        result = syncctl(["run-all", "--wait"], daemon=daemon, tty=True)
        assert result.code == 0
        alpha, broken = result.out.splitlines()[-2:]
        assert re.fullmatch(f"Alpha: run {FIRST_RUN} success in 1m15s", alpha), alpha
        assert re.fullmatch(f"Broken: run {SECOND_RUN} success in 1m15s", broken), broken

    def test_wait_finds_a_lost_first_job_in_the_ledger(
        self, daemon: LiveDaemon, sock_dir: Path
    ) -> None:
        """The first job's events never arrived (it ended before the watcher subscribed): once
        the next job starts, the first is looked up in History."""
        faults = Faults(drop=lambda event: event.bean == "Alpha")
        with daemon.behind_relay(faults, sock_dir) as address:
            result = syncctl(["run-all", "--wait", "--address", address])
        assert faults.dropped, "the relay dropped none of Alpha's events"
        lines = result.out.splitlines()[2:]
        assert ended(lines[0], "Alpha", FIRST_RUN, "success"), lines
        assert ended(lines[1], "Broken", SECOND_RUN, "failed"), lines
        assert "History" in [c.method for c in daemon.calls]

    def test_wait_asks_the_ledger_when_no_events_come(
        self, daemon: LiveDaemon, sock_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """No event at all (every run ended before the subscription): after a quiet spell the
        ledger settles the jobs, so the wait still ends."""
        monkeypatch.setattr(_follow, "RECONCILE_AFTER", 0.05)
        # The ledger's runs count only if they started once RunAll was asked for: the daemon's
        # clock is brought to syncctl's.
        daemon.clock.advance(NOW - STARTED)
        with daemon.behind_relay(Faults(drop=lambda _event: True), sock_dir) as address:
            result = syncctl(["run-all", "--wait", "--address", address])
        assert result.code == ExitCode.FAILED
        lines = result.out.splitlines()[2:]
        assert ended(lines[0], "Alpha", r"20231114T221450\.\d{3}-[0-9a-f]{16}", "success"), lines
        assert ended(lines[1], "Broken", r"20231114T221605\.\d{3}-[0-9a-f]{16}", "failed"), lines

    def test_wait_json_lists_the_jobs_and_their_runs(self, daemon: LiveDaemon) -> None:
        """--wait --json: one document with the plan and every ended run."""
        result = syncctl(["run-all", "--wait", "--json"], daemon=daemon)
        document = json.loads(result.out)
        assert document["jobs"] == ["Alpha", "Broken"]
        assert [(r["bean"], r["outcome"]) for r in document["runs"]] == [
            ("Alpha", "success"),
            ("Broken", "failed"),
        ]

    def test_wait_stops_with_6_when_the_events_end_early(
        self, daemon: LiveDaemon, sock_dir: Path
    ) -> None:
        """The daemon goes away before the jobs end: exit 6 naming the jobs not seen to finish."""
        daemon.hold()  # Alpha's run does not end, so Broken's never starts
        # the event stream ends at once, as at a shutdown
        with daemon.behind_relay(Faults(cut=0), sock_dir) as address:
            result = syncctl(["run-all", "--wait", "--address", address])
        assert result.code == ExitCode.UNAVAILABLE
        assert "not seen to finish: Alpha, Broken" in result.err

    def test_draining_daemon_exits_6(self, daemon: LiveDaemon) -> None:
        """A daemon shutting down refuses run-all."""
        daemon.start("Broken")  # the drain waits for it
        daemon.drain()
        assert syncctl(["run-all"], daemon=daemon).code == ExitCode.UNAVAILABLE


class TestHistory:
    def test_piped_has_fixed_columns_newest_first(self, daemon: LiveDaemon) -> None:
        """run id, bean, trigger, started, seconds, outcome, rows read, rows written, error."""
        syncctl(["run", "Broken", "run", "--wait"], daemon=daemon)
        alpha_id = start(daemon)  # starts once Broken's run has ended, 75 s later
        result = syncctl(["history"], daemon=daemon)
        alpha, broken = (line.split("\t") for line in result.out.splitlines())
        assert alpha[:4] == [alpha_id, "Alpha", "manual", "2023-11-14T22:14:35Z"]
        assert float(alpha[4]) >= 0  # seconds under way, as the daemon measures them
        assert alpha[5:] == ["running", "0", "0", "-"]
        assert re.fullmatch(FIRST_RUN, broken[0])
        assert broken[1:] == [
            "Broken",
            "manual",
            "2023-11-14T22:13:20Z",
            "75.000",
            "failed",
            "0",
            "0",
            "ValueError: bad input row 7",
        ]

    def test_defaults_to_20_runs_of_every_bean(self, daemon: LiveDaemon) -> None:
        """No bean and no --limit: the request asks for every bean's last 20."""
        syncctl(["history"], daemon=daemon)
        (request,) = requests_of(daemon, "History")
        assert isinstance(request, pb.HistoryRequest)
        assert (request.bean, request.limit) == ("", 20)

    def test_bean_and_limit_are_passed_on(self, daemon: LiveDaemon) -> None:
        """`history Alpha --limit 1`: the daemon filters and limits."""
        syncctl(["run", "Alpha", "run", "--wait"], daemon=daemon)
        start(daemon)
        start(daemon, "Broken")
        result = syncctl(["history", "Alpha", "--limit", "1"], daemon=daemon)
        assert [line.split("\t")[1] for line in result.out.splitlines()] == ["Alpha"]
        assert result.out.split("\t")[5] == "running"  # the newest of Alpha's two

    def test_tty_table(self, daemon: LiveDaemon) -> None:
        """On a terminal: headers, relative start, human duration, rows read/written."""
        syncctl(["run", "Broken", "run", "--wait"], daemon=daemon)
        lines = syncctl(["history"], daemon=daemon, tty=True).out.splitlines()
        assert lines[0].split() == [
            "RUN",
            "BEAN",
            "TRIGGER",
            "STARTED",
            "DURATION",
            "OUTCOME",
            "ROWS",
            "R/W",
            "ERROR",
        ]
        assert "2023-11-14T22:13:20Z (1m30s ago)  1m15s     failed" in lines[1]

    def test_no_runs_on_a_tty(self, daemon: LiveDaemon) -> None:
        """An empty ledger says so instead of printing a bare header."""
        assert syncctl(["history"], daemon=daemon, tty=True).out == "No runs recorded.\n"

    def test_json(self, daemon: LiveDaemon) -> None:
        """--json: the runs, each with every field."""
        run_id = start(daemon)
        document = json.loads(syncctl(["history", "--json"], daemon=daemon).out)
        assert document["runs"][0]["run_id"] == run_id
        assert document["runs"][0]["state"] == "running"

    @pytest.mark.parametrize("limit", ["0", "-3", "many"])
    def test_a_bad_limit_is_a_usage_error(self, limit: str) -> None:
        """--limit must be a positive whole number: exit 2, daemon not asked."""
        result = syncctl(["history", "--limit", limit])
        assert result.code == ExitCode.USAGE
        assert "--limit" in result.err

    def test_a_limit_the_daemon_refuses_exits_5_naming_it(self, daemon: LiveDaemon) -> None:
        """Past the daemon's maximum: INVALID_ARGUMENT naming 'limit'."""
        result = syncctl(["history", "--limit", "20000"], daemon=daemon)
        assert result.code == ExitCode.INVALID_ARGUMENT
        assert "parameter 'limit'" in result.err

    def test_unknown_bean_exits_3(self, daemon: LiveDaemon) -> None:
        """A misspelt bean is NOT_FOUND."""
        assert syncctl(["history", "Alpah"], daemon=daemon).code == ExitCode.NOT_FOUND


class TestShow:
    def test_piped_prints_every_field_by_its_json_name(self, daemon: LiveDaemon) -> None:
        """`field<TAB>value`, one per line, in run_dict's order; "-" for an empty one."""
        run_id = syncctl(["run", "Broken", "run", "--wait"], daemon=daemon).out.split()[0]
        lines = syncctl(["show", run_id], daemon=daemon).out.splitlines()
        fields = dict(line.split("\t") for line in lines)
        assert [line.split("\t")[0] for line in lines] == [
            "run_id",
            "bean",
            "operation",
            "arguments",
            "trigger",
            "actor",
            "slot_time",
            "started_at",
            "ended_at",
            "elapsed_seconds",
            "state",
            "outcome",
            "error_type",
            "error_message",
            "rows_read",
            "rows_written",
            "progress_done",
            "progress_total",
            "replica",  # cluster mode: the replica that ran it
        ]
        assert fields["run_id"] == run_id
        assert fields["outcome"] == "failed"
        assert fields["ended_at"] == "2023-11-14T22:14:35Z"
        assert fields["slot_time"] == "-"
        assert fields["error_message"] == "bad input row 7"

    def test_tty_lists_the_fields_readably(self, daemon: LiveDaemon) -> None:
        """On a terminal: aligned names, relative times, a duration, rows and progress."""
        run_id = syncctl(["run", "Alpha", "run", "2", "--wait"], daemon=daemon).out.split()[0]
        out = syncctl(["show", run_id], daemon=daemon, tty=True).out
        assert "started     2023-11-14T22:13:20Z (1m30s ago)\n" in out
        assert "duration    1m15s\n" in out
        assert "outcome     success\n" in out
        assert "progress    2/2 (100%)\n" in out

    def test_json(self, daemon: LiveDaemon) -> None:
        """--json: the run's document."""
        run_id = start(daemon)
        document = json.loads(syncctl(["show", run_id, "--json"], daemon=daemon).out)
        assert (document["run_id"], document["bean"]) == (run_id, "Alpha")

    def test_unknown_run_exits_3(self, daemon: LiveDaemon) -> None:
        """No such run: NOT_FOUND, exit 3, the id on stderr."""
        result = syncctl(["show", "run-99"], daemon=daemon)
        assert result.code == ExitCode.NOT_FOUND
        assert "run-99" in result.err

    def test_missing_run_id_is_a_usage_error(self) -> None:
        """`show` needs a run id."""
        result = syncctl(["show"])
        assert (result.code, "required: run-id" in result.err) == (ExitCode.USAGE, True)


class TestPauseResume:
    def test_pause_a_bean_prints_the_holds(self, daemon: LiveDaemon) -> None:
        """Piped: `bean<TAB>since` for each hold in force."""
        result = syncctl(["pause", "Alpha"], daemon=daemon)
        assert (result.code, result.out) == (0, "Alpha\t2023-11-14T22:13:20Z\n")

    def test_pause_without_a_bean_pauses_the_whole_daemon(self, daemon: LiveDaemon) -> None:
        """No bean: the request names none, and the hold is "*"."""
        result = syncctl(["pause"], daemon=daemon)
        (request,) = requests_of(daemon, "Pause")
        assert isinstance(request, pb.PauseRequest)
        assert request.bean == ""
        assert result.out == "*\t2023-11-14T22:13:20Z\n"

    def test_pause_on_a_tty(self, daemon: LiveDaemon) -> None:
        """On a terminal: what was paused, what that means, and the holds with relative times."""
        syncctl(["pause"], daemon=daemon)
        lines = syncctl(["pause", "Alpha"], daemon=daemon, tty=True).out.splitlines()
        assert lines[0] == "Paused Alpha: scheduled runs wait; manual runs still work."
        assert lines[3].split() == [
            "*",
            "(whole",
            "daemon)",
            "2023-11-14T22:13:20Z",
            "(1m30s",
            "ago)",
        ]
        assert lines[4].startswith("Alpha ")

    def test_resume_lifts_the_hold(self, daemon: LiveDaemon) -> None:
        """After resume, nothing is held: piped prints nothing, the terminal says so."""
        syncctl(["pause", "Alpha"], daemon=daemon)
        assert syncctl(["resume", "Alpha"], daemon=daemon).out == ""
        syncctl(["pause"], daemon=daemon)
        tty = syncctl(["resume"], daemon=daemon, tty=True).out
        assert tty.splitlines() == [
            "Resumed every bean (the whole daemon): scheduled runs go on from now.",
            "Nothing is paused.",
        ]

    def test_json(self, daemon: LiveDaemon) -> None:
        """--json: holds as name -> UTC time."""
        result = syncctl(["pause", "Broken", "--json"], daemon=daemon)
        assert json.loads(result.out) == {"holds": {"Broken": "2023-11-14T22:13:20Z"}}

    def test_unknown_bean_exits_3(self, daemon: LiveDaemon) -> None:
        """A misspelt bean is NOT_FOUND, with the suggestion."""
        result = syncctl(["resume", "Alpah"], daemon=daemon)
        assert result.code == ExitCode.NOT_FOUND
        assert "did you mean Alpha?" in result.err


class TestNext:
    def test_piped_fires_in_utc_order(self, daemon: LiveDaemon) -> None:
        """`at<TAB>bean`, UTC ISO, sorted; the default horizon is one day."""
        result = syncctl(["next"], daemon=daemon)
        assert result.out.splitlines() == [
            "2023-11-15T00:00:00Z\tAlpha",
            "2023-11-15T00:13:00Z\tBroken",
            "2023-11-15T06:00:00Z\tAlpha",
            "2023-11-15T12:00:00Z\tAlpha",
            "2023-11-15T18:00:00Z\tAlpha",
        ]
        (request,) = requests_of(daemon, "ListFires")
        assert isinstance(request, pb.ListFiresRequest)
        assert request.days == 1

    def test_days_widens_the_horizon(self, daemon: LiveDaemon) -> None:
        """--days 2: two days of fires."""
        result = syncctl(["next", "--days", "2"], daemon=daemon)
        assert len(result.out.splitlines()) == 10

    def test_paused_beans_are_left_out(self, daemon: LiveDaemon) -> None:
        """A paused bean has no upcoming fires."""
        syncctl(["pause", "Alpha"], daemon=daemon)
        assert syncctl(["next"], daemon=daemon).out == "2023-11-15T00:13:00Z\tBroken\n"

    def test_tty_adds_relative_times(self, daemon: LiveDaemon) -> None:
        """On a terminal: "in 1h45m" beside each UTC time."""
        lines = syncctl(["next"], daemon=daemon, tty=True).out.splitlines()
        assert lines[0].split() == ["AT", "(UTC)", "BEAN"]
        assert lines[1].split() == ["2023-11-15T00:00:00Z", "(in", "1h45m)", "Alpha"]

    def test_nothing_scheduled_on_a_tty(self, daemon: LiveDaemon) -> None:
        """No fires: a sentence instead of an empty table."""
        syncctl(["pause"], daemon=daemon)
        out = syncctl(["next", "--days", "0.5"], daemon=daemon, tty=True).out
        assert out == "No scheduled runs in the next 0.5 days (paused beans are left out).\n"

    def test_json(self, daemon: LiveDaemon) -> None:
        """--json: the horizon and the fires."""
        document = json.loads(syncctl(["next", "--json"], daemon=daemon).out)
        assert document["days"] == 1
        assert document["fires"][0] == {"at": "2023-11-15T00:00:00Z", "bean": "Alpha"}

    @pytest.mark.parametrize("days", ["0", "-1", "soon"])
    def test_a_bad_days_is_a_usage_error(self, days: str) -> None:
        """--days must be a positive number: exit 2 (0 would silently mean the default)."""
        result = syncctl(["next", "--days", days])
        assert result.code == ExitCode.USAGE
        assert "--days" in result.err

    def test_days_the_daemon_refuses_exit_5_naming_it(self, daemon: LiveDaemon) -> None:
        """More than a year ahead: INVALID_ARGUMENT naming 'days'."""
        result = syncctl(["next", "--days", "400"], daemon=daemon)
        assert result.code == ExitCode.INVALID_ARGUMENT
        assert "parameter 'days'" in result.err


def log_json(event: str, level: str = "info", **fields: object) -> str:
    """One line as the daemon logs it."""
    return json.dumps(
        {
            "timestamp": "2023-11-14T22:13:20.123456Z",
            "level": level,
            "event": event,
            "logger": "syncd.runs",
            **fields,
        }
    )


LINES = [
    log_json("daemon.started", beans=["Alpha", "Broken"]),
    log_json("run.started", job="Alpha", run_id="run-1", trigger="manual"),
    log_json("test.debug", level="debug", job="Alpha", run_id="run-1"),
    log_json(
        "run.finished",
        level="error",
        job="Broken",
        run_id="run-2",
        outcome="failed",
        error="bad input row 7",
        error_type=None,
    ),
]


class TestLogs:
    """The daemon's log hub is handed these lines, as its log would hand them over."""

    @pytest.fixture(autouse=True)
    def _lines(self, daemon: LiveDaemon) -> None:
        daemon.log(*LINES)

    def test_piped_passes_the_daemons_json_lines_through(self, daemon: LiveDaemon) -> None:
        """Piped: every line exactly as the daemon logged it; -n 10 by default, no follow."""
        result = syncctl(["logs"], daemon=daemon)
        assert (result.code, result.out) == (0, "".join(line + "\n" for line in LINES))
        (request,) = requests_of(daemon, "TailLogs")
        assert isinstance(request, pb.TailLogsRequest)
        assert (request.lines, request.follow) == (10, False)

    def test_filters_travel_to_the_daemon(self, daemon: LiveDaemon) -> None:
        """-n, --job, --run and --level are applied by the daemon."""
        result = syncctl(
            ["logs", "-n", "1", "--job", "Alpha", "--run", "run-1", "--level", "info"],
            daemon=daemon,
        )
        (request,) = requests_of(daemon, "TailLogs")
        assert isinstance(request, pb.TailLogsRequest)
        assert (request.lines, request.job, request.run_id, request.level) == (
            1,
            "Alpha",
            "run-1",
            "info",
        )
        assert json.loads(result.out)["event"] == "run.started"

    def test_tty_renders_one_readable_line_per_record(self, daemon: LiveDaemon) -> None:
        """Time (ms), level, event, job/run, then key=value fields; nulls left out."""
        result = syncctl(["logs", "-n", "1"], daemon=daemon, tty=True, env={"NO_COLOR": "1"})
        assert result.out == (
            "2023-11-14T22:13:20.123Z  error    run.finished            Broken/run-2  "
            'outcome=failed error="bad input row 7"  [syncd.runs]\n'
        )

    def test_tty_colours_the_level_unless_no_color(self, daemon: LiveDaemon) -> None:
        """Colour is for terminals; NO_COLOR turns it off."""
        coloured = syncctl(["logs", "-n", "1"], daemon=daemon, tty=True).out
        assert "\x1b[1;31merror" in coloured

    def test_json_on_a_tty_is_raw(self, daemon: LiveDaemon) -> None:
        """--json wins over the terminal: the raw lines."""
        result = syncctl(["logs", "-n", "1", "--json"], daemon=daemon, tty=True)
        assert result.out == LINES[-1] + "\n"

    def test_a_bad_level_exits_5_naming_it(self, daemon: LiveDaemon) -> None:
        """The daemon knows the levels: an unknown one is INVALID_ARGUMENT naming 'level'."""
        result = syncctl(["logs", "--level", "loud"], daemon=daemon)
        assert result.code == ExitCode.INVALID_ARGUMENT
        assert "parameter 'level'" in result.err

    def test_an_unknown_job_exits_3(self, daemon: LiveDaemon) -> None:
        """--job names a bean; a misspelt one is NOT_FOUND with the suggestion."""
        result = syncctl(["logs", "--job", "Alpah"], daemon=daemon)
        assert result.code == ExitCode.NOT_FOUND
        assert "did you mean Alpha?" in result.err

    @pytest.mark.parametrize("lines", ["-1", "ten"])
    def test_a_bad_line_count_is_a_usage_error(self, lines: str) -> None:
        """-n takes 0 or more."""
        result = syncctl(["logs", "-n", lines])
        assert result.code == ExitCode.USAGE

    def test_follow_prints_new_lines_and_ctrl_c_exits_0(self, daemon: LiveDaemon) -> None:
        """-f: the backlog, then new lines; Ctrl-C is the normal end of following (exit 0)."""
        new = log_json("bean.paused", job="Alpha")
        stdout = InterruptAfter(lines=2)
        # Logged once the backlog is out (so it cannot be part of it).
        with daemon.when(stdout.printed, "the backlog line", lambda: daemon.log(new)):
            result = syncctl(["logs", "-f", "-n", "1"], daemon=daemon, stdout=stdout)
        assert (result.code, result.out) == (0, f"{LINES[-1]}\n{new}\n")
        (request,) = requests_of(daemon, "TailLogs")
        assert isinstance(request, pb.TailLogsRequest)
        assert request.follow

    def test_follow_tells_how_many_lines_were_missed(self, daemon: LiveDaemon) -> None:
        """A slow follower is told on stderr; stdout keeps only the daemon's lines."""
        # More lines at once than a follower's queue holds (10,000): 42 are lost.
        burst = [log_json("test.burst", n=n) for n in range(10_042)]
        with daemon.once_following("TailLogs", lambda: daemon.log(*burst)):
            result = syncctl(
                ["logs", "-f", "-n", "0"], daemon=daemon, stdout=InterruptAfter(lines=1)
            )
        assert result.out == burst[0] + "\n"
        assert "… 42 lines missed (follower too slow)" in result.err

    def test_follow_ending_early_exits_6(self, daemon: LiveDaemon, sock_dir: Path) -> None:
        """The daemon closing a followed stream (a shutdown) is reported: exit 6."""
        with daemon.behind_relay(Faults(cut=0), sock_dir) as address:
            result = syncctl(["logs", "-f", "-n", "0", "--address", address])
        assert result.code == ExitCode.UNAVAILABLE
        assert "ended the log stream" in result.err


class TestWatch:
    """The daemon's event hub is handed these events once the watcher is subscribed."""

    EVENTS = (
        Event(kind=EventKind.RUN_STARTED, at=AT, bean="Alpha", run_id="run-1", message="manual"),
        Event(
            kind=EventKind.RUN_PROGRESS,
            at=AT,
            bean="Alpha",
            run_id="run-1",
            progress_done=2,
            progress_total=5,
        ),
        Event(
            kind=EventKind.RUN_FINISHED,
            at=AT,
            bean="Broken",
            run_id="run-2",
            outcome="failed",
            message="bad input row 7",
        ),
    )

    def watch(self, daemon: LiveDaemon, argv: list[str], lines: int, *, tty: bool = False) -> str:
        stdout = InterruptAfter(lines=lines)
        with daemon.once_following("WatchEvents", lambda: daemon.publish(*self.EVENTS)):
            result = syncctl(["watch", *argv], daemon=daemon, tty=tty, stdout=stdout)
        assert result.code == 0, result.err
        return result.out

    def test_piped_has_fixed_columns(self, daemon: LiveDaemon) -> None:
        """at, kind, bean, run id, outcome, progress done, progress total, message; Ctrl-C: 0."""
        assert self.watch(daemon, [], 3).splitlines() == [
            "2023-11-14T22:13:20Z\trun.started\tAlpha\trun-1\t-\t0\t0\tmanual",
            "2023-11-14T22:13:20Z\trun.progress\tAlpha\trun-1\t-\t2\t5\t-",
            "2023-11-14T22:13:20Z\trun.finished\tBroken\trun-2\tfailed\t0\t0\tbad input row 7",
        ]

    def test_tty_one_aligned_line_per_event(self, daemon: LiveDaemon) -> None:
        """On a terminal: time, kind, bean, run, then outcome / progress / message."""
        lines = self.watch(daemon, [], 3, tty=True).splitlines()
        assert lines[1].split() == [
            "2023-11-14T22:13:20Z",
            "run.progress",
            "Alpha",
            "run-1",
            "2/5",
            "(40%)",
        ]
        assert lines[2].endswith("run-2  failed  bad input row 7")

    def test_json_is_one_object_per_line(self, daemon: LiveDaemon) -> None:
        """--json on a stream: JSON Lines, with the same field names as the proto."""
        first = json.loads(self.watch(daemon, ["--json"], 3).splitlines()[0])
        assert first == {
            "kind": "run.started",
            "at": "2023-11-14T22:13:20Z",
            "bean": "Alpha",
            "run_id": "run-1",
            "outcome": None,
            "message": "manual",
            "progress_done": 0,
            "progress_total": 0,
        }

    def test_a_bean_filters_the_events(self, daemon: LiveDaemon) -> None:
        """`watch Broken` asks the daemon for Broken's events only."""
        out = self.watch(daemon, ["Broken"], 1)
        (request,) = requests_of(daemon, "WatchEvents")
        assert isinstance(request, pb.WatchEventsRequest)
        assert request.bean == "Broken"
        assert "\trun-2\t" in out

    def test_real_runs_are_watched(self, daemon: LiveDaemon) -> None:
        """A run that happens while watching: its start and its end, with the run's id."""
        stdout = InterruptAfter(lines=2)
        ran: list[str] = []
        with daemon.once_following("WatchEvents", lambda: ran.append(daemon.run_plain("Broken"))):
            syncctl(["watch", "Broken"], daemon=daemon, stdout=stdout)
        started, finished = (line.split("\t") for line in stdout.getvalue().splitlines())
        assert started[1:4] == ["run.started", "Broken", *ran]
        assert finished[1:5] == ["run.finished", "Broken", *ran, "failed"]

    def test_missed_events_are_reported_on_stderr(self, daemon: LiveDaemon) -> None:
        """A watcher that fell behind is told how many events it lost."""
        # More events at once than a watcher's queue holds (1,000): 7 are lost.
        burst = [Event(kind=EventKind.BEAN_PAUSED, at=AT, bean="Alpha")] * 1007
        stdout = InterruptAfter(lines=1)
        with daemon.once_following("WatchEvents", lambda: daemon.publish(*burst)):
            result = syncctl(["watch"], daemon=daemon, stdout=stdout)
        assert "… 7 events missed (watcher too slow)" in result.err

    def test_the_stream_ending_exits_6(self, daemon: LiveDaemon, sock_dir: Path) -> None:
        """The daemon closing the stream (a shutdown) ends `watch` with exit 6."""
        with daemon.behind_relay(Faults(cut=3), sock_dir) as address:
            follow = daemon.once_following("WatchEvents", lambda: daemon.publish(*self.EVENTS))
            with follow:
                result = syncctl(["watch", "--address", address])
        assert result.code == ExitCode.UNAVAILABLE
        assert len(result.out.splitlines()) == 3

    def test_unknown_bean_exits_3(self, daemon: LiveDaemon) -> None:
        """A misspelt bean is NOT_FOUND."""
        assert syncctl(["watch", "Alpah"], daemon=daemon).code == ExitCode.NOT_FOUND


class TestStatusCheck:
    def test_healthy_beans_exit_0(self, daemon: LiveDaemon) -> None:
        """Nothing failed and nothing is stuck: exit 0, nothing on stderr."""
        syncctl(["run", "Alpha", "run", "--wait"], daemon=daemon)
        result = syncctl(["status"], daemon=daemon)
        assert (result.code, result.err) == (0, "")

    def test_a_failed_last_run_exits_8_and_still_prints_the_table(self, daemon: LiveDaemon) -> None:
        """Failing: the table prints as usual, stderr names the bean and why, exit 8."""
        syncctl(["run", "Broken", "run", "--wait"], daemon=daemon)
        result = syncctl(["status"], daemon=daemon)
        assert result.code == ExitCode.BEAN_FAILING
        assert result.out.splitlines()[1].startswith("Broken\tidle\t-\t-\tfailed")
        assert (
            "syncctl: Broken is failing: last run failed: ValueError: bad input row 7" in result.err
        )

    def test_a_cancelling_run_is_stuck(self, daemon: LiveDaemon) -> None:
        """A run still cancelling when the check looks: stuck, exit 8."""
        daemon.alpha.stubborn = True  # it ignores the cancel (for cancel_grace)
        run_id = start(daemon)
        syncctl(["cancel", "Alpha"], daemon=daemon)
        result = syncctl(["status"], daemon=daemon)
        assert result.code == ExitCode.BEAN_FAILING
        assert f"Alpha is stuck: run {run_id} is cancelling" in result.err

    def test_stuck_after_flags_a_long_run(self, daemon: LiveDaemon) -> None:
        """--stuck-after 1m: a run under way for 1m30s is stuck."""
        start(daemon)
        daemon.clock.advance(90)
        result = syncctl(["status", "--stuck-after", "1m"], daemon=daemon)
        assert result.code == ExitCode.BEAN_FAILING
        assert "has been running for 1m30s (over 1m00s)" in result.err

    def test_stuck_after_leaves_a_shorter_run_alone(self, daemon: LiveDaemon) -> None:
        """--stuck-after 2h: the same run is fine; without the flag running is never stuck."""
        start(daemon)
        assert syncctl(["status", "--stuck-after", "2h"], daemon=daemon).code == 0
        assert syncctl(["status"], daemon=daemon).code == 0

    def test_json_marks_the_problem_per_bean(self, daemon: LiveDaemon) -> None:
        """--json: each bean's "problem" (null when fine); exit 8 all the same."""
        syncctl(["run", "Broken", "run", "--wait"], daemon=daemon)
        result = syncctl(["status", "--json"], daemon=daemon)
        beans = json.loads(result.out)["beans"]
        assert result.code == ExitCode.BEAN_FAILING
        assert beans[0]["problem"] is None
        assert beans[1]["problem"] == {
            "kind": "failing",
            "detail": "last run failed: ValueError: bad input row 7",
        }

    @pytest.mark.parametrize("duration", ["soon", "5x", "0", "1h30"])
    def test_a_bad_stuck_after_is_a_usage_error(self, duration: str) -> None:
        """--stuck-after needs a positive duration with units (or bare seconds)."""
        result = syncctl(["status", "--stuck-after", duration])
        assert result.code == ExitCode.USAGE
        assert "--stuck-after" in result.err
