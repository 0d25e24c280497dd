"""The Elasticsearch sink: a new index per run, byte-capped bulks, retries with backoff, an
atomic alias switch, and a failed run that leaves the previous index serving.

Each behaviour runs against a stand-in server (tests.tis.search_fixtures: the official client,
real HTTP, faults on demand) and against a real Elasticsearch when SYNCD_TEST_ES_URL is set;
without it the real-server cases are skipped, visibly. Fault injection is stand-in only.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch, NotFoundError

from syncd.beans.model import Invocation
from syncd.errors import RunCancelled
from syncd.job import PackContext
from syncd_tis._db import RetryPolicy
from syncd_tis.search import mappings
from syncd_tis.search.elastic import ElasticsearchSearcher, ElasticsearchSink, built_by_us
from syncd_tis.search.jobs import search_and_reval_jobs
from syncd_tis.search.settings import SearchSettings
from syncd_tis.search.sink import Document, SearchError
from tests.tis.conftest import Db, RecordingRunContext
from tests.tis.search_fixtures import FakeElasticsearch, add_person, fake_elasticsearch


@dataclass
class Target:
    url: str
    fake: FakeElasticsearch | None
    alias: str
    client: Elasticsearch

    def indices(self) -> list[str]:
        """The indices this test's sink has built, whatever their aliases."""
        try:
            found = self.client.indices.get_alias(index=f"{self.alias}-*").body
        except NotFoundError:
            return []
        return sorted(n for n in found if built_by_us(self.alias).fullmatch(n))

    def aliased(self) -> list[str]:
        try:
            return sorted(self.client.indices.get_alias(name=self.alias).body)
        except NotFoundError:
            return []


@pytest.fixture(params=["stand-in", "real"])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    alias = f"syncd-test-{secrets.token_hex(4)}"
    if request.param == "real":
        url = os.environ.get("SYNCD_TEST_ES_URL")
        if not url:
            pytest.skip("SYNCD_TEST_ES_URL not set: no Elasticsearch server here")
        client = Elasticsearch(url, request_timeout=60)
        target = Target(url, None, alias, client)
        try:
            yield target
        finally:
            for name in target.indices():
                client.indices.delete(index=name)
            if client.indices.exists(index=alias):
                client.indices.delete(index=alias)
            client.close()
        return
    with fake_elasticsearch() as fake:
        client = Elasticsearch(fake.url)
        try:
            yield Target(fake.url, fake, alias, client)
        finally:
            client.close()


def stand_in(target: Target) -> FakeElasticsearch:
    if target.fake is None:
        pytest.skip("fault injection needs the stand-in server")
    return target.fake


def documents(ids: range, tag: str, padding: int = 0) -> list[Document]:
    return [
        Document(
            i,
            {
                "personId": i,
                "surname": "Smith",
                "forenames": tag,
                "fullName": f"{tag} Smith",
                "role": "x" * padding,
            },
            "",
        )
        for i in ids
    ]


def make_sink(
    target: Target, ctx: RecordingRunContext, *, max_bytes: int = 5_000_000, attempts: int = 4
) -> ElasticsearchSink:
    return ElasticsearchSink(
        Elasticsearch(target.url, max_retries=0, request_timeout=60),
        target.alias,
        mappings.PERSONS,
        max_bytes=max_bytes,
        policy=RetryPolicy(attempts=attempts, initial_delay=0.5, max_delay=4.0),
        log=ctx.log,
        wait=ctx.wait_cancelled,  # records the back-off instead of sleeping
    )


def build(target: Target, docs: list[Document], ctx: RecordingRunContext | None = None) -> str:
    ctx = ctx or RecordingRunContext()
    sink = make_sink(target, ctx)
    sink.begin()
    index = sink.index
    assert index is not None
    try:
        for start in range(0, len(docs), 3):
            sink.write(docs[start : start + 3])
        sink.commit()
    except BaseException:
        sink.abort()
        raise
    return index


def found(target: Target, query: str = "smith") -> list[tuple[int, str]]:
    searcher = ElasticsearchSearcher(target.client, target.alias, mappings.PERSON_SEARCH_FIELDS)
    return sorted((d["personId"], d["forenames"]) for d in searcher.search(query, 100))


class TestSwitch:
    def test_each_run_builds_a_new_index_and_moves_the_alias(self, target: Target) -> None:
        """After a rebuild the alias points at the new index alone and the old one is gone."""
        first = build(target, documents(range(1, 6), "Ann"))
        assert target.aliased() == [first]
        assert found(target) == [(i, "Ann") for i in range(1, 6)]
        second = build(target, documents(range(1, 8), "Bea"))
        assert second != first
        assert target.aliased() == [second]
        assert target.indices() == [second]
        assert found(target) == [(i, "Bea") for i in range(1, 8)]

    def test_a_failed_run_deletes_its_index_and_the_old_one_keeps_serving(
        self, target: Target
    ) -> None:
        first = build(target, documents(range(1, 4), "Ann"))
        ctx = RecordingRunContext()
        sink = make_sink(target, ctx)
        sink.begin()
        sink.write(documents(range(1, 3), "Bea"))
        sink.abort()
        assert target.aliased() == [first]
        assert target.indices() == [first]
        assert found(target) == [(i, "Ann") for i in range(1, 4)]
        assert "search.elasticsearch.aborted" in ctx.recorder.names()

    def test_the_old_services_concrete_index_is_replaced_in_the_switch(
        self, target: Target
    ) -> None:
        """A real index named like the alias (as the old job made it) goes in the same call."""
        target.client.indices.create(index=target.alias)
        index = build(target, documents(range(1, 3), "Ann"))
        assert target.aliased() == [index]
        assert found(target) == [(1, "Ann"), (2, "Ann")]

    def test_a_searcher_before_the_first_build_is_told_so(self, target: Target) -> None:
        searcher = ElasticsearchSearcher(target.client, target.alias, ["fullName"])
        with pytest.raises(SearchError, match="not been built yet"):
            searcher.search("smith", 10)

    def test_the_job_body_and_search_operation(
        self, target: Target, db: Db, tmp_path: Path
    ) -> None:
        """PersonElasticSearchJob end to end: database → index behind the alias → search."""
        ids = [add_person(db, surname="Smith", forenames=f"N{n}") for n in range(5)]
        settings = SearchSettings(
            elasticsearch_url=target.url, person_index=target.alias, page_size=2
        )
        specs = search_and_reval_jobs(
            PackContext(state_dir=tmp_path, settings=None), db.settings(), search=settings, env={}
        )
        job = next(s for s in specs if s.name == "PersonElasticSearchJob")
        ctx = RecordingRunContext(job.settings)
        job.body(ctx)
        assert ctx.rows_written == 5
        (op,) = job.extra_operations
        result: Any = op.handler(Invocation(arguments={"query": "smith", "limit": 50}, actor="t"))
        assert sorted(d["personId"] for d in result.value) == ids
        assert not (tmp_path / "search").exists()  # nothing embedded when ES is configured


