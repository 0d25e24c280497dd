"""PersonRecordStatusJob: `Person.status` from the person's programme memberships (§8.4).

Rule: CURRENT if the person has a programme membership with both dates set and
start <= today <= end, otherwise INACTIVE. `today` is always the real current date (UTC);
the date argument only chooses whom to look at, as in the old service:

* blank or absent: persons with a membership that started today or ended yesterday;
* `YYYY-MM-DD` (D): persons with a membership that started on D or ended on D-1;
* `ANY`: every person with at least one membership;
* `NONE`: the configured `record_status_date_override` ("" means today).

Persons without any membership are never visited (many persons are not trainees and carry a
status of their own). Only rows whose status changes are written, a page of persons per
transaction, so a failure keeps every page already done and a re-run picks up the rest.

`amendedDate`: bumped to the current UTC time on every row whose status changes, and only
there. TCS maps it as the JPA @Version of Person, so bumping makes a user's form that was
loaded before our change fail with an optimistic-lock error (reload, then save) instead of
silently writing the old status back; and the CDC consumers (DMS → TSS) that order changes by
it see ours as new. The old job bumped it the same way (through JPA). Unchanged rows are not
touched, so a nightly run does not make every trainee look edited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, case, exists, func, or_, select, update

from syncd.job import RunContext, Value
from syncd_tis import _fencing
from syncd_tis._db import RetryPolicy, page_through
from syncd_tis._schema import person, programme_membership
from syncd_tis._settings import parse_iso_date

PARAMETER = "dateOverride"
ANY = "ANY"
NONE = "NONE"


@dataclass(frozen=True, slots=True)
class Selection:
    """Whom to visit: persons whose membership changed state on `day`, or everybody (None)."""

    day: date | None

    def describe(self) -> str:
        return "any" if self.day is None else self.day.isoformat()


def validate_date_override(value: Value) -> Value:
    """The operation's check: blank, YYYY-MM-DD, ANY or NONE; anything else is refused."""
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {type(value).__name__}")
    text = value.strip()
    if not text:
        return ""
    if text.upper() in (ANY, NONE):
        return text.upper()
    try:
        parse_iso_date(text)
    except ValueError as exc:
        raise ValueError(f"{exc}; expected blank (today), YYYY-MM-DD, ANY or NONE") from None
    return text


def selection(value: Value, *, configured: str, today: date) -> Selection:
    """The Selection an argument stands for; raises ValueError on anything invalid."""
    text = validate_date_override("" if value is None else value)
    if text == NONE:
        text = validate_date_override(configured)
        if text == NONE:
            raise ValueError("record_status_date_override must be blank, ANY or a date, not NONE")
    if not text:
        return Selection(today)
    if text == ANY:
        return Selection(None)
    return Selection(parse_iso_date(str(text)))


def _selected(sel: Selection, pm: Any) -> Any:
    if sel.day is None:
        return pm.c.personId.is_not(None)
    return or_(
        pm.c.programmeEndDate == sel.day - timedelta(days=1), pm.c.programmeStartDate == sel.day
    )


def recompute(
    engine: Engine,
    ctx: RunContext,
    *,
    sel: Selection,
    today: date,
    page_size: int,
    policy: RetryPolicy,
) -> tuple[int, int]:
    """Recompute the status of the selected persons; returns (visited, changed)."""
    pm = programme_membership
    chosen = _selected(sel, pm)
    current = exists().where(
        pm.c.personId == person.c.id,
        pm.c.programmeStartDate <= today,
        pm.c.programmeEndDate >= today,
    )
    status = case((current, "CURRENT"), else_="INACTIVE")

    with engine.connect() as conn:
        total = conn.execute(
            select(func.count(pm.c.personId.distinct())).where(chosen)
        ).scalar_one()
    ctx.report_progress(0, total)
    ctx.log.info("tis.record_status.selected", selection=sel.describe(), persons=total)

    _fencing.prepare(engine, ctx)

    def page(last: int | None) -> tuple[int | None, int, int]:
        with engine.begin() as conn:
            _fencing.hold(conn, ctx)  # a run that lost its lease writes no page
            ids_query = select(pm.c.personId).where(chosen).distinct().order_by(pm.c.personId)
            if last is not None:
                ids_query = ids_query.where(pm.c.personId > last)
            ids = conn.execute(ids_query.limit(page_size)).scalars().all()
            if not ids:
                return None, 0, 0
            lo_hi = (
                [person.c.id <= ids[-1]]
                if last is None
                else [person.c.id > last, person.c.id <= ids[-1]]
            )
            stmt = (
                update(person)
                .where(
                    *lo_hi,
                    exists().where(pm.c.personId == person.c.id, chosen),
                    person.c.status.is_distinct_from(status),
                )
                .values(status=status, amendedDate=datetime.now(UTC).replace(tzinfo=None))
            )
            return ids[-1], len(ids), conn.execute(stmt).rowcount

    visited, changed = page_through(page, ctx, policy, total, "record status page")
    ctx.log.info(
        "tis.record_status.done", selection=sel.describe(), visited=visited, changed=changed
    )
    return visited, changed
