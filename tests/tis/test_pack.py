"""The pack as the daemon sees it: job specs, settings, demo seeding and the CLI commands."""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select

from syncd.config import load_table
from syncd.errors import ConfigError
from syncd.job import PackContext
from syncd_tis import PACK, TisSettings, _jobs
from syncd_tis._db import TisError, make_engine
from syncd_tis._schema import REFERENCE, TCS, person
from syncd_tis.commands import register_commands
from tests.tis.conftest import RecordingRunContext

EXPECTED = [
    ("PersonOwnerRebuildJob", "personOwnerRebuildJob", "personOwnerRebuildJob"),
    (
        "PersonPlacementEmployingBodyTrustJob",
        "doPersonPlacementEmployingBodyFullSync",
        "personPlacementEmployingBodyTrustJob",
    ),
    (
        "PersonPlacementTrainingBodyTrustJob",
        "personPlacementTrainingBodyFullSync",
        "personPlacementTrainingBodyTrustJob",
    ),
    ("PostEmployingBodyTrustJob", "postEmployingBodyTrustFullSync", "postEmployingBodyTrustJob"),
    ("PostTrainingBodyTrustJob", "postTrainingBodyTrustFullSync", "postTrainingBodyTrustJob"),
    ("PersonRecordStatusJob", "personRecordStatusJob", "personRecordStatusJob"),
    ("PostFundingStatusSyncJob", "postFundingStatusSyncJob", "postFundingStatusSyncJob"),
    ("PersonElasticSearchJob", "personElasticSearchSync", "personElasticSearchSyncJob"),
    ("PostElasticSearchJob", "postElasticSearchSync", "postElasticSearchSyncJob"),
    ("RevalCurrentPmSyncJob", "revalCurrentPmSyncJob", "revalCurrentPmJob"),
    ("RevalCurrentPlacementSyncJob", "revalCurrentPlacementSyncJob", "revalCurrentPlacementJob"),
]


def persons_in(url: str) -> int:
    engine = make_engine(url, TisSettings(source_url=url))
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(person)).scalar_one())
    finally:
        engine.dispose()


