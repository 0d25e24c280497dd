"""PersonOwnerRebuildJob: which local office "owns" each person (table `PersonOwner`).

The rules, evaluated per person with today's date; the first rule that yields an owner wins and
its label goes into `rule`:

* P1 a current programme membership (start <= today <= end): its Programme.owner, earliest start;
* P2 a current placement (dateFrom <= today <= dateTo): its Post.owner, earliest dateFrom;
* P5 a future membership (start > today): soonest start;
* P6 a future placement (dateFrom > today): soonest dateFrom;
* P7 a past membership (end < today): latest end;
* P8 a past placement (dateTo < today): latest dateTo;
* otherwise owner and rule are NULL; the row is written all the same (one row per Person).

Placements count whatever their lifecycle state (drafts too), memberships whatever their type,
as in TCS's procedure `get_localoffice_sp`. A row whose deciding date is NULL never matches
that rule (NULL never compares), so P1/P2 need both dates.

The two quirks of the old procedure, decided:

* A matched row whose owner is NULL: kept as TCS does it. Each rule looks only at its first row
  (by the rule's date); if that row's Programme/Post has no owner the person falls through to
  the next rule, and when no later rule yields an owner the stored result is owner NULL with
  the label of the last rule that matched. Why: between rebuilds TCS's triggers rewrite a
  person's row with that same procedure; a different answer here would make rows flip between
  the nightly value and the trigger value with every edit, churning CDC and the search index.
* Ties (two rows with the same deciding date): the old `ORDER BY date LIMIT 1` picked any; we
  pick the row with the lowest id (the earliest created record, which is also what MySQL
  usually returned), so a rebuild is repeatable and one run never flips another's choice.

The whole table is computed into a TEMPORARY staging table in keyset chunks of persons, then
diff-applied in one transaction: changed rows updated, missing rows upserted (a row TCS's
trigger inserted meanwhile is updated instead of failing on `person_owner_pk`), rows of
deleted persons removed. Rows of persons created during the run are left to the trigger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Insert,
    Select,
    Subquery,
    case,
    delete,
    exists,
    func,
    literal_column,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite

from syncd.job import RunContext
from syncd.tis._db import id_range, is_mysql
from syncd.tis._schema import (
    owner_stage,
    person,
    person_owner,
    placement,
    post,
    programme,
    programme_membership,
)
from syncd.tis._staging import Applied, rebuild_aside

LOCK_NAME = "syncd.tis.PersonOwner"


@dataclass(frozen=True, slots=True)
class _Rule:
    rank: int
    label: str


P1, P2, P5, P6, P7, P8 = (_Rule(n, f"P{n}") for n in (1, 2, 5, 6, 7, 8))


def _first_row(
    rule: _Rule, query: Select[Any], person_id: Any, order: list[Any], row_id: Any
) -> Select[Any]:
    """Each person's first row of `query` by `order` (lowest id on ties), tagged with `rule`."""
    numbered = query.add_columns(
        person_id.label("personId"),
        func.row_number().over(partition_by=person_id, order_by=[*order, row_id]).label("rn"),
    ).subquery()
    return select(
        numbered.c.personId,
        literal_column(str(rule.rank)).label("rnk"),
        literal_column(f"'{rule.label}'").label("rule"),
        numbered.c.owner,
    ).where(numbered.c.rn == 1)


def _candidates(today: date, lo: int | None, hi: int | None) -> Subquery:
    """Per person and rule, the rule's deciding row (if any) and its owner."""
    pm, pl = programme_membership, placement
    memberships = (
        select(programme.c.owner.label("owner"))
        .select_from(pm.join(programme, programme.c.id == pm.c.programmeId))
        .where(*id_range(pm.c.personId, lo, hi))
    )
    placements = (
        select(post.c.owner.label("owner"))
        .select_from(pl.join(post, post.c.id == pl.c.postId))
        .where(*id_range(pl.c.traineeId, lo, hi))
    )
    start, end = pm.c.programmeStartDate, pm.c.programmeEndDate
    frm, to = pl.c.dateFrom, pl.c.dateTo
    return union_all(
        _first_row(
            P1, memberships.where(start <= today, end >= today), pm.c.personId, [start], pm.c.id
        ),
        _first_row(P2, placements.where(frm <= today, to >= today), pl.c.traineeId, [frm], pl.c.id),
        _first_row(P5, memberships.where(start > today), pm.c.personId, [start], pm.c.id),
        _first_row(P6, placements.where(frm > today), pl.c.traineeId, [frm], pl.c.id),
        _first_row(P7, memberships.where(end < today), pm.c.personId, [end.desc()], pm.c.id),
        _first_row(P8, placements.where(to < today), pl.c.traineeId, [to.desc()], pl.c.id),
    ).subquery("candidates")


