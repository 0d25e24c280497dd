"""PersonRecordStatusJob: the status rule, the date modes and the checks on the argument."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from syncd.beans.model import Operation, Result
from syncd.errors import ConfigError, InvalidArgumentError
from syncd.job import PackContext
from syncd_tis import PACK, TisSettings, _jobs
from syncd_tis._db import RetryPolicy
from syncd_tis._record_status import Selection, recompute, selection, validate_date_override
from syncd_tis._schema import person
from tests.tis.conftest import Db

TODAY = date(2026, 3, 10)
STAMP = datetime(2026, 1, 1, 12, 0)
POLICY = RetryPolicy(attempts=1, initial_delay=0.0, max_delay=0.0)


def day(offset: int) -> date:
    return TODAY + timedelta(days=offset)


def run(db: Db, sel: Selection) -> tuple[int, int]:
    return recompute(db.engine, db.context(), sel=sel, today=TODAY, page_size=2, policy=POLICY)


def person_with(db: Db, status: str | None, *memberships: tuple[date | None, date | None]) -> int:
    p = db.person(status=status)
    with db.engine.begin() as conn:
        conn.execute(update(person).where(person.c.id == p).values(amendedDate=STAMP))
    programme = db.programme("London")
    for start, end in memberships:
        db.membership(p, programme, start, end)
    return p


@pytest.fixture
def people(db: Db) -> dict[str, int]:
    """One person per situation, each with a status that may be stale."""
    return {
        "started today": person_with(db, "INACTIVE", (day(0), day(900))),
        "ended yesterday": person_with(db, "CURRENT", (day(-900), day(-1))),
        "stale, no change today": person_with(db, "INACTIVE", (day(-100), day(100))),
        "right already": person_with(db, "CURRENT", (day(0), day(5))),
        "no membership": person_with(db, "CURRENT"),
        "open-ended, started today": person_with(db, "CURRENT", (day(0), None)),
        "past and current": person_with(db, None, (day(-900), day(-1)), (day(-1), day(30))),
    }


def statuses(db: Db) -> dict[int, str | None]:
    return {pid: status for pid, (status, _) in db.persons().items()}


class TestModes:
    def test_today_visits_memberships_that_started_today_or_ended_yesterday(
        self, db: Db, people: dict[str, int]
    ) -> None:
        """Blank: only persons whose membership changed state overnight are looked at."""
        visited, changed = run(db, Selection(TODAY))
        after = statuses(db)
        assert after[people["started today"]] == "CURRENT"
        assert after[people["ended yesterday"]] == "INACTIVE"
        assert after[people["open-ended, started today"]] == "INACTIVE"  # no end: not current
        assert after[people["past and current"]] == "CURRENT"
        assert after[people["stale, no change today"]] == "INACTIVE"  # not selected today
        assert after[people["no membership"]] == "CURRENT"  # never visited
        assert (visited, changed) == (5, 4)

    def test_any_visits_every_person_with_a_membership(
        self, db: Db, people: dict[str, int]
    ) -> None:
        """ANY catches up whatever was missed, but leaves persons without memberships alone."""
        visited, changed = run(db, Selection(None))
        after = statuses(db)
        assert after[people["stale, no change today"]] == "CURRENT"
        assert after[people["no membership"]] == "CURRENT"
        assert (visited, changed) == (6, 5)

    def test_a_date_selects_by_that_date_but_judges_by_today(self, db: Db) -> None:
        """D picks memberships that started on D or ended on D-1; the status uses today."""
        started = person_with(db, "INACTIVE", (day(-30), day(30)))
        ended = person_with(db, "CURRENT", (day(-400), day(-31)))
        other = person_with(db, "INACTIVE", (day(-29), day(30)))
        visited, _ = run(db, Selection(day(-30)))
        assert statuses(db) == {started: "CURRENT", ended: "INACTIVE", other: "INACTIVE"}
        assert visited == 2

    def test_only_changed_rows_are_written_and_their_amended_date_bumped(
        self, db: Db, people: dict[str, int]
    ) -> None:
        """amendedDate moves on the rows whose status changed, and nowhere else."""
        run(db, Selection(None))
        after = db.persons()
        assert after[people["right already"]][1] == STAMP
        assert after[people["no membership"]][1] == STAMP
        assert after[people["started today"]][1] > STAMP

    def test_a_deleted_marker_is_recomputed_like_any_other_status(self, db: Db) -> None:
        """As in the old job (and TCS on every membership save): the rule overwrites DELETE."""
        p = person_with(db, "DELETE", (day(0), day(10)))
        run(db, Selection(TODAY))
        assert statuses(db)[p] == "CURRENT"

    def test_the_body_runs_for_today_by_default(self, db: Db) -> None:
        """With no argument the bean looks at today's (UTC) changes."""
        today = _jobs.utc_today()
        p = person_with(db, "INACTIVE", (today, today + timedelta(days=9)))
        ctx = db.context()
        _jobs.person_record_status(ctx)
        assert statuses(db)[p] == "CURRENT"
        assert (ctx.rows_read, ctx.rows_written) == (1, 1)
        assert ctx.progress[-1] == (1, 1)

    def test_none_uses_the_configured_override(self, db: Db) -> None:
        """NONE means record_status_date_override: here ANY."""
        p = person_with(db, "INACTIVE", (date(2001, 1, 1), date(2999, 1, 1)))
        _jobs.person_record_status(
            db.context({"dateOverride": "NONE"}, record_status_date_override="ANY")
        )
        assert statuses(db)[p] == "CURRENT"

    def test_an_invalid_argument_fails_before_touching_the_database(self, db: Db) -> None:
        """A body started with a bad date raises and changes nothing."""
        p = person_with(db, "INACTIVE", (date(2001, 1, 1), date(2999, 1, 1)))
        with pytest.raises(ValueError, match="2024-02-30"):
            _jobs.person_record_status(db.context({"dateOverride": "2024-02-30"}))
        assert statuses(db)[p] == "INACTIVE"