class TestJobs:
    def test_the_pack_declares_the_old_services_jobs(self, tmp_path: Path) -> None:
        """Bean names, trigger operations and REST job keys are the old service's."""
        specs = PACK.build(PackContext(state_dir=tmp_path, settings=None))
        assert [(s.name, s.trigger_operation, s.job_key) for s in specs] == EXPECTED
        assert specs[1].aliases == ("PersonPlacementEmployingBodyJob",)
        assert [(s.name, p.name) for s in specs for p in s.parameters] == [
            ("PersonRecordStatusJob", "dateOverride"),
            ("RevalCurrentPmSyncJob", "dateOverride"),
            ("RevalCurrentPlacementSyncJob", "dateOverride"),
        ]

    def test_the_default_timetable_is_the_one_operators_know(self, tmp_path: Path) -> None:
        """UTC slots of the old service, its rerun table as dependencies, its cron variables."""
        specs = {s.name: s for s in PACK.build(PackContext(state_dir=tmp_path, settings=None))}
        assert {n: s.default_at for n, s in specs.items()} == {
            "PersonOwnerRebuildJob": "00:05",
            "PersonPlacementEmployingBodyTrustJob": "00:09",
            "PersonPlacementTrainingBodyTrustJob": "00:29",
            "PostEmployingBodyTrustJob": "01:09",
            "PostTrainingBodyTrustJob": "01:19",
            "PersonElasticSearchJob": "01:29",
            "RevalCurrentPmSyncJob": "01:39",
            "PostFundingStatusSyncJob": "01:45",
            "RevalCurrentPlacementSyncJob": "01:49",
            "PostElasticSearchJob": "01:55",
            "PersonRecordStatusJob": "02:00",
        }
        assert specs["PersonPlacementTrainingBodyTrustJob"].default_after == (
            "PersonPlacementEmployingBodyTrustJob",
        )
        assert specs["PostTrainingBodyTrustJob"].default_after == ("PostEmployingBodyTrustJob",)
        assert set(specs["PersonElasticSearchJob"].default_after) == {
            "PersonOwnerRebuildJob",
            "PersonPlacementEmployingBodyTrustJob",
            "PersonPlacementTrainingBodyTrustJob",
            "PersonRecordStatusJob",
        }
        assert set(specs["PostElasticSearchJob"].default_after) == {
            "PostEmployingBodyTrustJob",
            "PostTrainingBodyTrustJob",
            "PostFundingStatusSyncJob",
        }
        assert specs["PersonOwnerRebuildJob"].cron_env == "APPLICATION_CRON_PERSONOWNERREBUILDJOB"

    def test_without_a_source_url_the_jobs_use_the_embedded_file(self, tmp_path: Path) -> None:
        """The default database is <state_dir>/tis.sqlite3; a configured URL is kept."""
        (spec, *_) = PACK.build(PackContext(state_dir=tmp_path, settings=None))
        assert spec.settings.url == f"sqlite:///{tmp_path / 'tis.sqlite3'}"
        url = "mysql+pymysql://sync@tcs-db/tcs"
        (spec, *_) = PACK.build(
            PackContext(state_dir=tmp_path, settings=TisSettings(source_url=url))
        )
        assert spec.settings.url == url

    def test_bodies_and_settings_survive_pickling(self, tmp_path: Path) -> None:
        """A child-process executor can ship every job's body and settings."""
        for spec in PACK.build(PackContext(state_dir=tmp_path, settings=None)):
            assert pickle.loads(pickle.dumps(spec.settings)) == spec.settings
            assert pickle.loads(pickle.dumps(spec.body)) is spec.body

    def test_a_job_against_a_database_without_the_schema_says_what_to_do(
        self, tmp_path: Path
    ) -> None:
        """Missing tables are named, with the command that creates them."""
        settings = TisSettings(source_url=f"sqlite:///{tmp_path / 'empty.sqlite3'}")
        with pytest.raises(TisError, match=r"no table .*PersonOwner.*syncd db init"):
            _jobs.person_owner_rebuild(RecordingRunContext(settings))


class TestSettings:
    def test_settings_load_from_the_config_table(self) -> None:
        """[packs.tis] keys map onto TisSettings, durations accept units."""
        settings = load_table(
            TisSettings,
            {"source_url": "sqlite:///x", "page_size": 100, "retry_initial_delay": "2s"},
            "packs.tis",
        )
        assert (settings.page_size, settings.retry_initial_delay) == (100, 2.0)

    @pytest.mark.parametrize(
        ("table", "key"),
        [
            ({"page_size": 0}, "packs.tis.page_size"),
            ({"page_size": 100_001}, "packs.tis.page_size"),
            ({"search": {"page_size": 10**12}}, "packs.tis.search.page_size"),
            ({"reval": {"page_size": 10**9}}, "packs.tis.reval.page_size"),
            ({"retry_attempts": 0}, "packs.tis.retry_attempts"),
            ({"source_url": " "}, "packs.tis.source_url"),
            ({"mysql_staging_memory_mb": -1}, "packs.tis.mysql_staging_memory_mb"),
            (
                {"record_status_date_override": "2024-02-30"},
                "packs.tis.record_status_date_override",
            ),
            ({"pagesize": 10}, "packs.tis.pagesize"),
        ],
    )
    def test_bad_settings_are_refused_by_key(self, table: dict[str, object], key: str) -> None:
        """Every invalid value names its key path."""
        with pytest.raises(ConfigError) as caught:
            load_table(TisSettings, table, "packs.tis")
        assert caught.value.key_path == key


