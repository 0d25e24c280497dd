"""The ledger, scheduler and stream commands against MiniDaemon: cancel, run-all, history, show,
pause/resume, next, logs, watch, and `status` as a monitoring check."""

from __future__ import annotations

import json

import pytest

from syncctl import _follow
from syncctl._exit import ExitCode
from syncd_api.v1 import management_pb2 as pb

from .conftest import InterruptAfter, MiniDaemon, event, log_json, syncctl


def requests_of(daemon: MiniDaemon, method: str) -> list[object]:
    return [c.request for c in daemon.calls if c.method == method]


def start(daemon: MiniDaemon, bean: str = "Alpha") -> str:
    """Start a run (it stays running until watched) and return its id."""
    result = syncctl(["run", bean, "run"], daemon=daemon)
    assert result.code == 0, result.err
    return result.out.strip()


class TestCancel:
    def test_cancelling_a_run_prints_its_id_when_piped(self, mini_daemon: MiniDaemon) -> None:
        """Piped: the id of the run being cancelled, for scripts; exit 0."""
        run_id = start(mini_daemon)
        result = syncctl(["cancel", "Alpha"], daemon=mini_daemon)
        assert (result.code, result.out) == (0, f"{run_id}\n")
        (request,) = requests_of(mini_daemon, "Cancel")
        assert isinstance(request, pb.CancelRequest)
        assert request.bean == "Alpha"

    def test_cancelling_on_a_tty_explains_the_grace(self, mini_daemon: MiniDaemon) -> None:
        """On a terminal: which run, and that a stubborn job is stopped after cancel_grace."""
        run_id = start(mini_daemon)
        result = syncctl(["cancel", "Alpha"], daemon=mini_daemon, tty=True)
        assert result.out.startswith(f"Cancelling run {run_id} (Alpha alphaJob)")
        assert "cancel_grace" in result.out

    def test_an_idle_bean_is_not_an_error(self, mini_daemon: MiniDaemon) -> None:
        """Nothing to cancel: exit 0, nothing on stdout (piped), a note on stderr."""
        result = syncctl(["cancel", "Alpha"], daemon=mini_daemon)
        assert (result.code, result.out) == (0, "")
        assert "Alpha has no run under way; nothing to cancel" in result.err

    def test_an_idle_bean_as_json(self, mini_daemon: MiniDaemon) -> None:
        """--json: cancelling false and no run."""
        result = syncctl(["cancel", "Alpha", "--json"], daemon=mini_daemon)
        assert json.loads(result.out) == {"bean": "Alpha", "cancelling": False, "run": None}

    def test_wait_follows_the_run_to_its_cancelled_end(self, mini_daemon: MiniDaemon) -> None:
        """--wait: the run id, then its outcome once it has ended; exit 0."""
        run_id = start(mini_daemon)
        result = syncctl(["cancel", "Alpha", "--wait"], daemon=mini_daemon)
        assert (result.code, result.out.splitlines()) == (0, [run_id, "cancelled"])

    def test_wait_json_prints_the_ended_run(self, mini_daemon: MiniDaemon) -> None:
        """--wait --json: one document whose run has ended."""
        start(mini_daemon)
        result = syncctl(["cancel", "Alpha", "--wait", "--json"], daemon=mini_daemon)
        document = json.loads(result.out)
        assert document["run"]["outcome"] == "cancelled"

    def test_unknown_bean_exits_3_with_the_suggestion(self, mini_daemon: MiniDaemon) -> None:
        """A misspelt bean: NOT_FOUND, with the daemon's "did you mean"."""
        result = syncctl(["cancel", "Alpah"], daemon=mini_daemon)
        assert result.code == ExitCode.NOT_FOUND
        assert "did you mean Alpha?" in result.err

    def test_missing_bean_is_a_usage_error(self) -> None:
        """`cancel` needs a bean: exit 2 without asking the daemon."""
        result = syncctl(["cancel"])
        assert result.code == ExitCode.USAGE
        assert "required: bean" in result.err


