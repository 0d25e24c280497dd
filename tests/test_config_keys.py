"""Every key the loader knows: in the example file with its default, in the README's table, and
every duration key read the same way. The cases come from walking the config dataclasses."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest

from syncd.app.packs import discover, pack_context
from syncd.app.reload import describe
from syncd.app.startup import validate
from syncd.config import Config, load_config
from syncd.errors import ConfigError
from syncd.scheduling.plan import plan_jobs
from tests.config_keys import JOB_TABLE, duration_keys, known_tables

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "etc" / "syncd.example.toml"
JOB = "PersonOwnerRebuildJob"  # a job of the tis pack, always installed with syncd
CORE_TABLES = (
    "daemon",
    "scheduler",
    "ledger",
    "logging",
    "http",
    "notify",
    "cluster",
    "replication",
)

_HEADER = re.compile(r"^\[([^\]]+)\]\s*$")
_KEY = re.compile(r"^#?\s*([a-z_]+)\s*=")


def _example_keys() -> dict[str, set[str]]:
    """Keys the example shows per table, set or commented out (`# key = …`)."""
    found: dict[str, set[str]] = {}
    table = ""
    for line in EXAMPLE.read_text().splitlines():
        if header := _HEADER.match(line):
            table = header.group(1)
            if table.startswith("jobs."):
                table = JOB_TABLE
            found.setdefault(table, set())
        elif table and (key := _KEY.match(line)):
            found[table].add(key.group(1))
    return found


def _table_path(table: str) -> str:
    return f"jobs.{JOB}" if table == JOB_TABLE else table


def _value_at(config: Config, table: str, key: str, state_dir: Path) -> Any:
    """The validated value of `table.key`, through the same code the daemon uses."""
    if table in CORE_TABLES:
        return getattr(getattr(config, table), key)
    if table == JOB_TABLE:
        return getattr(config.jobs[JOB], key)
    _, pack_name, *nested = table.split(".")
    pack = next(p for p in discover(config) if p.name == pack_name)
    settings = pack_context(pack, config, state_dir).settings
    for part in nested:
        settings = getattr(settings, part)
    return getattr(settings, key)


def _read(tmp_path: Path, table: str, key: str, toml_value: str) -> Any:
    """The validated value of `table.key` written as `toml_value`, or ConfigError."""
    return _value_at(_load_with(tmp_path, table, key, toml_value), table, key, tmp_path)


def _load_with(tmp_path: Path, table: str, key: str, toml_value: str) -> Config:
    path = tmp_path / "syncd.toml"
    path.write_text(f"[{_table_path(table)}]\n{key} = {toml_value}\n")
    return load_config(path, env={"SYNCD_STATE_DIR": str(tmp_path)})


class TestTheExampleFile:
    def test_it_shows_every_key_the_loader_knows_and_no_other(self) -> None:
        """Each table and key of the loader appears in the example (set or commented out), so
        the example cannot drift from the code."""
        known = {table: set(fields) for table, fields in known_tables().items()}
        assert _example_keys() == known

    def test_it_loads_and_passes_the_daemons_validation(self, tmp_path: Path) -> None:
        """The example is a valid configuration as it stands, job plan included."""
        config = load_config(EXAMPLE, env={"SYNCD_STATE_DIR": str(tmp_path)})
        validated = validate(config, discover(config), {})
        assert JOB in validated.plans

    def test_its_values_are_the_defaults(self, tmp_path: Path) -> None:
        """Loading the example configures exactly what no file does."""
        env = {"SYNCD_STATE_DIR": str(tmp_path)}
        example, default = load_config(EXAMPLE, env=env), load_config(None, env=env)
        for table in CORE_TABLES:
            assert getattr(example, table) == getattr(default, table), table
        for pack in discover(default):
            assert (
                pack_context(pack, example, tmp_path).settings
                == pack_context(pack, default, tmp_path).settings
            ), pack.name
        specs = validate(default, discover(default), {}).specs
        example_plans = plan_jobs(specs, example, {})
        default_plans = plan_jobs(specs, default, {})
        assert {n: describe(p) for n, p in example_plans.items()} == {
            n: describe(p) for n, p in default_plans.items()
        }


def test_the_readme_configuration_table_names_every_core_key() -> None:
    """Each key of the daemon's own tables has a row (or a mention) in the README's table."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Configuration") :]
    section = section[: section.index("\n## ", 1)]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    missing = []
    for table, fields in known_tables().items():
        if table.startswith("packs."):
            continue  # each pack documents its own settings in its section
        for key in fields:
            row_start = f"| `{table}.{key}`"
            if not any(
                f"`{table}.{key}`" in row or (row.startswith(f"| `{table}.") and f"`{key}`" in row)
                for row in rows
            ):
                missing.append(row_start)
    assert missing == []


