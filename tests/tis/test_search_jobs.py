"""The index and reval jobs as the pack declares them, their settings (config table and the old
environment variables), and the search demo rows."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from syncd.config import load_table
from syncd.errors import ConfigError
from syncd.job import PackContext
from syncd_tis import TisSettings
from syncd_tis._db import TisError, make_engine
from syncd_tis._demo import generate
from syncd_tis._schema import TCS, create_schema, post, programme_membership
from syncd_tis._search_demo import seed_search_demo
from syncd_tis._search_schema import (
    SEARCH_TABLES,
    curriculum_membership,
    post_grade,
    post_site,
    post_specialty,
)
from syncd_tis.search.jobs import search_and_reval_jobs
from syncd_tis.search.settings import RevalSettings, SearchSettings, redacted
from tests.tis.conftest import Db, RecordingRunContext


def build(tmp_path: Path, env: dict[str, str] | None = None, **kwargs: Any) -> dict[str, Any]:
    specs = search_and_reval_jobs(
        PackContext(state_dir=tmp_path, settings=None),
        TisSettings(),
        env=env or {},
        **kwargs,
    )
    return {s.name: s for s in specs}


class TestSpecs:
    def test_names_operations_keys_and_timetable_are_the_old_services(self, tmp_path: Path) -> None:
        specs = build(tmp_path)
        assert [
            (s.name, s.trigger_operation, s.job_key, s.default_at, s.cron_env)
            for s in specs.values()
        ] == [
            (
                "PersonElasticSearchJob",
                "personElasticSearchSync",
                "personElasticSearchSyncJob",
                "01:29",
                "APPLICATION_CRON_PERSONELASTICSEARCHJOB",
            ),
            (
                "PostElasticSearchJob",
                "postElasticSearchSync",
                "postElasticSearchSyncJob",
                "01:55",
                "APPLICATION_CRON_POSTELASTICSEARCHJOB",
            ),
            (
                "RevalCurrentPmSyncJob",
                "revalCurrentPmSyncJob",
                "revalCurrentPmJob",
                "01:39",
                "APPLICATION_CRON_REVALCURRENTPMJOB",
            ),
            (
                "RevalCurrentPlacementSyncJob",
                "revalCurrentPlacementSyncJob",
                "revalCurrentPlacementJob",
                "01:49",
                "APPLICATION_CRON_REVALCURRENTPLACEMENTJOB",
            ),
        ]
        assert specs["PersonElasticSearchJob"].default_after == (
            "PersonOwnerRebuildJob",
            "PersonPlacementEmployingBodyTrustJob",
            "PersonPlacementTrainingBodyTrustJob",
            "PersonRecordStatusJob",
        )
        assert specs["PostElasticSearchJob"].default_after == (
            "PostEmployingBodyTrustJob",
            "PostTrainingBodyTrustJob",
            "PostFundingStatusSyncJob",
        )
        for name in ("PersonElasticSearchJob", "PostElasticSearchJob"):
            (op,) = specs[name].extra_operations
            assert op.name == "search" and op.blocking
            assert [(p.name, p.type.value, p.required, p.default) for p in op.parameters] == [
                ("query", "string", True, None),
                ("limit", "int", False, 10),
            ]
            assert op.returns.value == "json"

    def test_bodies_and_settings_survive_pickling(self, tmp_path: Path) -> None:
        """A child-process executor can ship every job's body and settings."""
        for spec in build(tmp_path, reval=RevalSettings(amqp_url="amqp://h/")).values():
            assert pickle.loads(pickle.dumps(spec.settings)) == spec.settings
            assert pickle.loads(pickle.dumps(spec.body)) is spec.body

    def test_the_embedded_index_lives_in_the_state_directory(self, tmp_path: Path) -> None:
        spec = build(tmp_path)["PersonElasticSearchJob"]
        assert spec.settings.index_dir == tmp_path / "search"
        assert spec.settings.tis.url == f"sqlite:///{tmp_path / 'tis.sqlite3'}"
        assert "embedded" in spec.description

    def test_a_database_without_the_search_tables_is_named(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'tis.sqlite3'}"
        engine = make_engine(url, TisSettings(source_url=url))
        with engine.begin() as conn:
            for table in TCS.sorted_tables:
                if table not in SEARCH_TABLES:
                    table.create(conn)
        engine.dispose()
        spec = build(tmp_path)["PersonElasticSearchJob"]
        with pytest.raises(TisError, match="no table CurriculumMembership, TrainingNumber"):
            spec.body(RecordingRunContext(spec.settings))


