"""The documents of the persons and posts indices, from hand-built rows on every backend."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from syncd_tis._schema import post_funding, post_trust, programme
from syncd_tis._search_schema import post_grade, post_site, post_specialty, programme_post
from syncd_tis.search import persons, posts
from syncd_tis.search.sink import Document
from tests.tis.conftest import Db
from tests.tis.search_fixtures import (
    add_membership,
    add_owner,
    add_person,
    add_placement,
    add_specialty,
    add_trust,
)

TODAY = date(2026, 3, 10)


def day(offset: int) -> date:
    return TODAY + timedelta(days=offset)


def person_docs(db: Db, page_size: int = 100) -> list[Document]:
    """Every person document, read in keyset pages of `page_size`."""
    out: list[Document] = []
    last: int | None = None
    with db.engine.connect() as conn:
        while batch := persons.page(conn, last, page_size, TODAY):
            out += batch
            last = batch[-1].id
    return out


def post_docs(db: Db, page_size: int = 100) -> list[Document]:
    out: list[Document] = []
    last: int | None = None
    with db.engine.connect() as conn:
        while batch := posts.page(conn, last, page_size, TODAY):
            out += batch
            last = batch[-1].id
    return out


class TestRules:
    @pytest.mark.parametrize(
        ("start", "end", "status"),
        [
            (day(-10), day(10), "CURRENT"),
            (TODAY, TODAY, "CURRENT"),
            (day(-10), day(-1), "PAST"),
            (day(1), day(10), "FUTURE"),
            (None, day(10), "PAST"),
            (day(-10), None, "PAST"),
            (day(1), None, "PAST"),
        ],
    )
    def test_programme_membership_status(
        self, start: date | None, end: date | None, status: str
    ) -> None:
        """PAST when a date is missing or it ended, FUTURE when it has not started."""
        assert persons.programme_membership_status(start, end, TODAY) == status

    def test_full_name_joins_what_there_is(self) -> None:
        assert persons.full_name("Ann", "Smith") == "Ann Smith"
        assert persons.full_name(None, "Smith") == "Smith"
        assert persons.full_name(" ", None) is None


class TestPersonDocument:
    def test_the_documented_shape(self, db: Db) -> None:
        """Names, numbers, owner and rule, status, nested trusts and memberships (one entry
        per curriculum membership, with the PM status rule), current placement fields."""
        cardio = add_specialty(db, "Cardiology", "003")
        pid = add_person(db, surname="Smith", forenames="Ann", gmc="7000001", status="CURRENT")
        add_owner(db, pid, "Health Education England Wessex", "P1")
        add_trust(db, pid, 7)
        add_trust(db, pid, 3)
        current_prog = db.programme("Wessex")
        past_prog = db.programme("Kent")
        current_pm, current_cms = add_membership(
            db, pid, current_prog, day(-100), day(300), curricula=2, training="WES/003/001/C"
        )
        _past_pm, past_cms = add_membership(db, pid, past_prog, day(-900), day(-101))
        _open, open_cms = add_membership(db, pid, past_prog, day(-50), None)
        add_membership(db, pid, current_prog, day(-5), day(5), curricula=0)  # no curricula
        a_post = db.post()
        add_placement(db, pid, a_post, day(-400), day(-200), grade=(9, "ST3"))
        add_placement(
            db,
            pid,
            a_post,
            day(-30),
            day(150),
            grade=(6, "ST1"),
            site=(12, "S00012"),
            placement_type="In Post",
            specialty_id=cardio,
        )

        (doc,) = person_docs(db)
        assert doc.id == pid
        src = doc.source
        memberships = src.pop("programmeMemberships")
        current = src.pop("currentPlacements")
        assert src == {
            "personId": pid,
            "intrepidId": None,
            "surname": "Smith",
            "forenames": "Ann",
            "fullName": "Ann Smith",
            "gmcNumber": "7000001",
            "gdcNumber": None,
            "publicHealthNumber": None,
            "gradeId": 6,
            "gradeAbbreviation": "ST1",
            "siteId": 12,
            "siteCode": "S00012",
            "placementType": "In Post",
            "specialty": "Cardiology",
            "role": "DR in Training",
            "status": "CURRENT",
            "currentOwner": "Health Education England Wessex",
            "currentOwnerRule": "P1",
            "trusts": [{"personId": pid, "trustId": 3}, {"personId": pid, "trustId": 7}],
        }
        expected_memberships: list[dict[str, Any]] = [
            {
                "id": cm,
                "personId": pid,
                "programmeId": current_prog,
                "programmeName": "programme of Wessex",
                "programmeNumber": None,
                "trainingNumber": "WES/003/001/C",
                "programmeMembershipStatus": "CURRENT",
            }
            for cm in current_cms
        ] + [
            {
                "id": cm,
                "personId": pid,
                "programmeId": past_prog,
                "programmeName": "programme of Kent",
                "programmeNumber": None,
                "trainingNumber": None,
                "programmeMembershipStatus": "PAST",
            }
            for cm in past_cms + open_cms
        ]
        assert memberships == sorted(expected_memberships, key=lambda m: m["id"])
        assert current == [
            {
                "placementId": current[0]["placementId"],
                "postId": a_post,
                "dateFrom": day(-30).isoformat(),
                "dateTo": day(150).isoformat(),
                "gradeId": 6,
                "gradeAbbreviation": "ST1",
                "siteId": 12,
                "siteCode": "S00012",
                "placementType": "In Post",
                "specialty": "Cardiology",
            }
        ]
        assert current_pm  # used: a membership with two curricula gave two entries
        for word in ("Ann", "Smith", "7000001", "Cardiology", "WES/003/001/C"):
            assert word in doc.text

    def test_several_current_placements_make_one_document(self, db: Db) -> None:
        """The earliest-starting current placement gives the flat fields; all are nested, in
        start order; a FUTURE membership is marked so."""
        pid = add_person(db)
        other = add_person(db, surname="Jones")
        a_post, b_post = db.post(), db.post()
        later = add_placement(db, pid, b_post, day(-10), day(20), grade=(2, "F2"))
        earlier = add_placement(db, pid, a_post, day(-60), day(5), grade=(1, "F1"))
        same_day = add_placement(db, pid, a_post, day(-60), day(90), grade=(3, "CT1"))
        add_placement(db, pid, a_post, day(1), day(90), grade=(4, "CT2"))  # future
        add_placement(db, other, a_post, day(-1), day(1), grade=(5, "CT3"))
        add_membership(db, pid, db.programme("X"), day(10), day(400))

        docs = person_docs(db, page_size=1)
        assert [d.id for d in docs] == [pid, other]
        first = docs[0].source
        assert [p["placementId"] for p in first["currentPlacements"]] == [earlier, same_day, later]
        assert (first["gradeId"], first["gradeAbbreviation"]) == (1, "F1")
        assert first["programmeMemberships"][0]["programmeMembershipStatus"] == "FUTURE"
        assert docs[1].source["gradeAbbreviation"] == "CT3"

    def test_every_person_has_exactly_one_document(self, db: Db) -> None:
        """Across page boundaries, without contact details, placements or memberships."""
        ids = [add_person(db, contact=(n % 2 == 0)) for n in range(7)]
        a_post = db.post()
        for pid in ids:
            add_placement(db, pid, a_post, day(-1), day(1))
            add_placement(db, pid, a_post, day(-2), day(2))
        docs = person_docs(db, page_size=3)
        assert [d.id for d in docs] == ids
        assert docs[1].source["fullName"] is None
        assert all(len(d.source["currentPlacements"]) == 2 for d in docs)


class TestPostDocument:
    def test_the_documented_shape(self, db: Db) -> None:
        """Approved grade, primary specialty and site, current fundings, current trainees,
        programmes and trusts; one document per post with id = the post's id."""
        cardio = add_specialty(db, "Cardiology", "003")
        other = add_specialty(db, "Urology", "030")
        p = db.insert(programme, programmeName="Cardio North", owner="North")
        q = db.programme("South")
        pid = db.post(owner="Health Education England North East", funding_status="CURRENT")
        empty = db.post()
        db.insert(post_grade, postId=pid, gradeId=4, postGradeType="OTHER")
        db.insert(post_grade, postId=pid, gradeId=6, postGradeType="APPROVED")
        db.insert(post_specialty, postId=pid, specialtyId=other, postSpecialtyType="OTHER")
        db.insert(post_specialty, postId=pid, specialtyId=cardio, postSpecialtyType="PRIMARY")
        db.insert(post_site, postId=pid, siteId=31, postSiteType="PRIMARY")
        db.insert(programme_post, postId=pid, programmeId=q)
        db.insert(programme_post, postId=pid, programmeId=p)
        db.insert(post_trust, postId=pid, trustId=9)
        db.insert(post_trust, postId=pid, trustId=2)
        for ftype, start, end in (
            ("Tariff", day(-10), day(10)),
            ("Tariff", day(-10), None),
            ("Academic", None, None),
            ("Old", day(-100), day(-1)),
            ("Later", day(1), day(100)),
        ):
            db.insert(post_funding, postId=pid, fundingType=ftype, startDate=start, endDate=end)
        for surname, forenames, start, end in (
            ("Smith", "Ann", day(-5), day(5)),
            ("Jones", "Bob", day(-5), day(5)),
            ("Smith", "Cy", day(-5), day(5)),
            ("Past", "Pat", day(-50), day(-5)),
        ):
            add_placement(db, add_person(db, surname=surname, forenames=forenames), pid, start, end)

        docs = post_docs(db, page_size=1)
        assert [d.id for d in docs] == [pid, empty]
        assert docs[0].source == {
            "id": pid,
            "nationalPostNumber": None,
            "owner": "Health Education England North East",
            "status": "CURRENT",
            "approvedGradeId": 6,
            "primarySpecialtyId": cardio,
            "primarySpecialtyCode": "003",
            "primarySpecialtyName": "Cardiology",
            "primarySiteId": 31,
            "programmeNames": ["Cardio North", "programme of South"],
            "programmeIds": sorted([p, q]),
            "fundingTypes": ["Academic", "Tariff"],
            "trustIds": [2, 9],
            "currentTraineeSurnames": "Jones, Smith",
            "currentTraineeForenames": "Ann, Bob, Cy",
        }
        assert docs[1].source["programmeNames"] == []
        assert docs[1].source["currentTraineeSurnames"] is None
        assert "Cardiology" in docs[0].text
