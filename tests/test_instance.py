"""One daemon per state directory; a private socket directory."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import grpc
import pytest

from syncd.app.daemon import Daemon
from syncd.app.instance import prepare_socket
from syncd.config import AuthConfig, Config, DaemonConfig, HttpConfig, TokenConfig
from syncd.errors import ConfigError, InstanceLockedError
from syncd.security import hash_token, new_token
from syncd_api.v1 import management_pb2 as pb
from syncd_api.v1 import management_pb2_grpc as pb_grpc
from tests.harness import running_daemon


def test_a_second_daemon_is_refused_and_steals_nothing(short_tmp: Path) -> None:
    """A second daemon on the same state dir fails with the holder's pid; the first one's
    socket keeps answering."""

    async def main() -> None:
        async with running_daemon(short_tmp / "state") as rt:
            second = Daemon(Config(daemon=DaemonConfig(state_dir=short_tmp / "state")))
            with pytest.raises(InstanceLockedError, match="another syncd is running"):
                await second.serve(handle_signals=False)
            reply = await rt.stub.ListBeans(pb.ListBeansRequest())
            assert reply.beans[0].name == "Daemon"

    asyncio.run(main())


def test_the_socket_directory_is_private(short_tmp: Path) -> None:
    """The run directory is 0700 and the socket owner-only, even if the dir was open."""
    run_dir = short_tmp / "state" / "run"
    run_dir.mkdir(parents=True, mode=0o755)
    run_dir.chmod(0o755)

    async def main() -> None:
        async with running_daemon(short_tmp / "state") as rt:
            assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
            sock = Path(rt.address.removeprefix("unix:"))
            assert sock.is_socket()
            assert stat.S_IMODE(sock.stat().st_mode) & 0o077 == 0

    asyncio.run(main())


def test_the_socket_is_removed_on_a_clean_stop(short_tmp: Path) -> None:
    """After shutdown no socket is left behind; a new daemon then starts at once."""

    async def main() -> None:
        async with running_daemon(short_tmp / "state") as rt:
            sock = Path(rt.address.removeprefix("unix:"))
        assert not sock.exists()
        async with running_daemon(short_tmp / "state") as rt:
            await rt.stub.ListBeans(pb.ListBeansRequest())

    asyncio.run(main())


def test_a_stale_socket_of_a_dead_daemon_is_replaced(short_tmp: Path) -> None:
    """With the lock free, a socket file left by a crashed daemon is cleared before binding."""
    import socket as pysocket

    path = short_tmp / "state" / "run" / "syncd.sock"
    path.parent.mkdir(parents=True)
    stale = pysocket.socket(pysocket.AF_UNIX)
    stale.bind(str(path))
    stale.close()

    async def main() -> None:
        async with running_daemon(short_tmp / "state") as rt:
            await rt.stub.ListBeans(pb.ListBeansRequest())

    asyncio.run(main())


def test_an_overlong_socket_path_is_a_config_error(tmp_path: Path) -> None:
    """A socket path beyond the kernel's limit is refused with a clear message."""
    with pytest.raises(ConfigError, match="longer than 107 bytes"):
        prepare_socket(tmp_path / ("x" * 120) / "syncd.sock")


def test_tcp_listener_binds_loopback(short_tmp: Path) -> None:
    """The optional TCP address serves the same API on loopback, to a caller with a token."""
    token = new_token()

    async def main() -> None:
        config = Config(
            daemon=DaemonConfig(state_dir=short_tmp / "state", tcp_address="127.0.0.1:0"),
            http=HttpConfig(
                address="127.0.0.1:0"
            ),  # never the default port of a daemon running here
            auth=AuthConfig(
                tokens=(TokenConfig(name="t", role="viewer", sha256=hash_token(token)),)
            ),
        )
        daemon = Daemon(config)
        serving = asyncio.create_task(daemon.serve(handle_signals=False))
        async with asyncio.timeout(10):
            await daemon.listening.ready.wait()
        tcp = daemon.listening.addresses[1]
        assert tcp.startswith("127.0.0.1:") and not tcp.endswith(":0")
        async with grpc.aio.insecure_channel(tcp) as channel:
            stub: pb_grpc.ManagementAsyncStub = pb_grpc.ManagementStub(channel)
            reply = await stub.ListBeans(
                pb.ListBeansRequest(), metadata=(("authorization", f"Bearer {token}"),)
            )
            assert reply.beans[0].name == "Daemon"
        daemon.request_stop()
        async with asyncio.timeout(10):
            assert await serving == 0

    asyncio.run(main())