class TestSettings:
    def test_the_config_tables_load_with_their_types(self) -> None:
        search = load_table(
            SearchSettings,
            {
                "elasticsearch_url": "http://es:9200",
                "bulk_max_bytes": 2_000_000,
                "retry_max_delay": "2m",
            },
            "packs.tis.search",
        )
        assert (search.embedded, search.bulk_max_bytes, search.retry_max_delay) == (
            False,
            2_000_000,
            120.0,
        )
        reval = load_table(RevalSettings, {"amqp_url": "amqps://u:p@mq/"}, "packs.tis.reval")
        assert (reval.exchange, reval.routing_key, reval.page_size) == (
            "reval.exchange",
            "reval.trainee.update",
            5000,
        )

    @pytest.mark.parametrize(
        ("cls", "table", "message"),
        [
            (SearchSettings, {"person_index": "Persons"}, "person_index.*not an index name"),
            (SearchSettings, {"post_index": "persons"}, "post_index: must differ"),
            (SearchSettings, {"bulk_max_bytes": 10}, "bulk_max_bytes"),
            (SearchSettings, {"elasticsearch_url": " , "}, "must not be blank"),
            (SearchSettings, {"retry_attempts": 0}, "retry_attempts"),
            (RevalSettings, {"amqp_url": "http://mq"}, "amqp:// or amqps://"),
            (RevalSettings, {"page_size": 0}, "page_size"),
            (RevalSettings, {"exchange": " "}, "exchange"),
        ],
    )
    def test_bad_values_are_refused_with_their_key(
        self, cls: type[Any], table: dict[str, Any], message: str
    ) -> None:
        with pytest.raises(ConfigError, match=message):
            load_table(cls, table, "packs.tis.x")

    def test_the_old_environment_fills_what_the_config_leaves_unset(self, tmp_path: Path) -> None:
        env = {
            "ES_URLS": "es1:9200,https://es2:9200",
            "RABBITMQ_HOST": "mq.internal",
            "RABBITMQ_USERNAME": "sync",
            "RABBITMQ_PASSWORD": "p@ss/word",
            "RABBITMQ_USE_SSL": "true",
            "REVAL_RABBIT_EXCHANGE": "reval.other",
        }
        specs = build(tmp_path, env)
        search = specs["PersonElasticSearchJob"].settings.search
        reval = specs["RevalCurrentPmSyncJob"].settings.reval
        assert search.elasticsearch_url == "es1:9200,https://es2:9200"
        assert "Elasticsearch" in specs["PersonElasticSearchJob"].description
        assert reval.amqp_url == "amqps://sync:p%40ss%2Fword@mq.internal:5671/%2F"
        assert reval.exchange == "reval.other"
        assert specs["RevalCurrentPmSyncJob"].disabled_reason is None
        assert redacted(reval.amqp_url) == "amqps://sync:***@mq.internal:5671/%2F"

    def test_the_config_wins_over_the_environment(self, tmp_path: Path) -> None:
        specs = build(
            tmp_path,
            {"ES_URLS": "http://env:9200", "RABBITMQ_HOST": "env", "REVAL_RABBIT_EXCHANGE": "e"},
            search=SearchSettings(elasticsearch_url="http://file:9200"),
            reval=RevalSettings(amqp_url="amqp://file/", exchange="from.file"),
        )
        assert specs["PostElasticSearchJob"].settings.search.elasticsearch_url == "http://file:9200"
        reval = specs["RevalCurrentPlacementSyncJob"].settings.reval
        assert (reval.amqp_url, reval.exchange) == ("amqp://file/", "from.file")


class TestSearchDemo:
    def test_rows_are_derived_deterministically_and_as_documented(self, tmp_path: Path) -> None:
        dumps = []
        for name, seed in (("a", 3), ("b", 3), ("c", 4)):
            url = f"sqlite:///{tmp_path / name}.sqlite3"
            engine = make_engine(url, TisSettings(source_url=url))
            create_schema(engine)
            generate(engine, persons=400, seed=1)
            counts = seed_search_demo(engine, seed)
            with engine.connect() as conn:
                dumps.append(
                    {t.name: conn.execute(select(t).order_by(t.c.id)).all() for t in SEARCH_TABLES}
                )
                posts = conn.execute(select(func.count()).select_from(post)).scalar_one()
                pms = conn.execute(
                    select(func.count()).select_from(programme_membership)
                ).scalar_one()
                per_pm = (
                    conn.execute(
                        select(func.count())
                        .select_from(curriculum_membership)
                        .group_by(curriculum_membership.c.programmeMembershipUuid)
                    )
                    .scalars()
                    .all()
                )
                numbered = conn.execute(
                    select(func.count()).where(programme_membership.c.trainingNumberId.is_not(None))
                ).scalar_one()
            with pytest.raises(TisError, match="already has"):
                seed_search_demo(engine, seed)
            engine.dispose()
            for table in (post_grade, post_specialty, post_site):
                assert counts[table.name] >= posts
            assert len(per_pm) == pms and set(per_pm) <= {1, 2, 3}
            assert numbered == counts["TrainingNumber"] and 0.75 <= numbered / pms <= 0.95
        assert dumps[0] == dumps[1] and dumps[0] != dumps[2]

    def test_the_index_jobs_cover_the_whole_demo_dataset(self, db: Db, tmp_path: Path) -> None:
        """On every backend: one document per person and per post."""
        generate(db.engine, persons=150, seed=2)
        seed_search_demo(db.engine, 2)
        specs = build(tmp_path, search=SearchSettings(page_size=40))
        for name, table in (("PersonElasticSearchJob", "Person"), ("PostElasticSearchJob", "Post")):
            spec = specs[name]
            settings = spec.settings.__class__(
                tis=db.settings(),
                search=spec.settings.search,
                index_dir=spec.settings.index_dir,
                kind=spec.settings.kind,
            )
            ctx = RecordingRunContext(settings)
            spec.body(ctx)
            with db.engine.connect() as conn:
                rows = conn.execute(
                    select(func.count()).select_from(TCS.tables[table])
                ).scalar_one()
            assert ctx.rows_written == rows