class TestRunAll:
    def test_piped_prints_the_planned_order(self, mini_daemon: MiniDaemon) -> None:
        """Without --wait: one job per line, in the order the daemon will run them."""
        result = syncctl(["run-all"], daemon=mini_daemon)
        assert (result.code, result.out) == (0, "Alpha\nBroken\n")

    def test_on_a_tty_numbers_the_jobs(self, mini_daemon: MiniDaemon) -> None:
        """On a terminal the plan reads as a numbered list."""
        result = syncctl(["run-all"], daemon=mini_daemon, tty=True)
        assert result.out.splitlines() == [
            "Run all: 2 jobs, one after another:",
            "  1. Alpha",
            "  2. Broken",
        ]

    def test_wait_reports_each_job_and_exits_1_when_one_failed(
        self, mini_daemon: MiniDaemon
    ) -> None:
        """--wait: the plan, then bean/run/outcome per job as it ends; exit 1, summary on stderr."""
        mini_daemon.expect_watchers = 1
        result = syncctl(["run-all", "--wait"], daemon=mini_daemon)
        assert result.code == ExitCode.FAILED
        assert result.out.splitlines() == [
            "Alpha",
            "Broken",
            "Alpha\trun-1\tsuccess",
            "Broken\trun-2\tfailed",
        ]
        assert "run-all: 1 of 2 jobs did not succeed: Broken failed" in result.err

    def test_wait_exits_0_when_every_job_succeeded(self, mini_daemon: MiniDaemon) -> None:
        """All succeeded: exit 0; the terminal shows each run's outcome line."""
        mini_daemon.expect_watchers = 1
        mini_daemon.beans["Broken"].succeeds = True
        result = syncctl(["run-all", "--wait"], daemon=mini_daemon, tty=True)
        assert result.code == 0
        assert result.out.splitlines()[-2:] == [
            "Alpha: run run-1 success in 5s",
            "Broken: run run-2 success in 5s",
        ]

    def test_wait_finds_a_lost_first_job_in_the_ledger(self, mini_daemon: MiniDaemon) -> None:
        """The first job's events never arrived (it ended before the watcher subscribed): once
        the next job starts, the first is looked up in History."""
        mini_daemon.expect_watchers = 1
        mini_daemon.run_all_events = "after-first"
        result = syncctl(["run-all", "--wait"], daemon=mini_daemon)
        assert result.out.splitlines()[2:] == ["Alpha\trun-1\tsuccess", "Broken\trun-2\tfailed"]
        assert "History" in [c.method for c in mini_daemon.calls]

    def test_wait_asks_the_ledger_when_no_events_come(
        self, mini_daemon: MiniDaemon, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """No event at all (every run ended before the subscription): after a quiet spell the
        ledger settles the jobs, so the wait still ends."""
        monkeypatch.setattr(_follow, "RECONCILE_AFTER", 0.05)
        mini_daemon.run_all_events = "none"
        result = syncctl(["run-all", "--wait"], daemon=mini_daemon)
        assert result.code == ExitCode.FAILED
        assert result.out.splitlines()[2:] == ["Alpha\trun-1\tsuccess", "Broken\trun-2\tfailed"]

    def test_wait_json_lists_the_jobs_and_their_runs(self, mini_daemon: MiniDaemon) -> None:
        """--wait --json: one document with the plan and every ended run."""
        mini_daemon.expect_watchers = 1
        result = syncctl(["run-all", "--wait", "--json"], daemon=mini_daemon)
        document = json.loads(result.out)
        assert document["jobs"] == ["Alpha", "Broken"]
        assert [(r["bean"], r["outcome"]) for r in document["runs"]] == [
            ("Alpha", "success"),
            ("Broken", "failed"),
        ]

    def test_wait_stops_with_6_when_the_events_end_early(self, mini_daemon: MiniDaemon) -> None:
        """The daemon goes away before the jobs end: exit 6 naming the jobs not seen to finish."""
        mini_daemon.hold_streams = False  # the event stream ends at once, as at a shutdown
        mini_daemon.run_all_runs = False  # and the ledger has nothing either
        result = syncctl(["run-all", "--wait"], daemon=mini_daemon)
        assert result.code == ExitCode.UNAVAILABLE
        assert "not seen to finish: Alpha, Broken" in result.err

    def test_draining_daemon_exits_6(self, mini_daemon: MiniDaemon) -> None:
        """A daemon shutting down refuses run-all."""
        mini_daemon.draining = True
        assert syncctl(["run-all"], daemon=mini_daemon).code == ExitCode.UNAVAILABLE


class TestHistory:
    def test_piped_has_fixed_columns_newest_first(self, mini_daemon: MiniDaemon) -> None:
        """run id, bean, trigger, started, seconds, outcome, rows read, rows written, error."""
        start(mini_daemon)
        syncctl(["run", "Broken", "run", "--wait"], daemon=mini_daemon)
        result = syncctl(["history"], daemon=mini_daemon)
        assert result.out.splitlines() == [
            "run-2\tBroken\tmanual\t2023-11-14T22:13:20Z\t75.000\tfailed\t0\t0"
            "\tValueError: bad input row 7",
            "run-1\tAlpha\tmanual\t2023-11-14T22:13:20Z\t90.000\trunning\t0\t0\t-",
        ]

    def test_defaults_to_20_runs_of_every_bean(self, mini_daemon: MiniDaemon) -> None:
        """No bean and no --limit: the request asks for every bean's last 20."""
        syncctl(["history"], daemon=mini_daemon)
        (request,) = requests_of(mini_daemon, "History")
        assert isinstance(request, pb.HistoryRequest)
        assert (request.bean, request.limit) == ("", 20)

    def test_bean_and_limit_are_passed_on(self, mini_daemon: MiniDaemon) -> None:
        """`history Alpha --limit 1`: the daemon filters and limits."""
        start(mini_daemon)
        start(mini_daemon, "Broken")
        result = syncctl(["history", "Alpha", "--limit", "1"], daemon=mini_daemon)
        assert [line.split("\t")[1] for line in result.out.splitlines()] == ["Alpha"]

    def test_tty_table(self, mini_daemon: MiniDaemon) -> None:
        """On a terminal: headers, relative start, human duration, rows read/written."""
        syncctl(["run", "Broken", "run", "--wait"], daemon=mini_daemon)
        lines = syncctl(["history"], daemon=mini_daemon, tty=True).out.splitlines()
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

    def test_no_runs_on_a_tty(self, mini_daemon: MiniDaemon) -> None:
        """An empty ledger says so instead of printing a bare header."""
        assert syncctl(["history"], daemon=mini_daemon, tty=True).out == "No runs recorded.\n"

    def test_json(self, mini_daemon: MiniDaemon) -> None:
        """--json: the runs, each with every field."""
        start(mini_daemon)
        document = json.loads(syncctl(["history", "--json"], daemon=mini_daemon).out)
        assert document["runs"][0]["run_id"] == "run-1"
        assert document["runs"][0]["state"] == "running"

    @pytest.mark.parametrize("limit", ["0", "-3", "many"])
    def test_a_bad_limit_is_a_usage_error(self, limit: str) -> None:
        """--limit must be a positive whole number: exit 2, daemon not asked."""
        result = syncctl(["history", "--limit", limit])
        assert result.code == ExitCode.USAGE
        assert "--limit" in result.err

    def test_a_limit_the_daemon_refuses_exits_5_naming_it(self, mini_daemon: MiniDaemon) -> None:
        """Past the daemon's maximum: INVALID_ARGUMENT naming 'limit'."""
        result = syncctl(["history", "--limit", "20000"], daemon=mini_daemon)
        assert result.code == ExitCode.INVALID_ARGUMENT
        assert "parameter 'limit'" in result.err

    def test_unknown_bean_exits_3(self, mini_daemon: MiniDaemon) -> None:
        """A misspelt bean is NOT_FOUND."""
        assert syncctl(["history", "Alpah"], daemon=mini_daemon).code == ExitCode.NOT_FOUND


class TestShow:
    def test_piped_prints_every_field_by_its_json_name(self, mini_daemon: MiniDaemon) -> None:
        """`field<TAB>value`, one per line, in run_dict's order; "-" for an empty one."""
        syncctl(["run", "Broken", "run", "--wait"], daemon=mini_daemon)
        lines = syncctl(["show", "run-1"], daemon=mini_daemon).out.splitlines()
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
        ]
        assert fields["outcome"] == "failed"
        assert fields["ended_at"] == "2023-11-14T22:14:35Z"
        assert fields["slot_time"] == "-"
        assert fields["error_message"] == "bad input row 7"

    def test_tty_lists_the_fields_readably(self, mini_daemon: MiniDaemon) -> None:
        """On a terminal: aligned names, relative times, a duration, rows and progress."""
        syncctl(["run", "Alpha", "run", "--wait"], daemon=mini_daemon)
        out = syncctl(["show", "run-1"], daemon=mini_daemon, tty=True).out
        assert "started     2023-11-14T22:13:20Z (1m30s ago)\n" in out
        assert "duration    1m15s\n" in out
        assert "outcome     success\n" in out
        assert "progress    2/2 (100%)\n" in out

    def test_json(self, mini_daemon: MiniDaemon) -> None:
        """--json: the run's document."""
        start(mini_daemon)
        document = json.loads(syncctl(["show", "run-1", "--json"], daemon=mini_daemon).out)
        assert (document["run_id"], document["bean"]) == ("run-1", "Alpha")

    def test_unknown_run_exits_3(self, mini_daemon: MiniDaemon) -> None:
        """No such run: NOT_FOUND, exit 3, the id on stderr."""
        result = syncctl(["show", "run-99"], daemon=mini_daemon)
        assert result.code == ExitCode.NOT_FOUND
        assert "run-99" in result.err

    def test_missing_run_id_is_a_usage_error(self) -> None:
        """`show` needs a run id."""
        result = syncctl(["show"])
        assert (result.code, "required: run-id" in result.err) == (ExitCode.USAGE, True)


