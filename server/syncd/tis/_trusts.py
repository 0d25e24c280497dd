"""The trust jobs: `PersonTrust` (which trusts a person is linked to through placements) and
`PostTrust` (the employing and training body of each post).

The target sets (reference §8.2):

* PersonTrust = every distinct (person, trust) where the trust is the employing body or the
  training body of the post of any of the person's placements: all dates, drafts included.
* PostTrust = every distinct (post, trust) for the post's non-null employing and training body.

The old service split each table over two jobs: the employing-body job emptied the table and
wrote its half, the training-body job appended the other half (duplicates included when a trust
had both roles, and an empty or half table whenever the first job failed or was running).

Here both jobs of a pair recompute the complete, de-duplicated union, compute it aside and
diff-apply it in one transaction (delete stale and duplicate rows, insert missing ones). So
either job alone leaves a correct table, their order no longer matters, readers never see a
half table, and (personId, trustId) is unique by construction. The second job of a night
finds nothing to change and costs one read pass. `trustCode` and `trustName` stay NULL as
before (consumers test membership only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Executable,
    Table,
    and_,
    delete,
    exists,
    func,
    select,
    union,
)

from syncd.job import RunContext
from syncd.tis._db import id_range
from syncd.tis._schema import (
    person,
    person_trust,
    person_trust_stage,
    placement,
    post,
    post_trust,
    post_trust_stage,
)
from syncd.tis._staging import Applied, rebuild_aside


@dataclass(frozen=True, slots=True, kw_only=True)
class _Family:
    """One derived trust table and how its rows are keyed."""

    event: str
    target: Table
    stage: Table
    owner_column: str  # personId or postId
    parent: Table  # Person or Post

    @property
    def lock_name(self) -> str:
        return f"syncd.tis.{self.target.name}"


PERSON = _Family(
    event="tis.person_trust",
    target=person_trust,
    stage=person_trust_stage,
    owner_column="personId",
    parent=person,
)
POST = _Family(
    event="tis.post_trust",
    target=post_trust,
    stage=post_trust_stage,
    owner_column="postId",
    parent=post,
)


def person_pairs(lo: int | None, hi: int | None) -> Executable:
    """Stage the (person, trust) pairs of persons with id in (lo, hi]."""
    pl = placement

    def role(body: Any) -> Any:
        return (
            select(pl.c.traineeId, body)
            .select_from(pl.join(post, post.c.id == pl.c.postId))
            .where(
                body.is_not(None), pl.c.traineeId.is_not(None), *id_range(pl.c.traineeId, lo, hi)
            )
        )

    pairs = union(role(post.c.employingBodyId), role(post.c.trainingBodyId))
    return person_trust_stage.insert().from_select(["personId", "trustId"], pairs)


def post_pairs(lo: int | None, hi: int | None) -> Executable:
    """Stage the (post, trust) pairs of posts with id in (lo, hi]."""

    def role(body: Any) -> Any:
        return select(post.c.id, body).where(body.is_not(None), *id_range(post.c.id, lo, hi))

    pairs = union(role(post.c.employingBodyId), role(post.c.trainingBodyId))
    return post_trust_stage.insert().from_select(["postId", "trustId"], pairs)


def _apply(family: _Family) -> Any:
    t, s = family.target, family.stage
    t_owner, s_owner = t.c[family.owner_column], s.c[family.owner_column]

    def apply(conn: Connection, ctx: RunContext) -> Applied:
        # Duplicates the old service left (its table had no unique key): keep the lowest id.
        # The ids to drop are wrapped in a derived table, which MySQL materialises, because it
        # refuses a DELETE whose subquery reads the table being deleted from.
        groups = (
            select(t_owner.label("o"), t.c.trustId.label("tr"), func.min(t.c.id).label("keep"))
            .group_by(t_owner, t.c.trustId)
            .having(func.count() > 1)
            .subquery()
        )
        extra = (
            select(t.c.id)
            .join(groups, and_(groups.c.o == t_owner, groups.c.tr == t.c.trustId))
            .where(t.c.id != groups.c.keep)
            .distinct()
            .subquery()
        )
        duplicates = conn.execute(delete(t).where(t.c.id.in_(select(extra.c.id)))).rowcount
        stale = conn.execute(
            delete(t).where(~exists().where(s_owner == t_owner, s.c.trustId == t.c.trustId))
        ).rowcount
        ctx.log.info(f"{family.event}.deleted", stale=stale, duplicates=duplicates)
        missing = select(s_owner, s.c.trustId).where(
            ~exists().where(t_owner == s_owner, t.c.trustId == s.c.trustId),
            exists().where(family.parent.c.id == s_owner),  # deleted since staging: skip
        )
        inserted = conn.execute(
            t.insert().from_select([family.owner_column, "trustId"], missing)
        ).rowcount
        ctx.log.info(f"{family.event}.inserted", rows=inserted)
        return Applied(inserted=inserted, deleted=stale + duplicates)

    return apply


def rebuild_person_trusts(
    engine: Engine, ctx: RunContext, *, chunk_size: int, lock_timeout: float
) -> Applied:
    """Recompute PersonTrust (both roles) aside and switch it in one transaction."""
    return rebuild_aside(
        engine,
        ctx,
        event=PERSON.event,
        stage=PERSON.stage,
        key=person.c.id,
        fill=person_pairs,
        apply=_apply(PERSON),
        lock_name=PERSON.lock_name,
        chunk_size=chunk_size,
        lock_timeout=lock_timeout,
    )


def rebuild_post_trusts(
    engine: Engine, ctx: RunContext, *, chunk_size: int, lock_timeout: float
) -> Applied:
    """Recompute PostTrust (both roles) aside and switch it in one transaction."""
    return rebuild_aside(
        engine,
        ctx,
        event=POST.event,
        stage=POST.stage,
        key=post.c.id,
        fill=post_pairs,
        apply=_apply(POST),
        lock_name=POST.lock_name,
        chunk_size=chunk_size,
        lock_timeout=lock_timeout,
    )
