"""Configuration: TOML into validated dataclasses, errors that name the key path."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from syncd.app.packs import pack_context
from syncd.config import (
    DaemonConfig,
    DurationAtLeast1s,
    Settings,
    load_config,
    load_table,
    parse_duration,
    with_overrides,
)
from syncd.errors import ConfigError, PackLoadError
from syncd.job import JobPack


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "syncd.toml"
    path.write_text(text)
    return path


class TestDaemonTable:
    def test_the_example_config_loads(self) -> None:
        """The commented example shipped in etc/ is valid."""
        example = Path(__file__).parents[1] / "etc" / "syncd.example.toml"
        config = load_config(example, env={})
        assert config.daemon.shutdown_grace == 30.0

    def test_durations_accept_numbers_and_units(self, tmp_path: Path) -> None:
        """ "90s", "2m" and 1.5 are all durations in seconds."""
        config = load_config(
            _write(tmp_path, '[daemon]\nshutdown_grace = "2m"\ncancel_grace = 1.5\n'), env={}
        )
        assert (config.daemon.shutdown_grace, config.daemon.cancel_grace) == (120.0, 1.5)

    def test_unknown_keys_are_rejected_with_their_path(self, tmp_path: Path) -> None:
        """A typo is an error naming daemon.<key>, not silently ignored."""
        with pytest.raises(ConfigError) as info:
            load_config(_write(tmp_path, "[daemon]\nshutdown_grase = 3\n"), env={})
        assert info.value.key_path == "daemon.shutdown_grase"
        assert "known keys here" in str(info.value)

    def test_unknown_tables_are_rejected(self, tmp_path: Path) -> None:
        """A top-level table syncd does not know is an error."""
        with pytest.raises(ConfigError, match="unknown table"):
            load_config(_write(tmp_path, "[deamon]\n"), env={})

    def test_bad_values_name_the_key(self, tmp_path: Path) -> None:
        """A value of the wrong kind names its key path and what was expected."""
        with pytest.raises(ConfigError, match=r"daemon.shutdown_grace: expected a duration"):
            load_config(_write(tmp_path, '[daemon]\nshutdown_grace = "soon"\n'), env={})
        with pytest.raises(ConfigError, match=r"daemon.entry_points: expected true or false"):
            load_config(_write(tmp_path, '[daemon]\nentry_points = "yes"\n'), env={})

    def test_tcp_beyond_loopback_is_refused(self, tmp_path: Path) -> None:
        """Without TLS the daemon never listens beyond loopback."""
        with pytest.raises(ConfigError, match="not a loopback address"):
            load_config(_write(tmp_path, '[daemon]\ntcp_address = "0.0.0.0:7601"\n'), env={})
        ok = load_config(_write(tmp_path, '[daemon]\ntcp_address = "127.0.0.1:7601"\n'), env={})
        assert ok.daemon.tcp_address == "127.0.0.1:7601"

    def test_invalid_toml_is_reported_with_the_file(self, tmp_path: Path) -> None:
        """A file that is not TOML names itself and the parser's complaint."""
        path = _write(tmp_path, "[daemon\n")
        with pytest.raises(ConfigError, match="not valid TOML"):
            load_config(path, env={})

    def test_a_missing_file_is_an_error(self, tmp_path: Path) -> None:
        """--config naming no file fails clearly."""
        with pytest.raises(ConfigError, match="no such file"):
            load_config(tmp_path / "absent.toml", env={})

    def test_environment_overrides_state_dir_and_address(self, tmp_path: Path) -> None:
        """SYNCD_STATE_DIR and SYNCD_ADDRESS win over the file."""
        path = _write(tmp_path, '[daemon]\nstate_dir = "/nowhere"\n')
        config = load_config(
            path, env={"SYNCD_STATE_DIR": str(tmp_path), "SYNCD_ADDRESS": "unix:/x.sock"}
        )
        assert config.daemon.state_dir == tmp_path
        assert config.daemon.listen_address == "unix:/x.sock"

    def test_the_default_socket_lives_under_the_state_dir(self, tmp_path: Path) -> None:
        """Without an address the daemon listens on <state_dir>/run/syncd.sock."""
        cfg = DaemonConfig(state_dir=tmp_path)
        assert cfg.listen_address == f"unix:{tmp_path}/run/syncd.sock"

    def test_pack_references_must_name_an_attribute(self, tmp_path: Path) -> None:
        """daemon.packs entries are module:attr."""
        with pytest.raises(ConfigError, match="module:attr"):
            load_config(_write(tmp_path, '[daemon]\npacks = ["just.a.module"]\n'), env={})