class TestPauseResume:
    def test_pause_a_bean_prints_the_holds(self, mini_daemon: MiniDaemon) -> None:
        """Piped: `bean<TAB>since` for each hold in force."""
        result = syncctl(["pause", "Alpha"], daemon=mini_daemon)
        assert (result.code, result.out) == (0, "Alpha\t2023-11-14T22:13:20Z\n")

    def test_pause_without_a_bean_pauses_the_whole_daemon(self, mini_daemon: MiniDaemon) -> None:
        """No bean: the request names none, and the hold is "*"."""
        result = syncctl(["pause"], daemon=mini_daemon)
        (request,) = requests_of(mini_daemon, "Pause")
        assert isinstance(request, pb.PauseRequest)
        assert request.bean == ""
        assert result.out == "*\t2023-11-14T22:13:20Z\n"

    def test_pause_on_a_tty(self, mini_daemon: MiniDaemon) -> None:
        """On a terminal: what was paused, what that means, and the holds with relative times."""
        syncctl(["pause"], daemon=mini_daemon)
        lines = syncctl(["pause", "Alpha"], daemon=mini_daemon, tty=True).out.splitlines()
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

    def test_resume_lifts_the_hold(self, mini_daemon: MiniDaemon) -> None:
        """After resume, nothing is held: piped prints nothing, the terminal says so."""
        syncctl(["pause", "Alpha"], daemon=mini_daemon)
        assert syncctl(["resume", "Alpha"], daemon=mini_daemon).out == ""
        syncctl(["pause"], daemon=mini_daemon)
        tty = syncctl(["resume"], daemon=mini_daemon, tty=True).out
        assert tty.splitlines() == [
            "Resumed every bean (the whole daemon): scheduled runs go on from now.",
            "Nothing is paused.",
        ]

    def test_json(self, mini_daemon: MiniDaemon) -> None:
        """--json: holds as name -> UTC time."""
        result = syncctl(["pause", "Broken", "--json"], daemon=mini_daemon)
        assert json.loads(result.out) == {"holds": {"Broken": "2023-11-14T22:13:20Z"}}

    def test_unknown_bean_exits_3(self, mini_daemon: MiniDaemon) -> None:
        """A misspelt bean is NOT_FOUND, with the suggestion."""
        result = syncctl(["resume", "Alpah"], daemon=mini_daemon)
        assert result.code == ExitCode.NOT_FOUND
        assert "did you mean Alpha?" in result.err


