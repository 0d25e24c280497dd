"""Where syncctl looks for the daemon, and who it says is asking."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from syncctl._connect import (
    actor,
    default_address,
    looks_like_address,
    normalize_address,
    resolve_address,
)


class TestResolveAddress:
    def test_flag_beats_environment(self) -> None:
        """--address wins over SYNCD_ADDRESS."""
        env = {"SYNCD_ADDRESS": "unix:/from/env.sock"}
        assert resolve_address("unix:/from/flag.sock", env) == "unix:/from/flag.sock"

    def test_environment_beats_default(self) -> None:
        """SYNCD_ADDRESS wins over the state-directory socket."""
        env = {"SYNCD_ADDRESS": "127.0.0.1:7601", "SYNCD_STATE_DIR": "/state"}
        assert resolve_address(None, env) == "127.0.0.1:7601"

    def test_default_is_the_socket_under_syncd_state_dir(self) -> None:
        """With nothing given, the daemon's own default socket is used."""
        assert resolve_address(None, {"SYNCD_STATE_DIR": "/state"}) == "unix:/state/run/syncd.sock"

    def test_default_falls_back_to_xdg_state_home(self) -> None:
        """Without SYNCD_STATE_DIR, $XDG_STATE_HOME/syncd holds the socket."""
        env = {"XDG_STATE_HOME": "/xdg", "HOME": "/home/op"}
        assert default_address(env) == "unix:/xdg/syncd/run/syncd.sock"

    def test_default_falls_back_to_home(self) -> None:
        """Without either variable, ~/.local/state/syncd holds the socket."""
        assert default_address({"HOME": "/home/op"}) == (
            "unix:/home/op/.local/state/syncd/run/syncd.sock"
        )

    def test_empty_variables_are_ignored(self) -> None:
        """An exported but empty SYNCD_ADDRESS does not mean "connect to nothing"."""
        env = {"SYNCD_ADDRESS": "", "SYNCD_STATE_DIR": "/state"}
        assert resolve_address("", env) == "unix:/state/run/syncd.sock"


class TestNormalizeAddress:
    @pytest.mark.parametrize(
        "target",
        ["unix:/run/syncd.sock", "unix:///run/syncd.sock", "127.0.0.1:7601", "dns:localhost:7601"],
    )
    def test_grpc_targets_pass_through(self, target: str) -> None:
        """What gRPC already understands is left alone."""
        assert normalize_address(target) == target

    def test_bare_absolute_path_becomes_a_unix_target(self) -> None:
        """A socket path without a scheme gets `unix:`."""
        assert normalize_address("/run/syncd.sock") == "unix:/run/syncd.sock"

    def test_relative_path_is_made_absolute(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A relative socket path is resolved against the working directory, once."""
        monkeypatch.chdir(tmp_path)
        assert normalize_address("run/syncd.sock") == f"unix:{tmp_path / 'run' / 'syncd.sock'}"


class TestLooksLikeAddress:
    @pytest.mark.parametrize("text", ["1", "12345", "service:jmx:rmi:///jndi/rmi://h:9/jmxrmi"])
    def test_jmxterm_targets_are_not_addresses(self, text: str) -> None:
        """`open 1` (a JVM number), a PID or a JMX URL mean "the default daemon"."""
        assert not looks_like_address(text)

    @pytest.mark.parametrize(
        "text", ["unix:/run/s.sock", "/run/s.sock", "./s.sock", "localhost:7601", "127.0.0.1:7601"]
    )
    def test_sockets_and_host_ports_are_addresses(self, text: str) -> None:
        """A socket path, a gRPC scheme or host:port names a daemon to open."""
        assert looks_like_address(text)


def test_actor_names_user_host_and_uid() -> None:
    """The metadata the daemon records as a run's actor: "user@host (uid N)", ASCII only."""
    text = actor()
    assert re.fullmatch(r"[ -~]+@[ -~]+ \(uid \d+\)", text)
    assert text.endswith(f"(uid {os.getuid()})")
