"""Configuration: TOML into validated dataclasses, errors that name the key path."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from syncd.config import DaemonConfig, Settings, load_config, load_table, parse_duration
from syncd.errors import ConfigError


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


class _Inner(Settings):
    url: str = ""


class _PackSettings(Settings):
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