class TestNext:
    def test_piped_fires_in_utc_order(self, mini_daemon: MiniDaemon) -> None:
        """`at<TAB>bean`, UTC ISO, sorted; the default horizon is one day."""
        result = syncctl(["next"], daemon=mini_daemon)
        assert result.out.splitlines() == [
            "2023-11-14T23:13:20Z\tAlpha",
            "2023-11-15T00:13:20Z\tBroken",
            "2023-11-15T05:13:20Z\tAlpha",
            "2023-11-15T11:13:20Z\tAlpha",
            "2023-11-15T17:13:20Z\tAlpha",
        ]
        (request,) = requests_of(mini_daemon, "ListFires")
        assert isinstance(request, pb.ListFiresRequest)
        assert request.days == 1

    def test_days_widens_the_horizon(self, mini_daemon: MiniDaemon) -> None:
        """--days 2: two days of fires."""
        result = syncctl(["next", "--days", "2"], daemon=mini_daemon)
        assert len(result.out.splitlines()) == 10

    def test_paused_beans_are_left_out(self, mini_daemon: MiniDaemon) -> None:
        """A paused bean has no upcoming fires."""
        syncctl(["pause", "Alpha"], daemon=mini_daemon)
        assert syncctl(["next"], daemon=mini_daemon).out == "2023-11-15T00:13:20Z\tBroken\n"

    def test_tty_adds_relative_times(self, mini_daemon: MiniDaemon) -> None:
        """On a terminal: "in 58m30s" beside each UTC time."""
        lines = syncctl(["next"], daemon=mini_daemon, tty=True).out.splitlines()
        assert lines[0].split() == ["AT", "(UTC)", "BEAN"]
        assert lines[1].split() == ["2023-11-14T23:13:20Z", "(in", "58m30s)", "Alpha"]

    def test_nothing_scheduled_on_a_tty(self, mini_daemon: MiniDaemon) -> None:
        """No fires: a sentence instead of an empty table."""
        syncctl(["pause"], daemon=mini_daemon)
        out = syncctl(["next", "--days", "0.5"], daemon=mini_daemon, tty=True).out
        assert out == "No scheduled runs in the next 0.5 days (paused beans are left out).\n"

    def test_json(self, mini_daemon: MiniDaemon) -> None:
        """--json: the horizon and the fires."""
        document = json.loads(syncctl(["next", "--json"], daemon=mini_daemon).out)
        assert document["days"] == 1
        assert document["fires"][0] == {"at": "2023-11-14T23:13:20Z", "bean": "Alpha"}

    @pytest.mark.parametrize("days", ["0", "-1", "soon"])
    def test_a_bad_days_is_a_usage_error(self, days: str) -> None:
        """--days must be a positive number: exit 2 (0 would silently mean the default)."""
        result = syncctl(["next", "--days", days])
        assert result.code == ExitCode.USAGE
        assert "--days" in result.err

    def test_days_the_daemon_refuses_exit_5_naming_it(self, mini_daemon: MiniDaemon) -> None:
        """More than a year ahead: INVALID_ARGUMENT naming 'days'."""
        result = syncctl(["next", "--days", "400"], daemon=mini_daemon)
        assert result.code == ExitCode.INVALID_ARGUMENT
        assert "parameter 'days'" in result.err


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
    @pytest.fixture(autouse=True)
    def _lines(self, mini_daemon: MiniDaemon) -> None:
        mini_daemon.log_lines = list(LINES)

    def test_piped_passes_the_daemons_json_lines_through(self, mini_daemon: MiniDaemon) -> None:
        """Piped: every line exactly as the daemon logged it; -n 10 by default, no follow."""
        result = syncctl(["logs"], daemon=mini_daemon)
        assert (result.code, result.out) == (0, "".join(line + "\n" for line in LINES))
        (request,) = requests_of(mini_daemon, "TailLogs")
        assert isinstance(request, pb.TailLogsRequest)
        assert (request.lines, request.follow) == (10, False)

    def test_filters_travel_to_the_daemon(self, mini_daemon: MiniDaemon) -> None:
        """-n, --job, --run and --level are applied by the daemon."""
        result = syncctl(
            ["logs", "-n", "1", "--job", "Alpha", "--run", "run-1", "--level", "info"],
            daemon=mini_daemon,
        )
        (request,) = requests_of(mini_daemon, "TailLogs")
        assert isinstance(request, pb.TailLogsRequest)
        assert (request.lines, request.job, request.run_id, request.level) == (
            1,
            "Alpha",
            "run-1",
            "info",
        )
        assert json.loads(result.out)["event"] == "run.started"

    def test_tty_renders_one_readable_line_per_record(self, mini_daemon: MiniDaemon) -> None:
        """Time (ms), level, event, job/run, then key=value fields; nulls left out."""
        result = syncctl(["logs", "-n", "1"], daemon=mini_daemon, tty=True, env={"NO_COLOR": "1"})
        assert result.out == (
            "2023-11-14T22:13:20.123Z  error    run.finished            Broken/run-2  "
            'outcome=failed error="bad input row 7"  [syncd.runs]\n'
        )

    def test_tty_colours_the_level_unless_no_color(self, mini_daemon: MiniDaemon) -> None:
        """Colour is for terminals; NO_COLOR turns it off."""
        coloured = syncctl(["logs", "-n", "1"], daemon=mini_daemon, tty=True).out
        assert "\x1b[1;31merror" in coloured

    def test_json_on_a_tty_is_raw(self, mini_daemon: MiniDaemon) -> None:
        """--json wins over the terminal: the raw lines."""
        result = syncctl(["logs", "-n", "1", "--json"], daemon=mini_daemon, tty=True)
        assert result.out == LINES[-1] + "\n"

    def test_a_bad_level_exits_5_naming_it(self, mini_daemon: MiniDaemon) -> None:
        """The daemon knows the levels: an unknown one is INVALID_ARGUMENT naming 'level'."""
        result = syncctl(["logs", "--level", "loud"], daemon=mini_daemon)
        assert result.code == ExitCode.INVALID_ARGUMENT
        assert "parameter 'level'" in result.err

    def test_an_unknown_job_exits_3(self, mini_daemon: MiniDaemon) -> None:
        """--job names a bean; a misspelt one is NOT_FOUND with the suggestion."""
        result = syncctl(["logs", "--job", "Alpah"], daemon=mini_daemon)
        assert result.code == ExitCode.NOT_FOUND
        assert "did you mean Alpha?" in result.err

    @pytest.mark.parametrize("lines", ["-1", "ten"])
    def test_a_bad_line_count_is_a_usage_error(self, lines: str) -> None:
        """-n takes 0 or more."""
        result = syncctl(["logs", "-n", lines])
        assert result.code == ExitCode.USAGE

    def test_follow_prints_new_lines_and_ctrl_c_exits_0(self, mini_daemon: MiniDaemon) -> None:
        """-f: the backlog, then new lines; Ctrl-C is the normal end of following (exit 0)."""
        new = log_json("bean.paused", job="Alpha")
        mini_daemon.follow_lines = [(new, 0)]
        stdout = InterruptAfter(lines=2)
        result = syncctl(["logs", "-f", "-n", "1"], daemon=mini_daemon, stdout=stdout)
        assert (result.code, result.out) == (0, f"{LINES[-1]}\n{new}\n")
        (request,) = requests_of(mini_daemon, "TailLogs")
        assert isinstance(request, pb.TailLogsRequest)
        assert request.follow

    def test_follow_tells_how_many_lines_were_missed(self, mini_daemon: MiniDaemon) -> None:
        """A slow follower is told on stderr; stdout keeps only the daemon's lines."""
        new = log_json("bean.paused", job="Alpha")
        mini_daemon.follow_lines = [(new, 42)]
        result = syncctl(
            ["logs", "-f", "-n", "0"], daemon=mini_daemon, stdout=InterruptAfter(lines=1)
        )
        assert result.out == new + "\n"
        assert "… 42 lines missed (follower too slow)" in result.err

    def test_follow_ending_early_exits_6(self, mini_daemon: MiniDaemon) -> None:
        """The daemon closing a followed stream (a shutdown) is reported: exit 6."""
        mini_daemon.hold_streams = False
        result = syncctl(["logs", "-f", "-n", "0"], daemon=mini_daemon)
        assert result.code == ExitCode.UNAVAILABLE
        assert "ended the log stream" in result.err


