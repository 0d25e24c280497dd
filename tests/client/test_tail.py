"""Stream lines: the daemon's JSON log lines made readable, and daemon events."""

from __future__ import annotations

import json

import pytest

from syncctl._tail import field_text, pretty_log_line, short_time, use_colour


class TestPrettyLogLine:
    def test_head_then_fields_then_logger(self) -> None:
        """time, level, event, job/run, key=value (nulls dropped), [logger]."""
        line = json.dumps(
            {
                "timestamp": "2026-01-01T03:15:00.123456Z",
                "level": "info",
                "event": "run.finished",
                "logger": "syncd.runs",
                "job": "QuickJob",
                "run_id": "r-1",
                "trigger": "manual",
                "rows_read": 3,
                "error": None,
            }
        )
        assert pretty_log_line(line) == (
            "2026-01-01T03:15:00.123Z  info     run.finished            QuickJob/r-1  "
            "trigger=manual rows_read=3  [syncd.runs]"
        )

    def test_no_job_shows_a_dash(self) -> None:
        """Daemon-wide lines have no job or run: "-" keeps the columns readable."""
        line = json.dumps({"timestamp": "t", "level": "info", "event": "daemon.started"})
        assert pretty_log_line(line) == "t  info     daemon.started          -"

    def test_exception_follows_indented(self) -> None:
        """A traceback keeps its lines, indented under its record."""
        line = json.dumps(
            {"level": "error", "event": "rpc.failed", "exception": "Traceback:\n  boom\nKeyError"}
        )
        rendered = pretty_log_line(line).splitlines()
        assert rendered[1:] == ["    Traceback:", "      boom", "    KeyError"]

    @pytest.mark.parametrize("raw", ["not json", "[1, 2]", ""])
    def test_lines_that_are_not_objects_pass_through(self, raw: str) -> None:
        """Whatever the daemon sent is never lost."""
        assert pretty_log_line(raw) == raw

    def test_colour_marks_the_level(self) -> None:
        """With colour, the level is wrapped in its ANSI colour."""
        line = json.dumps({"level": "warning", "event": "e"})
        assert "\x1b[33mwarning\x1b[0m" in pretty_log_line(line, colour=True)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("plain", "plain"),
        ("two words", '"two words"'),
        ("", '""'),
        (3, "3"),
        (True, "true"),
        (["a", "b"], '["a","b"]'),
        ({"k": 1}, '{"k":1}'),
    ],
)
def test_field_text(value: object, text: str) -> None:
    """Plain words bare; anything a reader could misparse as compact JSON."""
    assert field_text(value) == text


@pytest.mark.parametrize(
    ("stamp", "short"),
    [
        ("2026-01-01T03:15:00.123456Z", "2026-01-01T03:15:00.123Z"),
        ("2026-01-01T03:15:00.1Z", "2026-01-01T03:15:00.100Z"),
        ("2026-01-01T03:15:00Z", "2026-01-01T03:15:00Z"),
        ("2026-01-01T03:15:00.123456+00:00", "2026-01-01T03:15:00.123+00:00"),
    ],
)
def test_short_time(stamp: str, short: str) -> None:
    """Milliseconds are enough on a terminal."""
    assert short_time(stamp) == short


@pytest.mark.parametrize(
    ("environ", "tty", "expected"),
    [
        ({}, True, True),
        ({}, False, False),
        ({"NO_COLOR": ""}, True, False),
        ({"TERM": "dumb"}, True, False),
    ],
)
def test_use_colour(environ: dict[str, str], tty: bool, expected: bool) -> None:
    """Colour only on a terminal that wants it."""
    assert use_colour(environ, tty) is expected
