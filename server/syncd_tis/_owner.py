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
as in TCS's procedure `get_localoffice_sp`; a membership or placement counts only if its
Programme or Post exists (the procedure's inner joins). A NULL date never matches a rule that
compares it, so P1 and P2 need both dates.

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

How: one aggregate pass over each source table finds every person's first row per rule as a
single sortable number, day number * 2^32 + row id (for "latest" rules the id is stored as
2^32 - 1 - id, so MAX still prefers the lowest id on a tie); ids must stay below 2^32, which
is checked. A third statement decodes the row ids, looks up their owners and applies the
fall-through. The result is diff-applied to PersonOwner in one transaction: changed rows
updated, missing rows upserted (a row TCS's trigger inserted meanwhile is updated instead of
failing on `person_owner_pk`), rows of deleted persons removed. Rows of persons created during
the run are left to the trigger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Executable,
    and_,
    case,
    delete,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from syncd.job import RunContext
from syncd_tis._db import TisError, is_mysql
from syncd_tis._schema import (
    owner_membership_keys,
    owner_placement_keys,
    owner_stage,
    person,
    person_owner,
    placement,
    post,
    programme,
    programme_membership,
)
from syncd_tis._settings import TisSettings
from syncd_tis._staging import Applied, Step, rebuild_aside

LOCK_NAME = "syncd.tis.PersonOwner"
ID_SPACE = 2**32


class day_number(FunctionElement[int]):
    """Whole days since a fixed epoch, each backend its own way; only the order matters."""

    type = BigInteger()
    inherit_cache = True
    name = "day_number"


@compiles(day_number)
def _day_number_sqlite(element: day_number, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(julianday({compiler.process(element.clauses, **kw)}) AS INTEGER)"


@compiles(day_number, "mysql")
@compiles(day_number, "mariadb")
def _day_number_mysql(element: day_number, compiler: SQLCompiler, **kw: Any) -> str:
    return f"TO_DAYS({compiler.process(element.clauses, **kw)})"


@compiles(day_number, "postgresql")
def _day_number_postgresql(element: day_number, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(element.clauses, **kw)} - DATE '1900-01-01')"


def _earliest(day: Any, row_id: Any) -> Any:
    return day_number(day) * ID_SPACE + row_id


def _latest(day: Any, row_id: Any) -> Any:
    return day_number(day) * ID_SPACE + (ID_SPACE - 1 - row_id)


def _straight(query: Any) -> Any:
    """Make MySQL scan the big table first (in key order) and look the small one up by key,
    instead of walking the big one through a secondary index: random reads."""
    return query.prefix_with("STRAIGHT_JOIN", dialect="mysql").prefix_with(
        "STRAIGHT_JOIN", dialect="mariadb"
    )


def membership_keys(today: date) -> Executable:
    """Per person: the deciding membership of P1, P5 and P7 as a sort key."""
    pm = programme_membership
    start, end = pm.c.programmeStartDate, pm.c.programmeEndDate
    rows = _straight(
        select(
            pm.c.personId,
            func.min(case((and_(start <= today, end >= today), _earliest(start, pm.c.id)))),
            func.min(case((start > today, _earliest(start, pm.c.id)))),
            func.max(case((end < today, _latest(end, pm.c.id)))),
        )
        .select_from(pm.join(programme, programme.c.id == pm.c.programmeId))
        .group_by(pm.c.personId)
    )
    return owner_membership_keys.insert().from_select(["personId", "k1", "k5", "k7"], rows)


def placement_keys(today: date) -> Executable:
    """Per person: the deciding placement of P2, P6 and P8 as a sort key."""
    pl = placement
    frm, to = pl.c.dateFrom, pl.c.dateTo
    rows = _straight(
        select(
            pl.c.traineeId,
            func.min(case((and_(frm <= today, to >= today), _earliest(frm, pl.c.id)))),
            func.min(case((frm > today, _earliest(frm, pl.c.id)))),
            func.max(case((to < today, _latest(to, pl.c.id)))),
        )
        .select_from(pl.join(post, post.c.id == pl.c.postId))
        .where(pl.c.traineeId.is_not(None))
        .group_by(pl.c.traineeId)
    )
    return owner_placement_keys.insert().from_select(["personId", "k2", "k6", "k8"], rows)


@dataclass(frozen=True, slots=True)
class _Rule:
    label: str
    key: Any  # the person's sort key for this rule; NULL when nothing matched
    owner: Any  # the deciding row's owner


def assemble() -> Executable:
    """One staged row per person: decode the deciding rows, find their owners, fall through."""
    mk, pk = owner_membership_keys, owner_placement_keys
    joined = person.outerjoin(mk, mk.c.personId == person.c.id).outerjoin(
        pk, pk.c.personId == person.c.id
    )
    rules: list[_Rule] = []
    for label, key, latest, source in (
        ("P1", mk.c.k1, False, "membership"),
        ("P2", pk.c.k2, False, "placement"),
        ("P5", mk.c.k5, False, "membership"),
        ("P6", pk.c.k6, False, "placement"),
        ("P7", mk.c.k7, True, "membership"),
        ("P8", pk.c.k8, True, "placement"),
    ):
        row_id = (ID_SPACE - 1 - key % ID_SPACE) if latest else key % ID_SPACE
        if source == "membership":
            row, parent = programme_membership.alias(), programme.alias()
            joined = joined.outerjoin(row, row.c.id == row_id).outerjoin(
                parent, parent.c.id == row.c.programmeId
            )
        else:
            row, parent = placement.alias(), post.alias()
            joined = joined.outerjoin(row, row.c.id == row_id).outerjoin(
                parent, parent.c.id == row.c.postId
            )
        rules.append(_Rule(label, key, parent.c.owner))
    owner = func.coalesce(*(r.owner for r in rules))
    # The first rule with an owner wins; failing that, the old procedure has left the label of
    # the last rule that matched at all (with a NULL owner); failing that, NULL.
    rule = case(
        *((r.owner.is_not(None), r.label) for r in rules),
        *((r.key.is_not(None), r.label) for r in reversed(rules)),
        else_=None,
    )
    rows = select(person.c.id, owner, rule).select_from(joined)
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


def _check_id_space(engine: Engine) -> None:
    with engine.connect() as conn:
        for table in (programme_membership, placement):
            top = conn.execute(select(func.max(table.c.id))).scalar()
            if top is not None and top >= ID_SPACE:
                raise TisError(
                    f"{table.name}.id reaches {top}; the owner rebuild encodes ids in 32 bits"
                )


def rebuild(engine: Engine, ctx: RunContext, *, today: date, settings: TisSettings) -> Applied:
    """Recompute PersonOwner for `today` aside and switch it in one transaction."""
    _check_id_space(engine)
    return rebuild_aside(
        engine,
        ctx,
        event="tis.owner",
        tables=[owner_membership_keys, owner_placement_keys, owner_stage],
        steps=[
            Step("memberships", lambda _conn: membership_keys(today)),
            Step("placements", lambda _conn: placement_keys(today)),
            Step("owners", lambda _conn: assemble()),
        ],
        apply=apply,
        lock_name=LOCK_NAME,
        settings=settings,
    )
