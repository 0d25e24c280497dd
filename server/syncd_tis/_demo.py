"""A deterministic, realistic synthetic TCS dataset for demos, tests and benchmarks.

`generate(engine, persons=N, seed=S, today=D)` always writes the same rows for the same
(N, S, D); dates are laid out around D (default: today, UTC) so that every job finds current,
past and future records. Ratios (per person unless stated; the expected values at 300,000
persons in brackets):

* reference stand-ins: one Trust per 1,500 persons, at least 5 [200]; 3 Sites per trust;
  14 Grades; 30 Specialties; 13 local offices (the owners);
* Programme: one per 250 persons, at least 5 [1,200]; owner a local office, 1% NULL;
* Post: one per 5 persons, at least 10 [60,000]; owner a local office (1% NULL); employing body
  a trust (2% NULL); training body the same trust 60%, another trust 37%, NULL 3%;
* PostFunding per post: none 10%, one 60%, two 25%, three 5% [75,000]; 3% without start date;
  end date open 30%, past 40% (2% of all exactly yesterday), future 30%;
* Person: role "DR in Training" 95% (the others have no memberships or placements);
  ContactDetails 100%, GmcDetails 92%, GdcDetails 3%;
* ProgrammeMembership per trainee: none 5%, one 60%, two 30%, three 5% [385,000], back to back,
  the first starting in the last 8 years (10%: up to a year later), each 1-4 years long; 1%
  without end date, 0.5% without start date;
* Placement: rotations of 6 months (a third of memberships) or 12 months covering each
  membership at random posts [1.49 million, about 5 per person]; half the trainees without a
  membership have one or two past placements; 5% DRAFT; 0.5% without end date; one PRIMARY
  PlacementSpecialty each;
* the derived tables (PersonOwner, PersonTrust, PostTrust) are left empty, and Person.status
  and Post.fundingStatus are set as they were a week ago (3% of post statuses NULL), so the
  first nightly run has real work, as after a week of missed nights.

Rows are generated and inserted in batches (executemany), so memory stays flat while the
dataset grows.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Table, func, select, text

from syncd_tis._db import TisError
from syncd_tis._schema import (
    contact_details,
    gdc_details,
    gmc_details,
    grade,
    person,
    placement,
    placement_specialty,
    post,
    post_funding,
    programme,
    programme_membership,
    site,
    specialty,
    trust,
)

LOCAL_OFFICES = (
    "Health Education England East Midlands",
    "Health Education England East of England",
    "Health Education England Kent, Surrey and Sussex",
    "Health Education England North Central and East London",
    "Health Education England North East",
    "Health Education England North West",
    "Health Education England North West London",
    "Health Education England South London",
    "Health Education England South West",
    "Health Education England Thames Valley",
    "Health Education England Wessex",
    "Health Education England West Midlands",
    "Health Education England Yorkshire and the Humber",
)
GRADES = (
    "F1", "F2", "CT1", "CT2", "CT3", "ST1", "ST2", "ST3", "ST4", "ST5", "ST6", "ST7", "ST8",
    "GPST1",
)  # fmt: skip
SPECIALTIES = (
    "Acute Internal Medicine", "Anaesthetics", "Cardiology", "Clinical Oncology",
    "Core Surgical Training", "Dermatology", "Emergency Medicine", "Endocrinology",
    "Gastroenterology", "General Practice", "General Surgery", "Geriatric Medicine",
    "Haematology", "Histopathology", "Infectious Diseases", "Intensive Care Medicine",
    "Neurology", "Obstetrics and Gynaecology", "Ophthalmology", "Orthopaedic Surgery",
    "Otolaryngology", "Paediatrics", "Palliative Medicine", "Psychiatry", "Public Health",
    "Radiology", "Renal Medicine", "Respiratory Medicine", "Rheumatology", "Urology",
)  # fmt: skip
SURNAMES = (
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel",
    "Robinson", "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall",
    "Wood", "Jackson", "Clarke", "Khan", "Ahmed", "Lewis", "Hughes", "Edwards", "Hill", "Moore",
    "Clark", "Harrison", "Scott", "Young", "Morris", "Hussain", "Ali", "Martin", "Cooper",
)  # fmt: skip
FORENAMES = (
    "Olivia", "Amelia", "Isla", "Ava", "Mia", "Sophia", "Grace", "Lily", "Freya", "Emily",
    "Noah", "Oliver", "George", "Arthur", "Muhammad", "Leo", "Harry", "Oscar", "Jack", "Jacob",
    "Priya", "Aisha", "Chen", "Fatima", "Kwame", "Siobhan", "Rhys", "Ewan", "Ngozi", "Tomasz",
)  # fmt: skip
FUNDING_TYPES = ("Tariff", "Trust funded", "HEE Funded - Non-Tariff", "Academic - HEE", "Other")
PLACEMENT_TYPES = ("In Post", "In Post", "In Post", "In Post - Acting Up", "Parental Leave")
MEMBERSHIP_TYPES = ("SUBSTANTIVE", "SUBSTANTIVE", "SUBSTANTIVE", "LAT", "MILITARY", "FTSTA")
BATCH_PERSONS = 2000
STALE_DAYS = 7  # statuses are as they were this many days ago


@dataclass(slots=True)
class DemoSummary:
    """How many rows `generate` wrote, per table."""

    rows: dict[str, int] = field(default_factory=dict)

    def add(self, table: Table, count: int) -> None:
        self.rows[table.name] = self.rows.get(table.name, 0) + count

    @property
    def persons(self) -> int:
        return self.rows.get(person.name, 0)


def _pick_weighted(rng: random.Random, weights: tuple[tuple[int, float], ...]) -> int:
    roll = rng.random()
    for value, share in weights:
        if roll < share:
            return value
        roll -= share
    return weights[-1][0]


def _funding_status(fundings: list[tuple[date | None, date | None]], day: date) -> str:
    live = any(
        (end is not None and end >= day) or (end is None and start is not None)
        for start, end in fundings
    )
    return "CURRENT" if live else "INACTIVE"


@dataclass(slots=True)
class _Batch:
    """Rows waiting for one executemany per table."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, table: Table, row: dict[str, Any]) -> None:
        self.rows.setdefault(table.name, []).append(row)

    def flush(self, conn: Connection, tables: list[Table], summary: DemoSummary) -> None:
        for table in tables:  # parents before children
            batch = self.rows.pop(table.name, [])
            if batch:
                conn.execute(table.insert(), batch)
                summary.add(table, len(batch))


