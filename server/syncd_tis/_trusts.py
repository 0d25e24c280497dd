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

How: one pass over Placement (or Post) per role, in key order, into a TEMPORARY table keyed
by the pair, which drops repeats as they come (a training body equal to the employing body is
not even read twice). The switch then deletes the rows the staging table lacks, inserts the
pairs the table lacks, and on a schema without our unique key first removes duplicates.
"""

from __future__ import annotations

import time
from collections.abc import Callable
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
    inspect,
    or_,
    select,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite

from syncd.job import RunContext
from syncd_tis._db import is_mysql
from syncd_tis._schema import (
    person,
    person_trust,
    person_trust_stage,
    placement,
    post,
    post_trust,
    post_trust_stage,
)
from syncd_tis._settings import TisSettings
from syncd_tis._staging import Applied, Step, rebuild_aside


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


def _straight(query: Any) -> Any:
    """Make MySQL scan Placement in key order and look posts up by key (see _owner)."""
    return query.prefix_with("STRAIGHT_JOIN", dialect="mysql").prefix_with(
        "STRAIGHT_JOIN", dialect="mariadb"
    )


def _insert_new(conn: Connection, table: Table, columns: list[str], rows: Any) -> Executable:
    """INSERT … SELECT that skips rows whose key the staging table holds already."""
    if is_mysql(conn):
        my = mysql.insert(table).from_select(columns, rows)
        return my.on_duplicate_key_update({columns[-1]: my.inserted[columns[-1]]})
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    return dialect_insert(table).from_select(columns, rows).on_conflict_do_nothing()


def _roles(employing: Any, training: Any) -> list[tuple[str, Any]]:
    """The rows each role contributes; a training body equal to the employing body adds none."""
    return [
        ("employing bodies", employing.is_not(None)),
        (
            "training bodies",
            and_(training.is_not(None), or_(employing.is_(None), training != employing)),
        ),
    ]


def person_steps() -> list[Step]:
    """Stage the (person, trust) pairs, one pass over Placement per role."""
    pl = placement
    bodies = {"employing bodies": post.c.employingBodyId, "training bodies": post.c.trainingBodyId}

    def step(name: str, condition: Any) -> Step:
        rows = _straight(
            select(pl.c.traineeId, bodies[name])
            .select_from(pl.join(post, post.c.id == pl.c.postId))
            .where(pl.c.traineeId.is_not(None), condition)
        )
        return Step(
            name, lambda conn: _insert_new(conn, PERSON.stage, ["personId", "trustId"], rows)
        )

    return [step(n, c) for n, c in _roles(post.c.employingBodyId, post.c.trainingBodyId)]


def post_steps() -> list[Step]:
    """Stage the (post, trust) pairs, one pass over Post per role."""
    bodies = {"employing bodies": post.c.employingBodyId, "training bodies": post.c.trainingBodyId}

    def step(name: str, condition: Any) -> Step:
        rows = select(post.c.id, bodies[name]).where(condition)
        return Step(name, lambda conn: _insert_new(conn, POST.stage, ["postId", "trustId"], rows))

    return [step(n, c) for n, c in _roles(post.c.employingBodyId, post.c.trainingBodyId)]


def _has_unique_key(conn: Connection, family: _Family) -> bool:
    """Whether the derived table has a unique key on (owner id, trustId), as ours does."""
    wanted = {family.owner_column, "trustId"}
    found = inspect(conn)
    keys: list[set[str | None]] = [
        set(c["column_names"]) for c in found.get_unique_constraints(family.target.name)
    ]
    keys += [set(i["column_names"]) for i in found.get_indexes(family.target.name) if i["unique"]]
    return wanted in keys


def _apply(family: _Family) -> Callable[[Connection, RunContext], Applied]:
    t, s = family.target, family.stage
    t_owner, s_owner = t.c[family.owner_column], s.c[family.owner_column]

    def run(conn: Connection, ctx: RunContext, what: str, statement: Executable) -> int:
        started = time.monotonic()
        rows = conn.execute(statement).rowcount
        seconds = round(time.monotonic() - started, 3)
        ctx.log.info(f"{family.event}.{what}", rows=rows, seconds=seconds)
        return rows

    def apply(conn: Connection, ctx: RunContext) -> Applied:
        duplicates = 0
        if not _has_unique_key(conn, family):
            # Duplicates the old service left (its table had no unique key): keep the lowest
            # id. The ids to drop are wrapped in a derived table, which MySQL materialises,
            # because it refuses a DELETE whose subquery reads the table it deletes from.
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
            duplicates = run(
                conn, ctx, "duplicates_deleted", delete(t).where(t.c.id.in_(select(extra.c.id)))
            )
        stale = run(
            conn,
            ctx,
            "stale_deleted",
            delete(t).where(~exists().where(s_owner == t_owner, s.c.trustId == t.c.trustId)),
        )
        missing = select(s_owner, s.c.trustId).where(
            ~exists().where(t_owner == s_owner, t.c.trustId == s.c.trustId),
            exists().where(family.parent.c.id == s_owner),  # deleted since staging: skip
        )
        inserted = run(
            conn,
            ctx,
            "inserted",
            t.insert().from_select([family.owner_column, "trustId"], missing),
        )
        return Applied(inserted=inserted, deleted=stale + duplicates)

    return apply


def rebuild_person_trusts(engine: Engine, ctx: RunContext, *, settings: TisSettings) -> Applied:
    """Recompute PersonTrust (both roles) aside and switch it in one transaction."""
    return rebuild_aside(
        engine,
        ctx,
        event=PERSON.event,
        tables=[PERSON.stage],
        steps=person_steps(),
        apply=_apply(PERSON),
        lock_name=PERSON.lock_name,
        settings=settings,
    )


def rebuild_post_trusts(engine: Engine, ctx: RunContext, *, settings: TisSettings) -> Applied:
    """Recompute PostTrust (both roles) aside and switch it in one transaction."""
    return rebuild_aside(
        engine,
        ctx,
        event=POST.event,
        tables=[POST.stage],
        steps=post_steps(),
        apply=_apply(POST),
        lock_name=POST.lock_name,
        settings=settings,
    )
