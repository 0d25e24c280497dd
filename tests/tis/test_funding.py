"""PostFundingStatusSyncJob: TCS's funding rule recomputed for every post, missed nights too."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from syncd_tis import _jobs
from syncd_tis._db import RetryPolicy
from syncd_tis._funding import recompute
from tests.tis.conftest import Db

TODAY = date(2026, 3, 10)
POLICY = RetryPolicy(attempts=1, initial_delay=0.0, max_delay=0.0)


def day(offset: int) -> date:
    return TODAY + timedelta(days=offset)


def post_with(db: Db, status: str | None, *fundings: tuple[date | None, date | None]) -> int:
    p = db.post(funding_status=status)
    for start, end in fundings:
        db.funding(p, start, end)
    return p


def run(db: Db) -> tuple[int, int]:
    return recompute(db.engine, db.context(), today=TODAY, page_size=2, policy=POLICY)


@pytest.mark.parametrize(
    ("case", "before", "fundings", "after"),
    [
        ("ends today", "INACTIVE", [(day(-300), day(0))], "CURRENT"),
        ("ends later", None, [(day(-300), day(300))], "CURRENT"),
        ("open-ended with a start", "INACTIVE", [(day(-300), None)], "CURRENT"),
        ("open-ended without a start", "CURRENT", [(None, None)], "INACTIVE"),
        ("ended yesterday", "CURRENT", [(day(-300), day(-1))], "INACTIVE"),
        ("ended five nights ago (missed)", "CURRENT", [(day(-300), day(-5))], "INACTIVE"),
        ("one ended, one live", "INACTIVE", [(day(-300), day(-5)), (day(-4), day(90))], "CURRENT"),
        ("no funding, marked current", "CURRENT", [], "CURRENT"),
        ("never funded", None, [], None),
        ("no funding, marked inactive", "INACTIVE", [], "INACTIVE"),
    ],
)
def test_each_post_gets_the_tcs_funding_status(
    db: Db,
    case: str,
    before: str | None,
    fundings: list[tuple[date | None, date | None]],
    after: str | None,
) -> None:
    """CURRENT with a funding ending today or later, or open-ended with a start; else
    INACTIVE; a post without funding rows keeps its stored status."""
    p = post_with(db, before, *fundings)
    run(db)
    assert db.funding_statuses()[p] == after, case


def test_only_changed_posts_are_written(db: Db) -> None:
    """Counts: every funded post visited, only differing rows written; a second run writes
    none."""
    post_with(db, "CURRENT", (day(-300), None))
    post_with(db, "CURRENT", (day(-300), day(-3)))
    post_with(db, None)
    assert run(db) == (2, 1)
    assert run(db) == (2, 0)


def test_only_posts_with_fundings_are_read(db: Db) -> None:
    """Posts without funding rows, interleaved with funded ones across page boundaries, are
    neither read (rows, progress) nor written, whatever their stored status."""
    Funding = tuple[date | None, date | None]
    ended: Funding = (day(-300), day(-2))
    live: Funding = (day(-10), None)
    posts: list[tuple[str | None, list[Funding], str | None]] = [  # stored, fundings, expected
        ("CURRENT", [], "CURRENT"),
        ("CURRENT", [ended, (day(-300), day(-9))], "INACTIVE"),
        ("INACTIVE", [], "INACTIVE"),
        (None, [live], "CURRENT"),
        (None, [], None),
        ("CURRENT", [], "CURRENT"),
        ("INACTIVE", [live], "CURRENT"),
        ("CURRENT", [], "CURRENT"),
    ]
    ids = [post_with(db, stored, *fundings) for stored, fundings, _ in posts]
    ctx = db.context()
    assert recompute(db.engine, ctx, today=TODAY, page_size=2, policy=POLICY) == (3, 3)
    assert (ctx.rows_read, ctx.rows_written) == (3, 3)
    assert ctx.progress[0] == (0, 3)
    assert ctx.progress[-1] == (3, 3)
    statuses = db.funding_statuses()
    assert [statuses[i] for i in ids] == [expected for _, _, expected in posts]


def test_the_body_catches_up_with_todays_date(db: Db) -> None:
    """The bean's body recomputes every post against today (UTC) and counts its rows."""
    today = _jobs.utc_today()
    p = post_with(db, "CURRENT", (today - timedelta(days=90), today - timedelta(days=3)))
    q = post_with(db, "INACTIVE", (today - timedelta(days=90), today))
    ctx = db.context()
    _jobs.post_funding_status(ctx)
    assert db.funding_statuses() == {p: "INACTIVE", q: "CURRENT"}
    assert (ctx.rows_read, ctx.rows_written) == (2, 2)
    assert ctx.progress[-1] == (2, 2)
