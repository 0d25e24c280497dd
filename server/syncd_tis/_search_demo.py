"""Demo rows for the search-only tables (`_search_schema`), derived from the demo dataset.

`seed_search_demo(engine, seed)` runs after `_demo.generate` and always writes the same rows for
the same existing data and seed:

* per post: one APPROVED PostGrade (10% also an OTHER grade), one PRIMARY PostSpecialty (20%
  also an OTHER one), one PRIMARY PostSite (a site of the employing trust when there is one;
  10% also an OTHER site) and one or two ProgrammePost links (1% of posts have none);
* per programme membership: one to three CurriculumMemberships over the membership's dates
  (1: 50%, 2: 35%, 3: 15%);
* 85% of the memberships without a training number get one: a TrainingNumber row whose id is
  the membership's id, linked by one set-based UPDATE.

Source rows are read in keyset chunks and written with executemany, one transaction per chunk,
so memory stays flat and 300,000 persons take seconds.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Column, Connection, Engine, Table, func, select, update

from syncd_tis._db import TisError
from syncd_tis._schema import grade, post, programme, programme_membership, site, specialty
from syncd_tis._search_schema import (
    APPROVED,
    PRIMARY,
    SEARCH_TABLES,
    curriculum_membership,
    post_grade,
    post_site,
    post_specialty,
    programme_post,
    training_number,
)

CHUNK = 20_000
CURRICULA = 400  # distinct curriculum ids the memberships draw from
DEANERIES = ("EMD", "EOE", "KSS", "LDN", "NTH", "NWE", "SWN", "TVD", "WES", "WMD", "YHD")


def _each_chunk(
    engine: Engine,
    table: Table,
    columns: Sequence[Column[Any]],
    handle: Callable[[Connection, list[Any]], None],
) -> None:
    """`handle(conn, rows)` for all rows of `table` in id order, `CHUNK` at a time (keyset, no
    OFFSET), each chunk read and handled in one transaction: on SQLite every transaction takes
    the write lock, so a reader kept open beside a writer would block it."""
    last: int | None = None
    while True:
        with engine.begin() as conn:
            query = select(table.c.id, *columns).order_by(table.c.id).limit(CHUNK)
            if last is not None:
                query = query.where(table.c.id > last)
            rows = list(conn.execute(query))
            if not rows:
                return
            handle(conn, rows)
        last = rows[-1][0]


def _count(conn: Connection, table: Table) -> int:
    return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _post_links(
    rng: random.Random, rows: list[Any], sizes: dict[str, int]
) -> dict[str, list[dict[str, Any]]]:
    grades, specialties, programmes, sites = (
        sizes["grades"],
        sizes["specialties"],
        sizes["programmes"],
        sizes["sites"],
    )
    out: dict[str, list[dict[str, Any]]] = {
        t.name: [] for t in (post_grade, post_specialty, post_site, programme_post)
    }
    for post_id, employer in rows:
        out[post_grade.name].append(
            {"postId": post_id, "gradeId": rng.randint(1, grades), "postGradeType": APPROVED}
        )
        if rng.random() < 0.10:
            out[post_grade.name].append(
                {"postId": post_id, "gradeId": rng.randint(1, grades), "postGradeType": "OTHER"}
            )
        out[post_specialty.name].append(
            {
                "postId": post_id,
                "specialtyId": rng.randint(1, specialties),
                "postSpecialtyType": PRIMARY,
            }
        )
        if rng.random() < 0.20:
            out[post_specialty.name].append(
                {
                    "postId": post_id,
                    "specialtyId": rng.randint(1, specialties),
                    "postSpecialtyType": "OTHER",
                }
            )
        # The demo lays out three sites per trust: ids 3(t-1)+1 .. 3(t-1)+3.
        primary = (employer - 1) * 3 + rng.randint(1, 3) if employer else rng.randint(1, sites)
        out[post_site.name].append({"postId": post_id, "siteId": primary, "postSiteType": PRIMARY})
        if rng.random() < 0.10:
            out[post_site.name].append(
                {"postId": post_id, "siteId": rng.randint(1, sites), "postSiteType": "OTHER"}
            )
        roll = rng.random()
        links = 0 if roll < 0.01 else (1 if roll < 0.80 else 2)
        for programme_id in rng.sample(range(1, programmes + 1), min(links, programmes)):
            out[programme_post.name].append({"postId": post_id, "programmeId": programme_id})
    return out


def _curricula(rng: random.Random, rows: list[Any]) -> dict[str, list[dict[str, Any]]]:
    memberships: list[dict[str, Any]] = []
    numbers: list[dict[str, Any]] = []
    for pm_id, uuid, start, end, number_id in rows:
        roll = rng.random()
        memberships.extend(
            {
                "programmeMembershipUuid": uuid,
                "curriculumId": rng.randint(1, CURRICULA),
                "curriculumStartDate": start,
                "curriculumEndDate": end,
            }
            for _ in range(1 if roll < 0.50 else (2 if roll < 0.85 else 3))
        )
        if number_id is None and rng.random() < 0.85:
            numbers.append(
                {
                    "id": pm_id,
                    "trainingNumber": f"{rng.choice(DEANERIES)}/{rng.randint(1, 999):03d}"
                    f"/{pm_id % 1000:03d}/{rng.choice('CDN')}",
                }
            )
    return {curriculum_membership.name: memberships, training_number.name: numbers}


def _insert(
    conn: Connection, rows: dict[str, list[dict[str, Any]]], counts: dict[str, int]
) -> None:
    for table in SEARCH_TABLES:
        batch = rows.get(table.name)
        if batch:
            conn.execute(table.insert(), batch)
            counts[table.name] = counts.get(table.name, 0) + len(batch)


def seed_search_demo(engine: Engine, seed: int = 1) -> dict[str, int]:
    """Fill the search-only tables from the demo rows already there; returns rows per table.

    Raises TisError when any of them has rows already (demo rows never mix with data).
    """
    rng = random.Random(f"syncd.tis.search-demo:{seed}")
    counts: dict[str, int] = {}
    with engine.connect() as conn:
        for table in SEARCH_TABLES:
            if rows := _count(conn, table):
                raise TisError(
                    f"{table.name} already has {rows} rows; search demo rows need it empty"
                )
        sizes = {
            "grades": max(1, _count(conn, grade)),
            "specialties": max(1, _count(conn, specialty)),
            "programmes": _count(conn, programme),
            "sites": max(1, _count(conn, site)),
        }
        if not sizes["programmes"] or not _count(conn, post):
            raise TisError("no demo data to derive from; run the demo generator first")
    pm = programme_membership
    _each_chunk(
        engine,
        post,
        [post.c.employingBodyId],
        lambda conn, rows: _insert(conn, _post_links(rng, rows, sizes), counts),
    )
    _each_chunk(
        engine,
        pm,
        [pm.c.uuid, pm.c.programmeStartDate, pm.c.programmeEndDate, pm.c.trainingNumberId],
        lambda conn, rows: _insert(conn, _curricula(rng, rows), counts),
    )
    with engine.begin() as conn:
        # TrainingNumber ids were taken from the memberships' ids, so one statement links them.
        conn.execute(
            update(pm)
            .where(pm.c.trainingNumberId.is_(None))
            .where(pm.c.id.in_(select(training_number.c.id)))
            .values(trainingNumberId=pm.c.id)
        )
    if engine.dialect.name == "postgresql":
        _advance_sequences(engine)
    return counts


def _advance_sequences(engine: Engine) -> None:
    """Explicit TrainingNumber ids leave PostgreSQL's sequence behind; move it past the data."""
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "SELECT setval(pg_get_serial_sequence('\"TrainingNumber\"', 'id'),"
            ' (SELECT COALESCE(MAX(id), 1) FROM "TrainingNumber"))'
        )
