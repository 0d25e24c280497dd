"""The synthetic dataset: deterministic, realistic enough, and never mixed with real data."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from syncd_tis import TisSettings
from syncd_tis._db import TisError, make_engine
from syncd_tis._demo import generate
from syncd_tis._schema import REFERENCE, TCS, create_schema, person, placement
from tests.tis.conftest import Db

DAY = date(2026, 3, 10)


def sqlite_engine(path: Path) -> Engine:
    url = f"sqlite:///{path}"
    engine = make_engine(url, TisSettings(source_url=url))
    create_schema(engine)
    return engine


def dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in key order."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in [*TCS.sorted_tables, *REFERENCE.sorted_tables]:
            order = list(table.primary_key.columns) or list(table.c)
            out[table.name] = [tuple(r) for r in conn.execute(select(table).order_by(*order))]
    return out


def test_the_same_seed_and_day_give_the_same_rows(tmp_path: Path) -> None:
    """Two databases generated with one seed and day are identical; another seed differs."""
    engines = [sqlite_engine(tmp_path / f"{name}.sqlite3") for name in ("a", "b", "c")]
    try:
        for engine, seed in zip(engines, (7, 7, 8), strict=True):
            generate(engine, persons=300, seed=seed, today=DAY)
        first, second, other = (dump(e) for e in engines)
    finally:
        for engine in engines:
            engine.dispose()
    assert first == second
    assert first[person.name] and first[placement.name]
    assert first != other


def test_every_backend_gets_the_same_dataset(db: Db, tmp_path: Path) -> None:
    """The generator's rows do not depend on the database they go to."""
    reference = sqlite_engine(tmp_path / "reference.sqlite3")
    try:
        generate(reference, persons=120, seed=3, today=DAY)
        expected = dump(reference)
    finally:
        reference.dispose()
    generate(db.engine, persons=120, seed=3, today=DAY)
    assert dump(db.engine) == expected


def test_the_ratios_are_as_documented(tmp_path: Path) -> None:
    """Posts, programmes and trusts scale with persons; the derived tables start empty."""
    engine = sqlite_engine(tmp_path / "ratios.sqlite3")
    try:
        rows = generate(engine, persons=3000, seed=1, today=DAY).rows
    finally:
        engine.dispose()
    assert (rows["Person"], rows["Post"], rows["Programme"], rows["Trust"]) == (3000, 600, 12, 5)
    assert 1.1 <= rows["ProgrammeMembership"] / 3000 <= 1.5
    assert 3.5 <= rows["Placement"] / 3000 <= 6.0
    assert 1.0 <= rows["PostFunding"] / 600 <= 1.5
    assert rows["ContactDetails"] == 3000
    assert 0.88 <= rows["GmcDetails"] / 3000 <= 0.96
    assert not {"PersonOwner", "PersonTrust", "PostTrust"} & set(rows)


def test_a_database_with_persons_is_refused_untouched(tmp_path: Path) -> None:
    """Demo data never mixes with existing data: TisError, and nothing is written."""
    engine = sqlite_engine(tmp_path / "busy.sqlite3")
    try:
        generate(engine, persons=10, seed=1, today=DAY)
        before = dump(engine)
        with pytest.raises(TisError, match="already has 10 persons"):
            generate(engine, persons=10, seed=2, today=DAY)
        assert dump(engine) == before
        with pytest.raises(TisError, match="at least 1"):
            generate(engine, persons=0)
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(person)).scalar() == 10
    finally:
        engine.dispose()
