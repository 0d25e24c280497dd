"""The embedded sink (SQLite FTS5 in the state directory) through the job bodies: searchers
never see an empty or partial index, a failed or cancelled build leaves the old one serving,
and the `search` operation answers from it."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from syncd.beans.model import Invocation, Result
from syncd.errors import InvalidArgumentError, RunCancelled
from syncd.job import JobSpec, PackContext
from syncd_tis._search_schema import post_specialty
from syncd_tis.search.embedded import EmbeddedSearcher, fts_query
from syncd_tis.search.jobs import INDEX_DIR, search_and_reval_jobs
from syncd_tis.search.settings import SearchSettings
from tests.tis.conftest import Db, RecordingRunContext
from tests.tis.search_fixtures import add_person, add_placement, add_specialty

BOUND = 10.0  # seconds any wait in these tests may take at most


def specs(db: Db, state_dir: Path, **search: Any) -> dict[str, JobSpec]:
    built = search_and_reval_jobs(
        PackContext(state_dir=state_dir, settings=None),
        db.settings(),
        search=SearchSettings(page_size=2, **search),
        env={},
    )
    return {s.name: s for s in built}


def run(spec: JobSpec) -> RecordingRunContext:
    ctx = RecordingRunContext(spec.settings)
    spec.body(ctx)
    return ctx


def search(spec: JobSpec, query: str, limit: int = 100) -> tuple[list[dict[str, Any]], str]:
    (op,) = spec.extra_operations
    args = op.bind([], {"query": query, "limit": limit})
    result = op.handler(Invocation(arguments=args, actor="test"))
    assert isinstance(result, Result) and isinstance(result.value, list)
    return result.value, result.message


def smiths(spec: JobSpec) -> set[int]:
    docs, _ = search(spec, "smith")
    return {d["personId"] for d in docs}


class TestAtomicRebuild:
    def test_a_concurrent_searcher_never_sees_an_empty_or_partial_index(
        self, db: Db, tmp_path: Path
    ) -> None:
        """A reader searching in a loop during a rebuild sees the complete old set, then the
        complete new one; never fewer documents, never a mix. The build waits at every page
        until the reader has searched twice more, so reads provably overlap the build."""
        job = specs(db, tmp_path)["PersonElasticSearchJob"]
        old = {add_person(db, surname="Smith") for _ in range(5)}
        run(job)
        assert smiths(job) == old
        new = old | {add_person(db, surname="Smith") for _ in range(4)}

        seen: list[frozenset[int]] = []
        during_build: list[frozenset[int]] = []
        reads = threading.Condition()
        stop = threading.Event()
        errors: list[BaseException] = []

        def reader() -> None:
            deadline = time.monotonic() + BOUND
            try:
                while not stop.is_set() and time.monotonic() < deadline:
                    found = frozenset(smiths(job))
                    with reads:
                        seen.append(found)
                        reads.notify_all()
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        ctx = RecordingRunContext(job.settings)
        scratch_dir = tmp_path / INDEX_DIR

        def meet_the_reader() -> None:
            with reads:
                target = len(seen) + 2
                assert reads.wait_for(lambda: len(seen) >= target, timeout=BOUND)
                during_build.extend(seen[-2:])
            assert list(scratch_dir.glob("persons.sqlite3.*.building"))

        ctx.recorder.on("search.index.page", meet_the_reader)
        thread = threading.Thread(target=reader)
        thread.start()
        try:
            job.body(ctx)
            with reads:  # and one search after the switch
                target = len(seen) + 1
                assert reads.wait_for(lambda: len(seen) >= target, timeout=BOUND)
        finally:
            stop.set()
            thread.join(timeout=BOUND)
        assert not thread.is_alive() and not errors
        assert len(during_build) >= 2 * 5  # 9 persons in pages of 2: five pages
        assert set(during_build) == {frozenset(old)}
        assert set(seen) <= {frozenset(old), frozenset(new)}
        assert seen[-1] == frozenset(new)
        assert not list(scratch_dir.glob("*.building*"))

    def test_a_failed_build_leaves_the_previous_index_serving(self, db: Db, tmp_path: Path) -> None:
        """An error mid-build removes the scratch file; searches still see the old index."""
        job = specs(db, tmp_path)["PersonElasticSearchJob"]
        old = {add_person(db) for _ in range(3)}
        run(job)
        for _ in range(3):
            add_person(db)
        ctx = RecordingRunContext(job.settings)

        def fail() -> None:
            raise RuntimeError("database went away")

        ctx.recorder.on("search.index.page", fail)
        with pytest.raises(RuntimeError, match="went away"):
            job.body(ctx)
        assert smiths(job) == old
        assert not list((tmp_path / INDEX_DIR).glob("*.building*"))
        assert "search.embedded.aborted" in ctx.recorder.names()

    def test_a_cancelled_build_leaves_the_previous_index_serving(
        self, db: Db, tmp_path: Path
    ) -> None:
        job = specs(db, tmp_path)["PersonElasticSearchJob"]
        old = {add_person(db) for _ in range(3)}
        run(job)
        add_person(db)
        ctx = RecordingRunContext(job.settings)
        ctx.recorder.on("search.index.page", ctx.cancel)
        with pytest.raises(RunCancelled):
            job.body(ctx)
        assert smiths(job) == old
        assert not list((tmp_path / INDEX_DIR).glob("*.building*"))

    def test_a_scratch_file_left_by_a_crash_is_removed_by_the_next_build(
        self, db: Db, tmp_path: Path
    ) -> None:
        job = specs(db, tmp_path)["PersonElasticSearchJob"]
        add_person(db)
        orphan = tmp_path / INDEX_DIR / "persons.sqlite3.dead0001.building"
        orphan.parent.mkdir(parents=True)
        orphan.write_bytes(b"half a database")
        ctx = run(job)
        assert not orphan.exists()
        assert ctx.rows_written == 1
        assert EmbeddedSearcher(tmp_path / INDEX_DIR, "persons").count() == 1


class TestSearchOperation:
    def test_before_the_first_build_it_says_so(self, db: Db, tmp_path: Path) -> None:
        docs, message = search(specs(db, tmp_path)["PersonElasticSearchJob"], "smith")
        assert docs == []
        assert "has not been built yet" in message

    def test_it_finds_persons_by_name_number_and_prefix(self, db: Db, tmp_path: Path) -> None:
        job = specs(db, tmp_path)["PersonElasticSearchJob"]
        ann = add_person(db, surname="Ó Briain", forenames="Ann", gmc="7123456")
        bob = add_person(db, surname="Smith", forenames="Bob", gmc="7000002")
        run(job)
        assert [d["personId"] for d in search(job, "obriain")[0]] == []
        assert [d["personId"] for d in search(job, "briain ann")[0]] == [ann]
        assert [d["personId"] for d in search(job, "o briain")[0]] == [ann]  # diacritics
        assert [d["personId"] for d in search(job, "71234")[0]] == [ann]  # prefix
        assert [d["personId"] for d in search(job, "SMI")[0]] == [bob]
        docs, message = search(job, "smith", limit=1)
        assert len(docs) == 1 and message == "1 document(s)"
        assert docs[0]["fullName"] == "Bob Smith"

    @pytest.mark.parametrize("query", ['smith OR "', "NEAR(a b)", "*", "-smith", "a:b", "  "])
    def test_query_syntax_is_plain_text(self, db: Db, tmp_path: Path, query: str) -> None:
        """FTS5 operators and punctuation in a query are words, never a syntax error."""
        job = specs(db, tmp_path)["PersonElasticSearchJob"]
        add_person(db)
        run(job)
        docs, _ = search(job, query)
        assert isinstance(docs, list)

    def test_limit_is_checked(self, db: Db, tmp_path: Path) -> None:
        (op,) = specs(db, tmp_path)["PersonElasticSearchJob"].extra_operations
        with pytest.raises(InvalidArgumentError, match="between 1 and 1000"):
            op.bind([], {"query": "x", "limit": 0})
        with pytest.raises(InvalidArgumentError, match="required"):
            op.bind([], {"limit": 5})
        assert op.bind(["smith"], {}) == {"query": "smith", "limit": 10}

    def test_posts_are_searchable_too(self, db: Db, tmp_path: Path) -> None:
        """The posts index: one document per post, found by specialty or trainee name."""
        job = specs(db, tmp_path)["PostElasticSearchJob"]
        cardio = add_specialty(db, "Cardiology", "003")
        first, second = db.post(owner="North"), db.post(owner="South")
        db.insert(post_specialty, postId=first, specialtyId=cardio, postSpecialtyType="PRIMARY")
        today = datetime.now(UTC).date()
        add_placement(
            db,
            add_person(db, surname="Okafor"),
            second,
            today - timedelta(days=3),
            today + timedelta(days=3),
        )
        ctx = run(job)
        assert ctx.rows_written == 2
        assert [d["id"] for d in search(job, "cardiology")[0]] == [first]
        assert [d["id"] for d in search(job, "okafor")[0]] == [second]


def test_fts_query_quotes_every_word_as_a_prefix() -> None:
    assert fts_query('NPN/0001/F1 "x') == '"NPN"* "0001"* "F1"* "x"*'
    assert fts_query("  -- ") == ""