class TestSeedDemo:
    def test_seeding_creates_the_embedded_database_once(self, tmp_path: Path) -> None:
        """First start: a demo database with persons; later starts leave it alone."""
        ctx = PackContext(state_dir=tmp_path / "state", settings=None)
        assert PACK.seed_demo is not None
        PACK.seed_demo(ctx)
        path = tmp_path / "state" / "tis.sqlite3"
        url = f"sqlite:///{path}"
        assert persons_in(url) == 2000
        stamp = path.stat().st_mtime_ns
        PACK.seed_demo(ctx)
        assert path.stat().st_mtime_ns == stamp
        assert sorted(p.name for p in path.parent.iterdir()) == ["tis.sqlite3"]

    def test_seeding_never_touches_a_configured_database(self, tmp_path: Path) -> None:
        """With source_url set, seeding does nothing at all."""
        target = tmp_path / "real.sqlite3"
        settings = TisSettings(source_url=f"sqlite:///{target}")
        assert PACK.seed_demo is not None
        PACK.seed_demo(PackContext(state_dir=tmp_path, settings=settings))
        assert not target.exists()
        assert not (tmp_path / "tis.sqlite3").exists()


class TestCommands:
    @staticmethod
    def parse(*argv: str) -> argparse.Namespace:
        parser = argparse.ArgumentParser(prog="syncd")
        register_commands(parser.add_subparsers(dest="command", required=True))
        return parser.parse_args(argv)

    def test_db_init_creates_missing_tables_and_nothing_else(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The first run creates the schema; the second finds it and creates nothing."""
        ctx = PackContext(state_dir=tmp_path / "state", settings=None)
        everything = len(TCS.tables) + len(REFERENCE.tables)
        args = self.parse("db", "init")
        assert args.func(args, ctx) == 0
        assert f"created {everything} table(s)" in capsys.readouterr().out
        assert args.func(args, ctx) == 0
        assert f"created 0 table(s); {everything} existed already" in capsys.readouterr().out

    def test_db_init_adds_no_demo_tables_to_an_existing_tcs_schema(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Against a schema that has Person, only missing TCS tables are created."""
        url = f"sqlite:///{tmp_path / 'tcs.sqlite3'}"
        engine = make_engine(url, TisSettings(source_url=url))
        with engine.begin() as conn:
            person.create(conn)
        args = self.parse("db", "init", "--url", url)
        assert args.func(args, PackContext(state_dir=tmp_path, settings=None)) == 0
        tables = set(inspect(engine).get_table_names())
        engine.dispose()
        assert "PersonOwner" in tables and "Trust" not in tables
        assert f"created {len(TCS.tables) - 1} table(s)" in capsys.readouterr().out

    def test_demo_data_fills_an_empty_database_and_refuses_a_full_one(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """demo-data creates the tables, writes the dataset, then refuses to write twice."""
        url = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
        ctx = PackContext(state_dir=tmp_path, settings=None)
        args = self.parse("demo-data", "--persons", "40", "--seed", "3", "--url", url)
        assert args.func(args, ctx) == 0
        assert "40 persons (seed 3)" in capsys.readouterr().out
        assert persons_in(url) == 40
        assert args.func(args, ctx) == 1
        assert "already has 40 persons" in capsys.readouterr().err
        assert persons_in(url) == 40

    def test_bad_arguments_are_refused(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A non-positive count is a usage error; a bad URL an error message."""
        with pytest.raises(SystemExit) as caught:
            self.parse("demo-data", "--persons", "0")
        assert caught.value.code == 2
        assert "must be at least 1" in capsys.readouterr().err
        args = self.parse("db", "init", "--url", "not a url")
        assert args.func(args, PackContext(state_dir=tmp_path, settings=None)) == 1
        assert "not a database URL" in capsys.readouterr().err


def test_loading_the_pack_leaves_the_search_and_broker_clients_unimported(tmp_path: Path) -> None:
    """The idle daemon pays for neither client: they load when a job or search needs them."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from pathlib import Path\nfrom syncd.job import PackContext\n"
        "from syncd_tis import PACK\n"
        f"PACK.build(PackContext(state_dir=Path({str(tmp_path)!r}), settings=None))\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'elasticsearch', 'pika'}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
