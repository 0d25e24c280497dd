"""The persons index: exactly one document per Person row, id = the person's id.

The document has the shape of TCS's `PersonView` (reference §8.6), built page by page with
keyset pagination over Person ids (no LIMIT/OFFSET): per page one query for the persons and
their one-to-one rows (ContactDetails, GmcDetails, GdcDetails, PersonOwner) and one query each
for their current placements, trusts and curriculum memberships, so a page costs four
statements whatever its size.

Several current placements: the old service joined the current placement into the person row,
so a person with two current placements became two documents. Here a person is always one
document: the current placement with the earliest `dateFrom` (ties: lowest placement id)
supplies the flat placement fields (`gradeId`, `gradeAbbreviation`, `siteId`, `siteCode`,
`placementType`, `specialty`), and every current placement is listed, in that same order, in
the nested field `currentPlacements`. A placement is current when dateFrom <= today <= dateTo
(UTC), whatever its lifecycle state, as in TCS's `personViewForES.sql`. A person without a
current placement has those flat fields null (the old index stored 0 for the ids).

Other fields, as the old index had them:

* `fullName` = forenames and surname joined by a space (either may be missing);
* `currentOwner` / `currentOwnerRule` from PersonOwner, `status` from Person.status;
* `trusts`: nested {personId, trustId} from PersonTrust, de-duplicated, by trust id;
* `programmeMemberships`: nested, one entry per CurriculumMembership of the person's programme
  memberships (TCS's `programmeMembership.sql`): id (the curriculum membership's), personId,
  programmeId, programmeName, programmeNumber, trainingNumber and programmeMembershipStatus:
  PAST when a date is missing or the end is before today, FUTURE when the start is after
  today, else CURRENT. A membership without curricula has no entry, as before.

Unlike the old join, persons without ContactDetails get a document too (names null).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, select

from syncd_tis._schema import (
    contact_details,
    gdc_details,
    gmc_details,
    person,
    person_owner,
    person_trust,
    placement,
    placement_specialty,
    programme,
    programme_membership,
    specialty,
)
from syncd_tis._search_schema import PRIMARY, curriculum_membership, training_number
from syncd_tis.search.sink import Document

TABLES = (
    "Person",
    "ContactDetails",
    "GmcDetails",
    "GdcDetails",
    "PersonOwner",
    "PersonTrust",
    "Placement",
    "PlacementSpecialty",
    "Specialty",
    "ProgrammeMembership",
    "CurriculumMembership",
    "Programme",
    "TrainingNumber",
)
Range = Callable[[Any], ColumnElement[bool]]


def programme_membership_status(start: date | None, end: date | None, today: date) -> str:
    """TCS's `get_programmeMembershipStatus`: PAST, FUTURE or CURRENT."""
    if start is None or end is None or end < today:
        return "PAST"
    if start > today:
        return "FUTURE"
    return "CURRENT"


def full_name(forenames: str | None, surname: str | None) -> str | None:
    parts = [p.strip() for p in (forenames, surname) if p and p.strip()]
    return " ".join(parts) or None


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day is not None else None


def _id_range(after: int | None, last: int) -> Range:
    """The page's ids as a predicate on any person-id column: (after, last]."""
    if after is None:
        return lambda column: column <= last
    return lambda column: and_(column > after, column <= last)


def _current_placements(
    conn: Connection, in_page: Range, today: date
) -> dict[int, list[dict[str, Any]]]:
    pl, ps = placement, placement_specialty
    rows = conn.execute(
        select(
            pl.c.traineeId,
            pl.c.id,
            pl.c.postId,
            pl.c.dateFrom,
            pl.c.dateTo,
            pl.c.gradeId,
            pl.c.gradeAbbreviation,
            pl.c.siteId,
            pl.c.siteCode,
            pl.c.placementType,
            specialty.c.name,
        )
        .select_from(
            pl.outerjoin(
                ps, and_(ps.c.placementId == pl.c.id, ps.c.placementSpecialtyType == PRIMARY)
            ).outerjoin(specialty, specialty.c.id == ps.c.specialtyId)
        )
        .where(in_page(pl.c.traineeId), pl.c.dateFrom <= today, pl.c.dateTo >= today)
        .order_by(pl.c.traineeId, pl.c.dateFrom, pl.c.id, ps.c.specialtyId)
    )
    out: dict[int, list[dict[str, Any]]] = {}
    seen: set[int] = set()
    for row in rows:
        trainee, placement_id = row[0], row[1]
        if placement_id in seen:  # a second PRIMARY specialty: the lowest id was taken
            continue
        seen.add(placement_id)
        out.setdefault(trainee, []).append(
            {
                "placementId": placement_id,
                "postId": row[2],
                "dateFrom": _iso(row[3]),
                "dateTo": _iso(row[4]),
                "gradeId": row[5],
                "gradeAbbreviation": row[6],
                "siteId": row[7],
                "siteCode": row[8],
                "placementType": row[9],
                "specialty": row[10],
            }
        )
    return out