def stage_chunk(today: date, lo: int | None, hi: int | None) -> Insert:
    """INSERT into the staging table one row per person with id in (lo, hi]."""
    cand = _candidates(today, lo, hi)
    no_owner = cand.c.owner.is_(None)
    # The old procedure stops at the first rule with an owner; failing that, the last rule
    # that matched at all has left its label behind (with a NULL owner).
    pick = func.row_number().over(
        partition_by=cand.c.personId,
        order_by=[case((no_owner, 1), else_=0), case((no_owner, -cand.c.rnk), else_=cand.c.rnk)],
    )
    ranked = select(cand.c.personId, cand.c.owner, cand.c.rule, pick.label("pick")).subquery()
    chosen = (
        select(ranked.c.personId, ranked.c.owner, ranked.c.rule)
        .where(ranked.c.pick == 1)
        .subquery()
    )
    rows = (
        select(person.c.id, chosen.c.owner, chosen.c.rule)
        .select_from(person.outerjoin(chosen, chosen.c.personId == person.c.id))
        .where(*id_range(person.c.id, lo, hi))
    )
    return owner_stage.insert().from_select(["id", "owner", "rule"], rows)


def _upsert_missing(conn: Connection) -> Any:
    """Stage rows that have no PersonOwner row yet; one that appears meanwhile is updated."""
    po, st = person_owner, owner_stage
    rows = (
        select(st.c.id, st.c.owner, st.c.rule)
        .select_from(st.join(person, person.c.id == st.c.id))  # the person may be gone by now
        .where(~exists().where(po.c.id == st.c.id))
    )
    columns = ["id", "owner", "rule"]
    if is_mysql(conn):
        my = mysql.insert(po).from_select(columns, rows)
        return my.on_duplicate_key_update(owner=my.inserted.owner, rule=my.inserted.rule)
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    ins = dialect_insert(po).from_select(columns, rows)
    return ins.on_conflict_do_update(
        index_elements=[po.c.id], set_={"owner": ins.excluded.owner, "rule": ins.excluded.rule}
    )


def apply(conn: Connection, ctx: RunContext) -> Applied:
    """Make PersonOwner equal the staging table; runs inside the switching transaction."""
    po, st = person_owner, owner_stage
    changed = or_(po.c.owner.is_distinct_from(st.c.owner), po.c.rule.is_distinct_from(st.c.rule))
    updated = conn.execute(
        update(po).where(po.c.id == st.c.id, changed).values(owner=st.c.owner, rule=st.c.rule)
    ).rowcount
    ctx.log.info("tis.owner.updated", rows=updated)
    inserted = conn.execute(_upsert_missing(conn)).rowcount
    ctx.log.info("tis.owner.inserted", rows=inserted)
    deleted = conn.execute(delete(po).where(~exists().where(person.c.id == po.c.id))).rowcount
    return Applied(inserted=inserted, updated=updated, deleted=deleted)


def rebuild(
    engine: Engine, ctx: RunContext, *, today: date, chunk_size: int, lock_timeout: float
) -> Applied:
    """Recompute PersonOwner for `today` aside and switch it in one transaction."""
    return rebuild_aside(
        engine,
        ctx,
        event="tis.owner",
        stage=owner_stage,
        key=person.c.id,
        fill=lambda lo, hi: stage_chunk(today, lo, hi),
        apply=apply,
        lock_name=LOCK_NAME,
        chunk_size=chunk_size,
        lock_timeout=lock_timeout,
    )