class TestArgument:
    @pytest.mark.parametrize(
        ("given", "configured", "expected"),
        [
            (None, "", Selection(TODAY)),
            ("", "", Selection(TODAY)),
            ("  ", "", Selection(TODAY)),
            ("any", "", Selection(None)),
            ("ANY", "", Selection(None)),
            ("2024-02-29", "", Selection(date(2024, 2, 29))),
            ("NONE", "", Selection(TODAY)),
            ("none", "ANY", Selection(None)),
            ("NONE", "2025-01-02", Selection(date(2025, 1, 2))),
        ],
    )
    def test_each_mode_selects_as_documented(
        self, given: str | None, configured: str, expected: Selection
    ) -> None:
        """blank = today, a date, ANY, NONE = the configured override."""
        assert selection(given, configured=configured, today=TODAY) == expected

    @pytest.mark.parametrize(
        "bad", ["2024-02-30", "20240229", "2024-2-9", "yesterday", "2024-W09-1"]
    )
    def test_anything_else_is_refused(self, bad: str) -> None:
        """Invalid dates and other words are refused with the accepted forms named."""
        with pytest.raises(ValueError, match="YYYY-MM-DD, ANY or NONE"):
            validate_date_override(bad)

    def test_the_operation_rejects_a_bad_date_naming_the_parameter(self, tmp_path: Path) -> None:
        """Bound through the bean's operation, a bad date is INVALID_ARGUMENT for dateOverride."""
        specs = {s.name: s for s in PACK.build(PackContext(state_dir=tmp_path, settings=None))}
        spec = specs["PersonRecordStatusJob"]
        op = Operation(
            name=spec.trigger_operation, handler=lambda _inv: Result(), parameters=spec.parameters
        )
        with pytest.raises(InvalidArgumentError) as caught:
            op.bind([], {"dateOverride": "2024-13-01"})
        assert caught.value.parameter == "dateOverride"
        assert op.bind(["any"], {}) == {"dateOverride": "ANY"}
        assert op.bind([], {}) == {"dateOverride": None}

    def test_the_configured_override_is_checked_at_load(self) -> None:
        """A bad record_status_date_override is a config error naming the key."""
        with pytest.raises(ConfigError, match="record_status_date_override"):
            TisSettings(record_status_date_override="NONE")
        assert TisSettings(record_status_date_override="any").record_status_date_override == "any"