def _trusts(conn: Connection, in_page: Range) -> dict[int, list[dict[str, Any]]]:
    pt = person_trust
    rows = conn.execute(
        select(pt.c.personId, pt.c.trustId)
        .where(in_page(pt.c.personId), pt.c.trustId.is_not(None))
        .distinct()
        .order_by(pt.c.personId, pt.c.trustId)
    )
    out: dict[int, list[dict[str, Any]]] = {}
    for person_id, trust_id in rows:
        out.setdefault(person_id, []).append({"personId": person_id, "trustId": trust_id})
    return out


def _memberships(conn: Connection, in_page: Range, today: date) -> dict[int, list[dict[str, Any]]]:
    pm, cm, tn = programme_membership, curriculum_membership, training_number
    rows = conn.execute(
        select(
            pm.c.personId,
            cm.c.id,
            pm.c.programmeId,
            programme.c.programmeName,
            programme.c.programmeNumber,
            tn.c.trainingNumber,
            pm.c.programmeStartDate,
            pm.c.programmeEndDate,
        )
        .select_from(
            pm.join(cm, cm.c.programmeMembershipUuid == pm.c.uuid)
            .outerjoin(programme, programme.c.id == pm.c.programmeId)
            .outerjoin(tn, tn.c.id == pm.c.trainingNumberId)
        )
        .where(in_page(pm.c.personId))
        .order_by(pm.c.personId, cm.c.id, pm.c.id)
    )
    out: dict[int, list[dict[str, Any]]] = {}
    seen: set[tuple[Any, ...]] = set()
    for row in rows:
        entry = {
            "id": row[1],
            "personId": row[0],
            "programmeId": row[2],
            "programmeName": row[3],
            "programmeNumber": row[4],
            "trainingNumber": row[5],
            "programmeMembershipStatus": programme_membership_status(row[6], row[7], today),
        }
        key = tuple(entry.values())
        if key in seen:  # TCS's query is SELECT DISTINCT
            continue
        seen.add(key)
        out.setdefault(row[0], []).append(entry)
    return out


_FLAT_PLACEMENT = (
    "gradeId",
    "gradeAbbreviation",
    "siteId",
    "siteCode",
    "placementType",
    "specialty",
)


def search_text(doc: dict[str, Any]) -> str:
    """What the embedded index matches a query against: names, numbers, ids and labels."""
    parts: list[Any] = [
        doc["personId"],
        doc["intrepidId"],
        doc["forenames"],
        doc["surname"],
        doc["gmcNumber"],
        doc["gdcNumber"],
        doc["publicHealthNumber"],
        doc["role"],
        doc["currentOwner"],
    ]
    for current in doc["currentPlacements"]:
        parts += [current["specialty"], current["gradeAbbreviation"], current["siteCode"]]
    for pm in doc["programmeMemberships"]:
        parts += [pm["programmeName"], pm["programmeNumber"], pm["trainingNumber"]]
    return " ".join(str(p) for p in parts if p is not None and p != "")


def page(conn: Connection, after: int | None, limit: int, today: date) -> list[Document]:
    """The documents of the next `limit` persons with an id above `after`, in id order."""
    p, cd, gmc, gdc, po = person, contact_details, gmc_details, gdc_details, person_owner
    query = (
        select(
            p.c.id,
            p.c.intrepidId,
            cd.c.surname,
            cd.c.forenames,
            gmc.c.gmcNumber,
            gdc.c.gdcNumber,
            p.c.publicHealthNumber,
            p.c.role,
            p.c.status,
            po.c.owner,
            po.c.rule,
        )
        .select_from(
            p.outerjoin(cd, cd.c.id == p.c.id)
            .outerjoin(gmc, gmc.c.id == p.c.id)
            .outerjoin(gdc, gdc.c.id == p.c.id)
            .outerjoin(po, po.c.id == p.c.id)
        )
        .order_by(p.c.id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(p.c.id > after)
    rows = conn.execute(query).all()
    if not rows:
        return []
    in_page = _id_range(after, rows[-1][0])
    placements = _current_placements(conn, in_page, today)
    trusts = _trusts(conn, in_page)
    memberships = _memberships(conn, in_page, today)
    documents = []
    for row in rows:
        pid = row[0]
        current = placements.get(pid, [])
        first = current[0] if current else {}
        doc: dict[str, Any] = {
            "personId": pid,
            "intrepidId": row[1],
            "surname": row[2],
            "forenames": row[3],
            "fullName": full_name(row[3], row[2]),
            "gmcNumber": row[4],
            "gdcNumber": row[5],
            "publicHealthNumber": row[6],
            **{name: first.get(name) for name in _FLAT_PLACEMENT},
            "role": row[7],
            "status": row[8],
            "currentOwner": row[9],
            "currentOwnerRule": row[10],
            "trusts": trusts.get(pid, []),
            "programmeMemberships": memberships.get(pid, []),
            "currentPlacements": current,
        }
        documents.append(Document(pid, doc, search_text(doc)))
    return documents