CLUSTER_URL = "postgresql+psycopg://syncd@db.example/syncd"


class TestClusterTable:
    def test_cluster_mode_keeps_the_ledger_in_the_cluster_database(self, tmp_path: Path) -> None:
        """With [cluster] url the ledger URL is the cluster's; the replica defaults to the host
        name; a third of the lease is the default margin."""
        config = load_config(_write(tmp_path, f'[cluster]\nurl = "{CLUSTER_URL}"\n'), env={})
        assert config.cluster.enabled and config.ledger_url == CLUSTER_URL
        assert config.cluster.replica_name
        assert config.cluster.give_up_after == pytest.approx(20.0)
        same = f'[cluster]\nurl = "{CLUSTER_URL}"\n[ledger]\nurl = "{CLUSTER_URL}"\n'
        assert load_config(_write(tmp_path, same), env={}).ledger_url == CLUSTER_URL

    @pytest.mark.parametrize(
        ("table", "key_path", "problem"),
        [
            (
                f'[cluster]\nurl = "{CLUSTER_URL}"\n[ledger]\nurl = "sqlite:///x.db"\n',
                "ledger.url",
                "cluster.url",
            ),
            ('[cluster]\nurl = "sqlite:///x.db"\n', "cluster.url", "postgresql://"),
            ('[cluster]\nreplica = "blue green"\n', "cluster.replica", "letters"),
            (
                '[cluster]\nlease_ttl = "10s"\nlease_margin = "10s"\n',
                "cluster.lease_margin",
                "at most half",
            ),
            ('[cluster]\nlease_ttl = "0.5s"\n', "cluster.lease_ttl", "at least"),
        ],
    )
    def test_bad_cluster_settings_name_their_key(
        self, tmp_path: Path, table: str, key_path: str, problem: str
    ) -> None:
        """A conflicting ledger, a non-PostgreSQL URL, a bad replica name, a margin as long as
        the lease and a lease under a second are refused, naming the key."""
        with pytest.raises(ConfigError) as info:
            load_config(_write(tmp_path, table), env={})
        assert info.value.key_path == key_path
        assert problem in info.value.problem


class _Inner(Settings, frozen=True):
    url: str = ""


class _PackSettings(Settings, frozen=True):
    page_size: int = 5000
    inner: _Inner = msgspec.field(default_factory=_Inner)
    names: tuple[str, ...] = ()
    optional: str | None = None


class TestLoadTable:
    def test_nested_tables_and_lists_load(self) -> None:
        """Nested dataclasses, tuples and optionals load from plain TOML values."""
        got = load_table(
            _PackSettings,
            {"page_size": 10, "inner": {"url": "sqlite://"}, "names": ["a"], "optional": "x"},
            "packs.p",
        )
        assert got == _PackSettings(
            page_size=10, inner=_Inner(url="sqlite://"), names=("a",), optional="x"
        )

    def test_nested_unknown_keys_carry_the_full_path(self) -> None:
        """An error deep in a pack's table names the whole path."""
        with pytest.raises(ConfigError) as info:
            load_table(_PackSettings, {"inner": {"ulr": "x"}}, "packs.p")
        assert info.value.key_path == "packs.p.inner.ulr"

    def test_integers_refuse_text(self) -> None:
        """Text such as "5000" is not a number in TOML terms."""
        with pytest.raises(ConfigError, match=r"packs\.p\.page_size: expected a whole number"):
            load_table(_PackSettings, {"page_size": "5000"}, "packs.p")


@pytest.mark.parametrize(
    ("text", "seconds"), [(0, 0.0), ("1500ms", 1.5), ("30s", 30.0), ("15m", 900.0), ("1d", 86400.0)]
)
def test_durations_parse(text: object, seconds: float) -> None:
    """Durations read as seconds."""
    assert parse_duration(text) == seconds


def test_negative_durations_are_refused() -> None:
    """A negative duration makes no sense."""
    with pytest.raises(ValueError, match="negative"):
        parse_duration(-1)