class TestBackPressure:
    def test_429_5xx_and_dropped_connections_are_retried_with_growing_backoff(
        self, target: Target
    ) -> None:
        fake = stand_in(target)
        fake.fail("PUT", rf"^/{target.alias}-", status=503)
        fake.fail("PUT", r"/_bulk$", status=429, times=2)
        fake.fail("POST", r"/_refresh$", drop=True)
        ctx = RecordingRunContext()
        build(target, documents(range(1, 4), "Ann"), ctx)
        assert found(target) == [(i, "Ann") for i in range(1, 4)]
        retries = [e for e in ctx.recorder.events if e["event"] == "search.elasticsearch.retry"]
        assert [e["reason"] for e in retries] == [
            "server error (503)",
            "too many requests (429)",
            "too many requests (429)",
            "connection failed",
        ]
        # Backoff doubles per attempt of one call (with jitter in [0.5, 1] of the ceiling).
        first, second = ctx.waits[1], ctx.waits[2]
        assert 0.25 <= first <= 0.5 and 0.5 <= second <= 1.0

    def test_items_refused_with_429_are_sent_again_alone(self, target: Target) -> None:
        fake = stand_in(target)
        fake.fail("PUT", r"/_bulk$", status=429, items=2)
        ctx = RecordingRunContext()
        build(target, documents(range(1, 4), "Ann"), ctx)
        assert found(target) == [(i, "Ann") for i in range(1, 4)]
        sizes = fake.bulk_sizes()
        assert len(sizes) == 2 and sizes[1] < sizes[0]  # the second carried two items only
        assert len(ctx.waits) == 1

    def test_an_item_refused_for_good_fails_the_run_and_removes_its_index(
        self, target: Target
    ) -> None:
        fake = stand_in(target)
        first = build(target, documents(range(1, 3), "Ann"))
        fake.fail("PUT", r"/_bulk$", status=400, items=1)
        with pytest.raises(SearchError, match="refused 1 document"):
            build(target, documents(range(1, 3), "Bea"))
        assert target.indices() == [first] and target.aliased() == [first]

    def test_a_server_that_stays_down_fails_the_run_after_the_attempts(
        self, target: Target
    ) -> None:
        fake = stand_in(target)
        first = build(target, documents(range(1, 3), "Ann"))
        fake.fail("PUT", r"/_bulk$", status=503, times=4)
        ctx = RecordingRunContext()
        with pytest.raises(Exception, match="503"):
            build(target, documents(range(1, 3), "Bea"), ctx)
        assert len(ctx.waits) == 3  # four attempts, three back-offs
        assert target.indices() == [first] and found(target) == [(1, "Ann"), (2, "Ann")]

    def test_bulk_bodies_stay_under_the_byte_cap(self, target: Target) -> None:
        fake = stand_in(target)
        ctx = RecordingRunContext()
        sink = make_sink(target, ctx, max_bytes=10_000)
        sink.begin()
        sink.write(documents(range(1, 41), "Ann", padding=900))  # ~1 KB each
        sink.commit()
        sizes = fake.bulk_sizes()
        assert len(sizes) >= 4 and all(size <= 10_000 for size in sizes)
        assert len(found(target)) == 40

    def test_a_cancel_during_a_backoff_stops_the_run_and_removes_its_index(
        self, target: Target
    ) -> None:
        fake = stand_in(target)
        fake.fail("PUT", r"/_bulk$", status=429, times=5)
        ctx = RecordingRunContext()
        ctx.cancel()
        with pytest.raises(RunCancelled):
            build(target, documents(range(1, 3), "Ann"), ctx)
        assert target.indices() == [] and target.aliased() == []

    def test_the_mapping_is_the_documented_one(self, target: Target) -> None:
        fake = stand_in(target)
        index = build(target, documents(range(1, 2), "Ann"))
        properties = fake.indices[index].mappings["properties"]
        assert properties["fullName"]["type"] == "text"
        assert properties["surname"] == {"type": "keyword"}
        assert properties["trusts"]["type"] == "nested"
        assert properties["programmeMemberships"]["properties"]["programmeId"] == {"type": "long"}
        assert properties["currentPlacements"]["type"] == "nested"
        # Refreshes were off during the build and back to the default after it.
        assert fake.indices[index].settings["index"]["refresh_interval"] is None
