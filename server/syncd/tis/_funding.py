"""PostFundingStatusSyncJob: `Post.fundingStatus` from the post's fundings (§8.5).

TCS's rule, applied by TCS whenever a post or funding is saved: CURRENT if any funding has an
end date on or after today, or no end date but a start date; otherwise INACTIVE.

The old job only looked at posts with a funding that ended exactly yesterday, only ever set
INACTIVE, and so never caught up a missed night. This one recomputes the rule for every post
(keyset pages of post ids, one transaction per page) and writes only the rows that differ, so
whatever nights were missed are caught up by the next run.

Scope: posts with at least one funding, plus posts marked CURRENT without any (their fundings
were deleted: INACTIVE now). A post that never had a funding keeps whatever status it has
(usually NULL) rather than getting an invented INACTIVE, as neither the old job nor TCS sets
one there.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine, and_, case, exists, func, or_, select, update

from syncd.job import RunContext
from syncd.tis._db import RetryPolicy, page_through
from syncd.tis._schema import post, post_funding


def recompute(
    engine: Engine, ctx: RunContext, *, today: date, page_size: int, policy: RetryPolicy
) -> tuple[int, int]:
    """Recompute every post's funding status for `today`; returns (visited, changed)."""
    pf = post_funding
    live = exists().where(
        pf.c.postId == post.c.id,
        or_(pf.c.endDate >= today, and_(pf.c.endDate.is_(None), pf.c.startDate.is_not(None))),
    )
    status = case((live, "CURRENT"), else_="INACTIVE")
    in_scope = or_(exists().where(pf.c.postId == post.c.id), post.c.fundingStatus == "CURRENT")

    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(post)).scalar_one()
    ctx.report_progress(0, total)

    def page(last: int | None) -> tuple[int | None, int, int]:
        with engine.begin() as conn:
            ids_query = select(post.c.id).order_by(post.c.id).limit(page_size)
            if last is not None:
                ids_query = ids_query.where(post.c.id > last)
            ids = conn.execute(ids_query).scalars().all()
            if not ids:
                return None, 0, 0
            bounds = [post.c.id <= ids[-1]] + ([post.c.id > last] if last is not None else [])
            stmt = (
                update(post)
                .where(*bounds, in_scope, post.c.fundingStatus.is_distinct_from(status))
                .values(fundingStatus=status)
            )
            return ids[-1], len(ids), conn.execute(stmt).rowcount

    visited, changed = page_through(page, ctx, policy, total, "funding status page")
    ctx.log.info(
        "tis.funding_status.done", today=today.isoformat(), visited=visited, changed=changed
    )
    return visited, changed
