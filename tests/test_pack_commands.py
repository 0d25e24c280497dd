"""Job packs' own `syncd` subcommands, through the installed console script: the tis pack's
`syncd db init` and `syncd demo-data` (SQLite, MariaDB, PostgreSQL), and the generic wiring."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.daemon_process import ROOT
from tests.services import fresh_mariadb_database, fresh_postgres_database
from tests.test_startup_cli import assert_one_line, syncd, write_config

TCS_TABLES = {"Person", "Post", "Placement", "ProgrammeMembership", "PersonOwner", "Trust"}


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _dump(path: Path, table: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return list(conn.execute(f'SELECT * FROM "{table}" ORDER BY id'))


def test_the_help_lists_the_pack_commands(short_tmp: Path) -> None:
    """`syncd --help` shows db and demo-data beside serve and check-config."""
    code, out, _ = syncd(short_tmp, "--help")
    assert code == 0
    for command in ("serve", "check-config", "db", "demo-data"):
        assert command in out


def test_db_init_creates_the_embedded_schema_once(short_tmp: Path) -> None:
    """`syncd db init` creates the tables in <state_dir>/tis.sqlite3; a second run none."""
    state = short_tmp / "state"
    code, out, err = syncd(state, "db", "init")
    assert (code, err) == (0, "")
    assert "created 0 table(s)" not in out
    assert _tables(state / "tis.sqlite3") >= TCS_TABLES
    code, out, _ = syncd(state, "db", "init")
    assert code == 0 and "created 0 table(s)" in out


def test_demo_data_writes_a_deterministic_dataset(short_tmp: Path) -> None:
    """`syncd demo-data --persons N --seed S` writes N persons; the same seed, the same rows."""
    first, second = short_tmp / "a", short_tmp / "b"
    for state in (first, second):
        code, out, err = syncd(state, "demo-data", "--persons", "30", "--seed", "7")
        assert (code, err) == (0, ""), err
        assert "30 persons (seed 7)" in out
    assert len(_dump(first / "tis.sqlite3", "Person")) == 30
    assert _dump(first / "tis.sqlite3", "Placement") == _dump(second / "tis.sqlite3", "Placement")


def test_demo_data_takes_the_pack_settings_from_the_config(short_tmp: Path) -> None:
    """Without --url, the command writes where [packs.tis] source_url points."""
    target = short_tmp / "tcs.sqlite3"
    config = write_config(short_tmp, f'[packs.tis]\nsource_url = "sqlite:///{target}"\n')
    code, _, err = syncd(
        short_tmp / "state", "--config", str(config), "demo-data", "--persons", "5"
    )
    assert (code, err) == (0, "")
    assert len(_dump(target, "Person")) == 5


def test_a_bad_count_is_a_usage_error(short_tmp: Path) -> None:
    """argparse refuses --persons 0 with exit status 2."""
    code, _, err = syncd(short_tmp, "demo-data", "--persons", "0")
    assert code == 2 and "must be at least 1" in err


def test_a_bad_pack_setting_is_refused_before_the_command_runs(short_tmp: Path) -> None:
    """The pack's settings are validated for its commands as for serving."""
    config = write_config(short_tmp, "[packs.tis]\npage_size = 0\n")
    result = syncd(short_tmp / "state", "--config", str(config), "db", "init")
    assert_one_line(*result, 2, "packs.tis.page_size")
    assert not (short_tmp / "state").exists()


@pytest.mark.parametrize(
    "fresh_database", [fresh_mariadb_database, fresh_postgres_database], ids=["mariadb", "pg"]
)
def test_db_init_against_a_server(short_tmp: Path, fresh_database: object) -> None:
    """`syncd db init --url` creates the schema in a real MariaDB or PostgreSQL database."""
    with fresh_database() as url:  # type: ignore[operator]
        code, out, err = syncd(short_tmp, "db", "init", "--url", url)
        assert (code, err) == (0, ""), err
        assert "existed already" in out
        engine = sa.create_engine(url)
        try:
            assert set(sa.inspect(engine).get_table_names()) >= TCS_TABLES
        finally:
            engine.dispose()


class TestAnyPacksCommands:
    def test_a_packs_command_gets_its_own_settings(self, short_tmp: Path) -> None:
        """A pack named in daemon.packs adds its command; it runs with its settings, its exit
        status is syncd's."""
        config = write_config(
            short_tmp,
            '[daemon]\npacks = ["tests.packs.commands:GREETER"]\n'
            '[packs.greeter]\ngreeting = "hi"\n',
        )
        env = {"PYTHONPATH": str(ROOT)}
        code, out, _ = syncd(short_tmp, "--config", str(config), "greet", "ada", env=env)
        assert (code, out) == (0, f"hi ada from {short_tmp}\n")
        code, _, _ = syncd(short_tmp, "--config", str(config), "greet", "seven", env=env)
        assert code == 7

    def test_a_command_that_clashes_is_a_pack_error(self, short_tmp: Path) -> None:
        """A pack that adds a command syncd (or another pack) has is refused, exit 2."""
        config = write_config(short_tmp, '[daemon]\npacks = ["tests.packs.commands:CLASHING"]\n')
        result = syncd(
            short_tmp, "--config", str(config), "check-config", env={"PYTHONPATH": str(ROOT)}
        )
        assert_one_line(*result, 2, "job pack 'clashing': its commands clash")