class TestLibraryErrorsReadAsConfigErrors:
    """msgspec validates; its `… - at $.daemon.packs[1]` comes out in the daemon's own shape."""

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ('[daemon]\npacks = ["a:b", 3]\n', "config: daemon.packs[1]: expected a string, got 3"),
            ('[daemon]\npacks = "a:b"\n', "config: daemon.packs: expected a list, got 'a:b'"),
            ("daemon = 3\n", "config: daemon: expected a table, got 3"),
            ("[jobs]\nX = 3\n", "config: jobs.X: expected a table, got 3"),
            ("[packs]\ntis = []\n", "config: packs.tis: expected a table, got list"),
            ("[ledger]\nkeep_runs = 0\n", "config: ledger.keep_runs: must be at least 1, got 0"),
            ('[ledger]\nkeep_days = "3"\n', "config: ledger.keep_days: expected a number, got '3'"),
            ("[logging]\nbackups = 1001\n", "config: logging.backups: must be at most 1000"),
            ("[logging]\nmax_bytes = 1e3\n", "config: logging.max_bytes: expected a whole number"),
            (
                "[logging]\nmax_bytes = 99999999999999999999999\n",
                "config: logging.max_bytes: a whole number beyond 64 bits",
            ),
            ('[jobs.X]\nafter = ["A", 1]\n', "config: jobs.X.after[1]: expected a string, got 1"),
            ('[daemon]\nstate_dir = "a\\u0000b"\n', "config: daemon.state_dir: a NUL character"),
            ("[jobs.X]\ncancel_grace = true\n", "config: jobs.X.cancel_grace: expected a duration"),
            ("[daemon]\ncpu_slice_us = 50\n", "config: daemon.cpu_slice_us: expected 0 (the"),
            ("[daemon]\ncpu_slice_us = -1\n", "config: daemon.cpu_slice_us: must be at least 0"),
        ],
    )
    def test_the_message_names_the_key_path(self, tmp_path: Path, text: str, message: str) -> None:
        """Type, shape and bound errors name the dotted key path (list items by index) and say
        what was expected in TOML's words."""
        with pytest.raises(ConfigError) as info:
            load_config(_write(tmp_path, text), env={})
        assert str(info.value).startswith(message)

    def test_a_cross_key_rule_names_its_key_under_the_table(self, tmp_path: Path) -> None:
        """A table's own rule (`__post_init__`) raises with the key relative to the table."""
        with pytest.raises(ConfigError) as info:
            load_config(_write(tmp_path, '[jobs.X]\nat = "01:00"\ncron = "* * * * * *"\n'), env={})
        assert info.value.key_path == "jobs.X.cron"

    def test_command_line_overrides_are_checked_with_the_daemon_path(self) -> None:
        """`--address` goes through the same rules and is named as daemon.address."""
        config = load_config(None, env={})
        with pytest.raises(ConfigError) as info:
            with_overrides(config, address="10.1.2.3:7601")
        assert info.value.key_path == "daemon.address"

    def test_durations_loaded_from_the_file_are_floats(self, tmp_path: Path) -> None:
        """The duration marker type is a float of seconds: it compares, formats and pickles."""
        config = load_config(_write(tmp_path, '[daemon]\nshutdown_grace = "1500ms"\n'), env={})
        grace = config.daemon.shutdown_grace
        assert isinstance(grace, float) and grace == 1.5 and f"{grace:g}" == "1.5"
        assert pickle.loads(pickle.dumps(config)) == config

    def test_a_minimum_of_one_second_is_its_own_duration_type(self) -> None:
        """Durations where zero means spinning are annotated so, and refuse 0 by name."""
        with pytest.raises(ConfigError, match=r"packs\.p\.wait: must be at least 1s"):
            load_table(_Waits, {"wait": "500ms"}, "packs.p")
        assert load_table(_Waits, {"wait": "2s"}, "packs.p").wait == 2.0


class _Waits(Settings, frozen=True):
    wait: DurationAtLeast1s = 5.0


def test_a_pack_whose_settings_are_not_a_settings_struct_is_refused(tmp_path: Path) -> None:
    """Only a `Settings` struct refuses unknown keys, so a pack must declare one."""

    @dataclass(frozen=True)
    class Loose:
        x: int = 1

    pack = JobPack(name="loose", build=lambda ctx: (), settings_type=Loose)
    with pytest.raises(PackLoadError, match=r"settings_type must subclass syncd\.config\.Settings"):
        pack_context(pack, load_config(None, env={}), tmp_path)