class TestWatch:
    EVENTS = (
        event("run.started", "Alpha", "run-1", message="manual"),
        event("run.progress", "Alpha", "run-1", progress_done=2, progress_total=5),
        event("run.finished", "Broken", "run-2", outcome="failed", message="bad input row 7"),
    )

    @pytest.fixture(autouse=True)
    def _events(self, mini_daemon: MiniDaemon) -> None:
        mini_daemon.initial_events = list(self.EVENTS)

    def test_piped_has_fixed_columns(self, mini_daemon: MiniDaemon) -> None:
        """at, kind, bean, run id, outcome, progress done, progress total, message; Ctrl-C: 0."""
        result = syncctl(["watch"], daemon=mini_daemon, stdout=InterruptAfter(lines=3))
        assert result.code == 0
        assert result.out.splitlines() == [
            "2023-11-14T22:13:20Z\trun.started\tAlpha\trun-1\t-\t0\t0\tmanual",
            "2023-11-14T22:13:20Z\trun.progress\tAlpha\trun-1\t-\t2\t5\t-",
            "2023-11-14T22:13:20Z\trun.finished\tBroken\trun-2\tfailed\t0\t0\tbad input row 7",
        ]

    def test_tty_one_aligned_line_per_event(self, mini_daemon: MiniDaemon) -> None:
        """On a terminal: time, kind, bean, run, then outcome / progress / message."""
        result = syncctl(["watch"], daemon=mini_daemon, tty=True, stdout=InterruptAfter(lines=3))
        lines = result.out.splitlines()
        assert lines[1].split() == [
            "2023-11-14T22:13:20Z",
            "run.progress",
            "Alpha",
            "run-1",
            "2/5",
            "(40%)",
        ]
        assert lines[2].endswith("run-2  failed  bad input row 7")

    def test_json_is_one_object_per_line(self, mini_daemon: MiniDaemon) -> None:
        """--json on a stream: JSON Lines, with the same field names as the proto."""
        result = syncctl(["watch", "--json"], daemon=mini_daemon, stdout=InterruptAfter(lines=3))
        first = json.loads(result.out.splitlines()[0])
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

    def test_a_bean_filters_the_events(self, mini_daemon: MiniDaemon) -> None:
        """`watch Broken` asks the daemon for Broken's events only."""
        result = syncctl(["watch", "Broken"], daemon=mini_daemon, stdout=InterruptAfter(lines=1))
        (request,) = requests_of(mini_daemon, "WatchEvents")
        assert isinstance(request, pb.WatchEventsRequest)
        assert request.bean == "Broken"
        assert "\trun-2\t" in result.out

    def test_missed_events_are_reported_on_stderr(self, mini_daemon: MiniDaemon) -> None:
        """A watcher that fell behind is told how many events it lost."""
        mini_daemon.initial_events = [event("run.started", "Alpha", "run-1", missed=7)]
        result = syncctl(["watch"], daemon=mini_daemon, stdout=InterruptAfter(lines=1))
        assert "… 7 events missed (watcher too slow)" in result.err

    def test_the_stream_ending_exits_6(self, mini_daemon: MiniDaemon) -> None:
        """The daemon closing the stream (a shutdown) ends `watch` with exit 6."""
        mini_daemon.hold_streams = False
        result = syncctl(["watch"], daemon=mini_daemon)
        assert result.code == ExitCode.UNAVAILABLE
        assert len(result.out.splitlines()) == 3

    def test_unknown_bean_exits_3(self, mini_daemon: MiniDaemon) -> None:
        """A misspelt bean is NOT_FOUND."""
        assert syncctl(["watch", "Alpah"], daemon=mini_daemon).code == ExitCode.NOT_FOUND


