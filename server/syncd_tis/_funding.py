"""PostFundingStatusSyncJob: `Post.fundingStatus` from the post's fundings (§8.5).

TCS's rule, applied by TCS whenever a post or funding is saved: CURRENT if any funding has an
end date on or after today, or no end date but a start date; otherwise INACTIVE.

The old job only looked at posts with a funding that ended exactly yesterday, only ever set
INACTIVE, and so never caught up a missed night. This one recomputes the rule for every post
with fundings (keyset pages of the funded posts' ids, one transaction per page) and writes only
the rows that differ, so whatever nights were missed are caught up by the next run.

Scope: posts with at least one funding row, and only those are read. A post without fundings
keeps whatever status it has: neither the old job nor TCS's rule derives a status for it, and
the README promises the rule "for every post with fundings".
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine, and_, case, distinct, exists, func, or_, select, update

from syncd.job import RunContext
from syncd_tis import _fencing
from syncd_tis._db import RetryPolicy, page_through
from syncd_tis._schema import post, post_funding


def recompute(
    engine: Engine, ctx: RunContext, *, today: date, page_size: int, policy: RetryPolicy
) -> tuple[int, int]:
    """Recompute the funding status of every post with fundings for `today`; returns
    (visited, changed), visited counting funded posts only."""
    pf = post_funding
    live = exists().where(
        pf.c.postId == post.c.id,
        or_(pf.c.endDate >= today, and_(pf.c.endDate.is_(None), pf.c.startDate.is_not(None))),
    )
    status = case((live, "CURRENT"), else_="INACTIVE")
    funded = exists().where(pf.c.postId == post.c.id)

    with engine.connect() as conn:
        total = conn.execute(select(func.count(distinct(pf.c.postId)))).scalar_one()
    ctx.report_progress(0, total)

    _fencing.prepare(engine, ctx)

    def page(last: int | None) -> tuple[int | None, int, int]:
        with engine.begin() as conn:
            _fencing.hold(conn, ctx)  # a run that lost its lease writes no page
            # The page's funded post ids, straight from PostFunding's postId index.
            ids_query = select(pf.c.postId).distinct().order_by(pf.c.postId).limit(page_size)
            if last is not None:
                ids_query = ids_query.where(pf.c.postId > last)
            ids = conn.execute(ids_query).scalars().all()
            if not ids:
                return None, 0, 0
            bounds = [post.c.id <= ids[-1]] + ([post.c.id > last] if last is not None else [])
            stmt = (
                update(post)
                .where(*bounds, funded, post.c.fundingStatus.is_distinct_from(status))
                .values(fundingStatus=status)
            )
            return ids[-1], len(ids), conn.execute(stmt).rowcount

    visited, changed = page_through(page, ctx, policy, total, "funding status page")
    ctx.log.info(
        "tis.funding_status.done", today=today.isoformat(), visited=visited, changed=changed
    )
    return visited, changed