DURATION_KEYS = duration_keys()
# Duration keys that may not be below another key of their table (so 0 is refused).
CROSS_FIELD_RULES = {
    f"{table}.retry_max_delay ≥ retry_initial_delay"
    for table in ("packs.tis", "packs.tis.search", "packs.tis.reval")
}


def test_the_walk_finds_the_duration_keys_the_readme_names() -> None:
    """The parametrisation below is not vacuous: the documented duration keys are in it."""
    names = {f"{t}.{k}" for t, k, _ in DURATION_KEYS}
    assert {
        "daemon.shutdown_grace",
        "daemon.cancel_grace",
        "jobs.<Name>.timeout",
        "jobs.<Name>.cancel_grace",
        "packs.tis.retry_initial_delay",
    } <= names


@pytest.mark.parametrize(("table", "key", "minimum"), DURATION_KEYS, ids=lambda v: str(v))
class TestEveryDurationKey:
    @pytest.mark.parametrize(
        ("written", "seconds"),
        [('"10s"', 10.0), ("10", 10.0), ("2.5", 2.5), ('"1500ms"', 1.5), ('"0.25m"', 15.0)],
    )
    def test_accepts_numbers_and_units(
        self, tmp_path: Path, table: str, key: str, minimum: float, written: str, seconds: float
    ) -> None:
        """A number of seconds or text with a unit, read as seconds."""
        config = _load_with(tmp_path, table, key, written)
        assert _value_at(config, table, key, tmp_path) == seconds

    @pytest.mark.parametrize(
        ("written", "problem"),
        [
            ("-1", "cannot be negative"),
            ('"-10s"', "expected a duration"),
            ("nan", "expected a duration"),
            ("inf", "at most 365d"),
            ("1e12", "at most 365d"),
            ('"400d"', "at most 365d"),
            ('"soon"', "expected a duration"),
            ("true", "expected a duration"),
        ],
    )
    def test_refuses_what_is_not_a_duration(
        self, tmp_path: Path, table: str, key: str, minimum: float, written: str, problem: str
    ) -> None:
        """Negative, non-finite, absurdly large or non-numeric values are refused, naming
        the key path."""
        with pytest.raises(ConfigError) as info:
            _read(tmp_path, table, key, written)
        assert info.value.key_path == f"{_table_path(table)}.{key}"
        assert problem in info.value.problem

    def test_honours_its_minimum(
        self, tmp_path: Path, table: str, key: str, minimum: float
    ) -> None:
        """Zero is accepted where it means something, refused where a minimum applies."""
        others = set(known_tables()[table]) - {key}
        if minimum == 0 and not any(f"{table}.{key}" in rule for rule in CROSS_FIELD_RULES):
            assert _read(tmp_path, table, key, "0") == 0.0
            return
        with pytest.raises(ConfigError) as info:
            _read(tmp_path, table, key, "0")
        assert info.value.key_path == f"{_table_path(table)}.{key}"
        if minimum == 0:  # refused only by a rule relating it to another key of its table
            assert any(other in info.value.problem for other in others)


class TestNumbersAreBounded:
    @pytest.mark.parametrize(
        "written", ["nan", "inf", "-inf", "0", "-3", "1e12", "36501", "99999999999999999999999"]
    )
    def test_keep_days_outside_a_century_is_refused(self, tmp_path: Path, written: str) -> None:
        """keep_days must be a finite number of days, more than 0 and at most 36,500."""
        with pytest.raises(ConfigError) as info:
            _load_with(tmp_path, "ledger", "keep_days", written)
        assert info.value.key_path == "ledger.keep_days"

    def test_keep_days_within_bounds_loads(self, tmp_path: Path) -> None:
        """A fractional number of days is fine."""
        config = _load_with(tmp_path, "ledger", "keep_days", "0.5")
        assert math.isclose(config.ledger.keep_days, 0.5)

    @pytest.mark.parametrize(
        ("table", "key", "written"),
        [
            ("ledger", "keep_runs", "0"),
            ("ledger", "keep_runs", "1000000001"),
            ("logging", "backups", "1001"),
            ("logging", "max_bytes", "99999999999999999999999"),
        ],
    )
    def test_whole_numbers_out_of_range_are_refused(
        self, tmp_path: Path, table: str, key: str, written: str
    ) -> None:
        """Counts that would overflow or make rotation loop for ever are refused by key."""
        with pytest.raises(ConfigError) as info:
            _load_with(tmp_path, table, key, written)
        assert info.value.key_path == f"{table}.{key}"