class TestStatusCheck:
    def test_healthy_beans_exit_0(self, mini_daemon: MiniDaemon) -> None:
        """Nothing failed and nothing is stuck: exit 0, nothing on stderr."""
        syncctl(["run", "Alpha", "run", "--wait"], daemon=mini_daemon)
        result = syncctl(["status"], daemon=mini_daemon)
        assert (result.code, result.err) == (0, "")

    def test_a_failed_last_run_exits_8_and_still_prints_the_table(
        self, mini_daemon: MiniDaemon
    ) -> None:
        """Failing: the table prints as usual, stderr names the bean and why, exit 8."""
        syncctl(["run", "Broken", "run", "--wait"], daemon=mini_daemon)
        result = syncctl(["status"], daemon=mini_daemon)
        assert result.code == ExitCode.BEAN_FAILING
        assert result.out.splitlines()[1].startswith("Broken\tidle\t-\t-\tfailed")
        assert "syncctl: Broken is failing: last run failed: bad input row 7" in result.err

    def test_a_cancelling_run_is_stuck(self, mini_daemon: MiniDaemon) -> None:
        """A run still cancelling when the check looks: stuck, exit 8."""
        start(mini_daemon)
        syncctl(["cancel", "Alpha"], daemon=mini_daemon)
        result = syncctl(["status"], daemon=mini_daemon)
        assert result.code == ExitCode.BEAN_FAILING
        assert "Alpha is stuck: run run-1 is cancelling" in result.err

    def test_stuck_after_flags_a_long_run(self, mini_daemon: MiniDaemon) -> None:
        """--stuck-after 1m: a run under way for 1m30s is stuck."""
        start(mini_daemon)
        result = syncctl(["status", "--stuck-after", "1m"], daemon=mini_daemon)
        assert result.code == ExitCode.BEAN_FAILING
        assert "has been running for 1m30s (over 1m00s)" in result.err

    def test_stuck_after_leaves_a_shorter_run_alone(self, mini_daemon: MiniDaemon) -> None:
        """--stuck-after 2h: the same run is fine; without the flag running is never stuck."""
        start(mini_daemon)
        assert syncctl(["status", "--stuck-after", "2h"], daemon=mini_daemon).code == 0
        assert syncctl(["status"], daemon=mini_daemon).code == 0

    def test_json_marks_the_problem_per_bean(self, mini_daemon: MiniDaemon) -> None:
        """--json: each bean's "problem" (null when fine); exit 8 all the same."""
        syncctl(["run", "Broken", "run", "--wait"], daemon=mini_daemon)
        result = syncctl(["status", "--json"], daemon=mini_daemon)
        beans = json.loads(result.out)["beans"]
        assert result.code == ExitCode.BEAN_FAILING
        assert beans[0]["problem"] is None
        assert beans[1]["problem"] == {
            "kind": "failing",
            "detail": "last run failed: bad input row 7",
        }

    @pytest.mark.parametrize("duration", ["soon", "5x", "0", "1h30"])
    def test_a_bad_stuck_after_is_a_usage_error(self, duration: str) -> None:
        """--stuck-after needs a positive duration with units (or bare seconds)."""
        result = syncctl(["status", "--stuck-after", duration])
        assert result.code == ExitCode.USAGE
        assert "--stuck-after" in result.err