class _Generator:
    def __init__(self, persons: int, seed: int, today: date) -> None:
        self.rng = random.Random(seed)
        self.persons = persons
        self.today = today
        self.stale_day = today - timedelta(days=STALE_DAYS)
        self.stamp = datetime.combine(today, datetime.min.time()) - timedelta(days=STALE_DAYS)
        self.trusts = max(5, persons // 1500)
        self.programmes = max(5, persons // 250)
        self.posts = max(10, persons // 5)
        self.post_employer: list[int | None] = []
        self.next_pm_id = 1
        self.next_funding_id = 0  # every id is explicit: the rows never depend on the database
        self.next_placement_id = 1

    def day(self, offset_days: int) -> date:
        return self.today + timedelta(days=offset_days)

    def reference(self, batch: _Batch) -> None:
        rng = self.rng
        for t in range(1, self.trusts + 1):
            batch.add(
                trust,
                {"id": t, "code": f"R{t:04d}", "trustKnownAs": f"Trust {t}", "status": "CURRENT"},
            )
            for s in range(3):
                sid = (t - 1) * 3 + s + 1
                batch.add(
                    site,
                    {"id": sid, "siteCode": f"S{sid:05d}", "siteName": f"Site {sid}", "trustId": t},
                )
        for g, abbreviation in enumerate(GRADES, 1):
            batch.add(
                grade, {"id": g, "abbreviation": abbreviation, "name": f"Grade {abbreviation}"}
            )
        for s, name in enumerate(SPECIALTIES, 1):
            batch.add(specialty, {"id": s, "name": name, "specialtyCode": f"{s:03d}"})
        for p in range(1, self.programmes + 1):
            owner = None if rng.random() < 0.01 else rng.choice(LOCAL_OFFICES)
            batch.add(
                programme,
                {
                    "id": p,
                    "programmeName": f"Programme {p}",
                    "programmeNumber": f"PRG{p:05d}",
                    "owner": owner,
                },
            )

    def posts_and_fundings(self, batch: _Batch, post_id: int) -> None:
        rng = self.rng
        employer = None if rng.random() < 0.02 else rng.randint(1, self.trusts)
        roll = rng.random()
        trainer = (
            employer if roll < 0.60 else (None if roll >= 0.97 else rng.randint(1, self.trusts))
        )
        self.post_employer.append(employer)
        fundings: list[tuple[date | None, date | None]] = []
        for _ in range(_pick_weighted(rng, ((0, 0.10), (1, 0.60), (2, 0.25), (3, 0.05)))):
            start = None if rng.random() < 0.03 else self.day(-rng.randint(30, 2500))
            roll = rng.random()
            if roll < 0.30:
                end = None
            elif roll < 0.32:
                end = self.day(-1)
            elif roll < 0.70:
                end = self.day(-rng.randint(2, 1500))
            else:
                end = self.day(rng.randint(0, 1500))
            fundings.append((start, end))
            self.next_funding_id += 1
            batch.add(
                post_funding,
                {
                    "id": self.next_funding_id,
                    "postId": post_id,
                    "fundingType": rng.choice(FUNDING_TYPES),
                    "startDate": start,
                    "endDate": end,
                },
            )
        status = None if rng.random() < 0.03 else _funding_status(fundings, self.stale_day)
        batch.add(
            post,
            {
                "id": post_id,
                "nationalPostNumber": f"NPN/{post_id:06d}/{rng.choice(GRADES)}",
                "owner": None if rng.random() < 0.01 else rng.choice(LOCAL_OFFICES),
                "employingBodyId": employer,
                "trainingBodyId": trainer,
                "fundingStatus": status,
                "status": "CURRENT" if rng.random() < 0.9 else "INACTIVE",
                "intrepidId": f"P{post_id}",
            },
        )

    def placement(
        self, batch: _Batch, person_id: int, start: date | None, end: date | None
    ) -> None:
        rng = self.rng
        post_id = rng.randint(1, self.posts)
        employer = self.post_employer[post_id - 1] or rng.randint(1, self.trusts)
        site_id = (employer - 1) * 3 + rng.randint(1, 3)
        grade_id = rng.randint(1, len(GRADES))
        pid = self.next_placement_id
        self.next_placement_id += 1
        batch.add(
            placement,
            {
                "id": pid,
                "traineeId": person_id,
                "postId": post_id,
                "dateFrom": start,
                "dateTo": None if rng.random() < 0.005 else end,
                "siteId": site_id,
                "siteCode": f"S{site_id:05d}",
                "gradeId": grade_id,
                "gradeAbbreviation": GRADES[grade_id - 1],
                "placementType": rng.choice(PLACEMENT_TYPES),
                "lifecycleState": "DRAFT" if rng.random() < 0.05 else "APPROVED",
            },
        )
        batch.add(
            placement_specialty,
            {
                "placementId": pid,
                "specialtyId": rng.randint(1, len(SPECIALTIES)),
                "placementSpecialtyType": "PRIMARY",
            },
        )

    def person(self, batch: _Batch, person_id: int) -> None:
        rng = self.rng
        trainee = rng.random() < 0.95
        batch.add(
            contact_details,
            {"id": person_id, "surname": rng.choice(SURNAMES), "forenames": rng.choice(FORENAMES)},
        )
        roll = rng.random()
        if roll < 0.92:
            batch.add(gmc_details, {"id": person_id, "gmcNumber": str(7_000_000 + person_id)})
        elif roll < 0.95:
            batch.add(gdc_details, {"id": person_id, "gdcNumber": str(200_000 + person_id)})
        memberships = (
            _pick_weighted(rng, ((0, 0.05), (1, 0.60), (2, 0.30), (3, 0.05))) if trainee else 0
        )
        periods: list[tuple[date | None, date | None]] = []
        cursor = self.day(
            -rng.randint(0, 8 * 365) + (rng.randint(1, 365) if rng.random() < 0.1 else 0)
        )
        for _ in range(memberships):
            length = rng.randint(365, 4 * 365)
            begin, finish = cursor, cursor + timedelta(days=length)
            cursor = finish + timedelta(days=rng.randint(1, 60))
            self.rotations(batch, person_id, begin, finish)
            start: date | None = begin
            end: date | None = finish
            if rng.random() < 0.01:
                end = None
            elif rng.random() < 0.005:
                start = None
            periods.append((start, end))
            batch.add(
                programme_membership,
                {
                    "id": self.next_pm_id,
                    "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "personId": person_id,
                    "programmeId": rng.randint(1, self.programmes),
                    "programmeStartDate": start,
                    "programmeEndDate": end,
                    "programmeMembershipType": rng.choice(MEMBERSHIP_TYPES),
                    "trainingNumberId": None,
                    "amendedDate": self.stamp,
                },
            )
            self.next_pm_id += 1
        if trainee and not memberships and rng.random() < 0.5:
            for _ in range(rng.randint(1, 2)):
                start = self.day(-rng.randint(400, 3000))
                self.placement(
                    batch, person_id, start, start + timedelta(days=rng.choice((120, 182, 365)))
                )
        current = any(
            s is not None and e is not None and s <= self.stale_day <= e for s, e in periods
        )
        batch.add(
            person,
            {
                "id": person_id,
                "intrepidId": f"T{person_id}",
                "addedDate": self.stamp,
                "amendedDate": self.stamp,
                "role": "DR in Training"
                if trainee
                else rng.choice(("Educational Supervisor", "Clinical Supervisor")),
                "status": "CURRENT" if current else "INACTIVE",
                "publicHealthNumber": None,
            },
        )

    def rotations(self, batch: _Batch, person_id: int, start: date, end: date) -> None:
        """Placements of 6 or 12 months back to back over one membership."""
        months = self.rng.choice((6, 12, 12))
        step = timedelta(days=months * 365 // 12)
        cursor = start
        for _ in range(8):
            if cursor >= end:
                return
            stop = min(end, cursor + step - timedelta(days=1))
            self.placement(batch, person_id, cursor, stop)
            cursor = stop + timedelta(days=1)


PERSON_TABLES = [person, contact_details, gmc_details, gdc_details, post, post_funding,
                 programme_membership, placement, placement_specialty]  # fmt: skip
REFERENCE_TABLES = [trust, site, grade, specialty, programme]


def generate(
    engine: Engine,
    *,
    persons: int,
    seed: int = 1,
    today: date | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> DemoSummary:
    """Fill an empty TCS schema with a synthetic dataset; see the module docstring for ratios.

    Raises TisError when the database already holds persons (the demo never mixes with data).
    """
    if persons < 1:
        raise TisError(f"persons must be at least 1, got {persons}")
    day = today or datetime.now(UTC).date()
    gen = _Generator(persons, seed, day)
    summary = DemoSummary()
    with engine.begin() as conn:
        existing = conn.execute(select(func.count()).select_from(person)).scalar_one()
        if existing:
            raise TisError(
                f"the database already has {existing} persons; demo data needs an empty one"
            )
        batch = _Batch()
        gen.reference(batch)
        batch.flush(conn, REFERENCE_TABLES, summary)
    for first in range(1, gen.posts + 1, 5 * BATCH_PERSONS):
        with engine.begin() as conn:
            for post_id in range(first, min(gen.posts, first + 5 * BATCH_PERSONS - 1) + 1):
                gen.posts_and_fundings(batch, post_id)
            batch.flush(conn, [post, post_funding], summary)
    for first in range(1, persons + 1, BATCH_PERSONS):
        last = min(persons, first + BATCH_PERSONS - 1)
        with engine.begin() as conn:
            for person_id in range(first, last + 1):
                gen.person(batch, person_id)
            batch.flush(conn, PERSON_TABLES, summary)
        if on_progress is not None:
            on_progress(last, persons)
    if engine.dialect.name == "postgresql":
        _advance_sequences(engine)
    return summary


def _advance_sequences(engine: Engine) -> None:
    """Explicit ids leave PostgreSQL's sequences behind; move them past the data."""
    tables = [*REFERENCE_TABLES, person, post, post_funding, programme_membership, placement]
    with engine.begin() as conn:
        for table in tables:
            if "id" not in table.c or table.c.id.autoincrement is False:
                continue
            conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('\"{table.name}\"', 'id'),"
                    f' (SELECT COALESCE(MAX(id), 1) FROM "{table.name}"))'
                )
            )
