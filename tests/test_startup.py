"""Start-up steps in process: a step's failure becomes one line naming its key or path, with
the exit status that says whether to fix the configuration (2) or the machine (3)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from syncd.__main__ import EXIT_CONFIG, EXIT_ENVIRONMENT, EXIT_FAILURE, exit_code
from syncd.app.startup import check_paths, one_line, starting
from syncd.config import Config, DaemonConfig
from syncd.errors import (
    ConfigError,
    InstanceLockedError,
    PackLoadError,
    StartupEnvironmentError,
    SyncdError,
)


class TestStarting:
    def test_a_failing_step_is_named(self) -> None:
        """Any exception of a step becomes StartupEnvironmentError with the step's subject."""
        with pytest.raises(StartupEnvironmentError) as info, starting("http.address"):
            raise OSError(errno.EADDRINUSE, "Address already in use")
        assert str(info.value) == "http.address: address already in use"

    def test_configuration_errors_keep_their_kind(self) -> None:
        """A ConfigError (exit 2) or another daemon's lock (exit 3) passes through unchanged."""
        with pytest.raises(ConfigError), starting("x"):
            raise ConfigError("daemon.address", "bad")
        with pytest.raises(InstanceLockedError), starting("x"):
            raise InstanceLockedError("/s/syncd.lock", "pid 1")

    def test_messages_are_one_bounded_line(self) -> None:
        """A multi-line, megabyte-long library message is cut to its first line, bounded."""
        text = one_line(RuntimeError("first line " + "x" * 100_000 + "\nsecond line"))
        assert "\n" not in text and len(text) <= 1000
        assert text.startswith("RuntimeError: first line")


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ConfigError("a.b", "bad"), EXIT_CONFIG),
        (PackLoadError("p", "cannot import"), EXIT_CONFIG),
        (StartupEnvironmentError("logging.file", "is a directory"), EXIT_ENVIRONMENT),
        (InstanceLockedError("/s/syncd.lock", "pid 1"), EXIT_ENVIRONMENT),
        (SyncdError("other"), EXIT_FAILURE),
        (ValueError("a bug"), EXIT_FAILURE),
    ],
)
def test_one_table_maps_errors_to_exit_codes(error: BaseException, code: int) -> None:
    """Configuration → 2, environment → 3, anything else → 1."""
    assert exit_code(error) == code


def test_check_paths_creates_nothing(tmp_path: Path) -> None:
    """A state directory that does not exist yet is fine, and stays absent after the check."""
    config = Config(daemon=DaemonConfig(state_dir=tmp_path / "a" / "b"))
    check_paths(config)
    assert not (tmp_path / "a").exists()
