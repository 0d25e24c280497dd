"""The `search` operation's documents carry their relevance as `_score`, best first (as
Elasticsearch's hits do), so `syncctl run … search` can show it in its table."""

from __future__ import annotations

from pathlib import Path

from tests.tis.conftest import Db
from tests.tis.search_fixtures import add_person
from tests.tis.test_search_embedded import run, search, specs


def test_embedded_documents_carry_a_score_best_first(db: Db, tmp_path: Path) -> None:
    job = specs(db, tmp_path)["PersonElasticSearchJob"]
    exact = add_person(db, surname="Smith", forenames="Smith")  # the word twice: more relevant
    other = add_person(db, surname="Smith", forenames="Ann")
    add_person(db, surname="Jones", forenames="Bob")
    run(job)
    docs, _ = search(job, "smith")
    assert [d["personId"] for d in docs] == [exact, other]
    scores = [d["_score"] for d in docs]
    assert all(isinstance(s, float) and s > 0 for s in scores)
    assert scores[0] > scores[1]
