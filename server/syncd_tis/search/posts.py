"""The posts index: exactly one document per Post row, id = the post's id.

The shape of TCS's `PostView` as the old job filled it (reference §3.9, §8.6), built page by
page with keyset pagination over Post ids; a page costs nine statements whatever its size:

* `id`, `nationalPostNumber`, `owner`, and `status` = Post.fundingStatus;
* `approvedGradeId`: the APPROVED PostGrade; `primarySpecialtyId/Code/Name`: the PRIMARY
  PostSpecialty and its Specialty; `primarySiteId`: the PRIMARY PostSite (when a post has
  several of a kind, the link with the lowest id: the old GROUP BY made one row per choice);
* `fundingTypes`: distinct types of the fundings valid today (start <= today <= end, or no end);
* `currentTraineeSurnames` / `currentTraineeForenames`: distinct names of the trainees with a
  current placement in the post, sorted, joined by ", " (one text each, as before);
* `programmeNames` / `programmeIds`: via ProgrammePost, distinct and sorted. (The old job joined
  the names with ", " and split them on ";", so a post in two programmes got one name "A, B";
  here each name is its own list entry.)
* `trustIds`: from PostTrust, distinct and sorted.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, or_, select

from syncd_tis._schema import contact_details, placement, post, post_funding, post_trust, programme
from syncd_tis._schema import specialty as specialty_table
from syncd_tis._search_schema import (
    APPROVED,
    PRIMARY,
    post_grade,
    post_site,
    post_specialty,
    programme_post,
)
from syncd_tis.search.sink import Document

TABLES = (
    "Post",
    "PostGrade",
    "PostSpecialty",
    "Specialty",
    "PostSite",
    "PostFunding",
    "Placement",
    "ContactDetails",
    "ProgrammePost",
    "Programme",
    "PostTrust",
)
Range = Callable[[Any], ColumnElement[bool]]


def _id_range(after: int | None, last: int) -> Range:
    if after is None:
        return lambda column: column <= last
    return lambda column: and_(column > after, column <= last)


def _first_link(conn: Connection, query: Any) -> dict[int, tuple[Any, ...]]:
    """The first row per post of a query ordered by (postId, link id)."""
    out: dict[int, tuple[Any, ...]] = {}
    for row in conn.execute(query):
        out.setdefault(row[0], tuple(row[1:]))
    return out


def _grouped(conn: Connection, query: Any) -> dict[int, set[Any]]:
    """The distinct non-null second column per post."""
    out: dict[int, set[Any]] = {}
    for post_id, value in conn.execute(query):
        if value is not None:
            out.setdefault(post_id, set()).add(value)
    return out


def _joined(values: set[str] | None) -> str | None:
    return ", ".join(sorted(values)) if values else None


def search_text(doc: dict[str, Any]) -> str:
    """What the embedded index matches a query against."""
    parts: list[Any] = [
        doc["id"],
        doc["nationalPostNumber"],
        doc["owner"],
        doc["primarySpecialtyCode"],
        doc["primarySpecialtyName"],
        doc["currentTraineeSurnames"],
        doc["currentTraineeForenames"],
        *doc["programmeNames"],
        *doc["fundingTypes"],
    ]
    return " ".join(str(p) for p in parts if p is not None and p != "")


def page(conn: Connection, after: int | None, limit: int, today: date) -> list[Document]:
    """The documents of the next `limit` posts with an id above `after`, in id order."""
    query = (
        select(post.c.id, post.c.nationalPostNumber, post.c.owner, post.c.fundingStatus)
        .order_by(post.c.id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(post.c.id > after)
    rows = conn.execute(query).all()
    if not rows:
        return []
    in_page = _id_range(after, rows[-1][0])
    pg, ps, pst, pf, pp = post_grade, post_specialty, post_site, post_funding, programme_post
    grades = _first_link(
        conn,
        select(pg.c.postId, pg.c.gradeId)
        .where(in_page(pg.c.postId), pg.c.postGradeType == APPROVED)
        .order_by(pg.c.postId, pg.c.id),
    )
    specialties = _first_link(
        conn,
        select(
            ps.c.postId,
            ps.c.specialtyId,
            specialty_table.c.specialtyCode,
            specialty_table.c.name,
        )
        .select_from(ps.outerjoin(specialty_table, specialty_table.c.id == ps.c.specialtyId))
        .where(in_page(ps.c.postId), ps.c.postSpecialtyType == PRIMARY)
        .order_by(ps.c.postId, ps.c.id),
    )
    sites = _first_link(
        conn,
        select(pst.c.postId, pst.c.siteId)
        .where(in_page(pst.c.postId), pst.c.postSiteType == PRIMARY)
        .order_by(pst.c.postId, pst.c.id),
    )
    funding_types = _grouped(
        conn,
        select(pf.c.postId, pf.c.fundingType).where(
            in_page(pf.c.postId),
            or_(and_(pf.c.startDate <= today, pf.c.endDate >= today), pf.c.endDate.is_(None)),
        ),
    )
    current = (
        select(placement.c.postId, contact_details.c.surname, contact_details.c.forenames)
        .select_from(
            placement.outerjoin(contact_details, contact_details.c.id == placement.c.traineeId)
        )
        .where(
            in_page(placement.c.postId),
            placement.c.dateFrom <= today,
            placement.c.dateTo >= today,
        )
    )
    surnames: dict[int, set[str]] = {}
    forenames: dict[int, set[str]] = {}
    for post_id, surname, forename in conn.execute(current):
        if surname is not None:
            surnames.setdefault(post_id, set()).add(surname)
        if forename is not None:
            forenames.setdefault(post_id, set()).add(forename)
    programme_ids = _grouped(
        conn, select(pp.c.postId, pp.c.programmeId).where(in_page(pp.c.postId))
    )
    programme_names = _grouped(
        conn,
        select(pp.c.postId, programme.c.programmeName)
        .select_from(pp.join(programme, programme.c.id == pp.c.programmeId))
        .where(in_page(pp.c.postId)),
    )
    trust_ids = _grouped(
        conn, select(post_trust.c.postId, post_trust.c.trustId).where(in_page(post_trust.c.postId))
    )
    documents = []
    for post_id, npn, owner, funding_status in rows:
        spec = specialties.get(post_id, (None, None, None))
        doc: dict[str, Any] = {
            "id": post_id,
            "nationalPostNumber": npn,
            "owner": owner,
            "status": funding_status,
            "approvedGradeId": grades.get(post_id, (None,))[0],
            "primarySpecialtyId": spec[0],
            "primarySpecialtyCode": spec[1],
            "primarySpecialtyName": spec[2],
            "primarySiteId": sites.get(post_id, (None,))[0],
            "programmeNames": sorted(programme_names.get(post_id, ())),
            "programmeIds": sorted(programme_ids.get(post_id, ())),
            "fundingTypes": sorted(funding_types.get(post_id, ())),
            "trustIds": sorted(trust_ids.get(post_id, ())),
            "currentTraineeSurnames": _joined(surnames.get(post_id)),
            "currentTraineeForenames": _joined(forenames.get(post_id)),
        }
        documents.append(Document(post_id, doc, search_text(doc)))
    return documents
