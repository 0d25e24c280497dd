"""Operator fidelity, against the real daemon: --timeout bounds a stream's set-up, and the
results that read better as lines or a table (reloadConfig, search) are printed that way."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncctl._render import Mode, render_invoke
from syncctl._render_results import SEARCH_HEADERS, render_result, search_rows
from syncd_api.v1 import management_pb2 as pb
from tests.client.conftest import LiveDaemon, syncctl
from tests.client.relay import Faults

PERSON = {
    "personId": 42,
    "fullName": "Ann Smith",
    "currentOwner": "North West",
    "status": "CURRENT",
    "gmcNumber": "1234567",
    "_score": 3.14159,
}
POST = {"id": 7, "nationalPostNumber": "NW/RTV/001", "owner": "North West", "status": "CURRENT"}


@pytest.fixture
def stalled(daemon: LiveDaemon, sock_dir: Path) -> Iterator[str]:
    """The address of a daemon that is up, but whose streams are not answered until the test is
    over (the real daemon behind a relay that holds every stream back)."""
    with daemon.behind_relay(Faults(stall=threading.Event()), sock_dir) as address:
        yield address


class TestTimeoutBoundsStreams:
    @pytest.mark.parametrize(
        "argv",
        [
            ["watch"],
            ["logs", "-f"],
            ["logs", "-n", "3"],
            ["run", "Alpha", "run", "--wait"],
            ["run-all", "--wait"],
        ],
    )
    def test_a_stream_that_is_not_answered_in_time_exits_6(
        self, stalled: str, argv: list[str]
    ) -> None:
        """Following has no deadline, but opening the stream has: --timeout, then exit 6."""
        result = syncctl([*argv, "--timeout", "0.3", "--address", stalled])
        assert result.code == 6, (result.out, result.err)
        assert "did not answer within 0.3s (raise --timeout?)" in result.err

    def test_an_answered_stream_is_followed_past_the_timeout(self, daemon: LiveDaemon) -> None:
        """The deadline is for the set-up only: a run followed to its end still exits 0."""
        result = syncctl(["run", "Alpha", "run", "--wait", "--timeout", "5"], daemon=daemon)
        assert result.code == 0, result.err


class TestReloadConfig:
    REPLY = json.dumps({"changedJobs": ["QuickJob", "FailingJob"], "restartNeeded": ["http"]})

    def test_on_a_terminal_the_changed_jobs_are_lines(self) -> None:
        out = io.StringIO()
        assert render_result(out, Mode.TABLE, "reloadConfig", "Reloaded", self.REPLY)
        assert out.getvalue().splitlines() == [
            "Reloaded: 2 jobs changed",
            "  QuickJob",
            "  FailingJob",
            "Needs a restart to apply:",
            "  http",
        ]

    def test_piped_each_change_is_one_tab_separated_line(self) -> None:
        out = io.StringIO()
        assert render_result(out, Mode.TSV, "reloadConfig", "Reloaded", self.REPLY)
        assert out.getvalue() == "changed\tQuickJob\nchanged\tFailingJob\nrestart\thttp\n"

    def test_nothing_changed_says_so(self) -> None:
        out = io.StringIO()
        empty = json.dumps({"changedJobs": [], "restartNeeded": []})
        assert render_result(out, Mode.TABLE, "reloadConfig", "Reloaded", empty)
        assert out.getvalue() == "Reloaded: 0 jobs changed\n"

    def test_any_other_shape_is_left_to_the_plain_value(self) -> None:
        out = io.StringIO()
        assert not render_result(out, Mode.TABLE, "reloadConfig", "", '["a"]')
        assert out.getvalue() == ""


class TestSearch:
    def test_rows_pick_the_columns_of_either_index(self) -> None:
        """Persons and posts name their columns differently; both fill id..score."""
        assert search_rows([PERSON, POST]) == [
            ("42", "Ann Smith", "North West", "CURRENT", "3.142"),
            ("7", "NW/RTV/001", "North West", "CURRENT", ""),
        ]

    def test_on_a_terminal_the_documents_are_a_table(self) -> None:
        out = io.StringIO()
        text = json.dumps([PERSON, POST])
        assert render_result(out, Mode.TABLE, "search", "2 document(s)", text)
        lines = out.getvalue().splitlines()
        assert lines[0].split() == list(SEARCH_HEADERS)
        assert lines[1].split("  ")[0] == "42"
        assert "Ann Smith" in lines[1] and "3.142" in lines[1]
        assert "gmcNumber" not in out.getvalue()  # a table, not the JSON

    def test_piped_the_documents_stay_json(self) -> None:
        """Scripts and `jq` get the JSON (the caller prints it as it is)."""
        out = io.StringIO()
        assert not render_result(out, Mode.TSV, "search", "", json.dumps([PERSON]))

    def test_no_match_says_so(self) -> None:
        out = io.StringIO()
        assert render_result(out, Mode.TABLE, "search", "0 document(s)", "[]")
        assert out.getvalue() == "0 document(s)\n"
        unbuilt = io.StringIO()
        why = "the persons index has not been built yet: run its index job"
        assert render_result(unbuilt, Mode.TABLE, "search", why, "[]")
        assert unbuilt.getvalue() == why + "\n"

    def test_run_search_on_a_terminal_goes_through_the_table(self) -> None:
        """`syncctl run <bean> search …`: render_invoke hands a search's JSON to the table."""
        reply = pb.InvokeResponse(
            result=pb.Value(json_value=json.dumps([PERSON])), message="1 document(s)"
        )
        table, piped = io.StringIO(), io.StringIO()
        render_invoke(table, Mode.TABLE, reply, 0.0, operation="search")
        render_invoke(piped, Mode.TSV, reply, 0.0, operation="search")
        assert table.getvalue().splitlines()[0].split() == list(SEARCH_HEADERS)
        assert json.loads(piped.getvalue()) == [PERSON]
