"""A private PostgreSQL server in a temp dir, on a free port, that a test may stop and start.

Tests that restart a server must never touch the shared one other tests use. The server runs
as the `postgres` OS user (initdb refuses root); the test is skipped, visibly, when no
PostgreSQL binaries or no such user are found.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

BOUND_S = 60


def _bin_dir() -> Path | None:
    """Where initdb and pg_ctl are: SYNCD_TEST_PG_BINDIR, else what `pg_config` says."""
    if configured := os.environ.get("SYNCD_TEST_PG_BINDIR"):
        return Path(configured)
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        return None
    found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
    bin_dir = Path(found.stdout.strip())
    return bin_dir if (bin_dir / "pg_ctl").exists() else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class PrivatePostgres:
    bin_dir: Path
    data_dir: Path
    port: int
    as_user: list[str]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.as_user, str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), *args],
            check=True,
            capture_output=True,
            timeout=BOUND_S,
        )

    def start(self) -> None:
        """Start and wait until it accepts connections (pg_ctl -w)."""
        options = f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.data_dir / "server.log")
        self._pg_ctl("-w", "-t", str(BOUND_S), "-o", options, "-l", log, "start")

    def stop(self) -> None:
        """Stop now: connections are cut as a crash or a restart would cut them."""
        self._pg_ctl("-w", "-m", "immediate", "stop")


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries to start a private server")
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="sd-pg-"))
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root)
            pytest.skip("running as root and no `postgres` user to run a private server")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data_dir = root / "data"
    server = PrivatePostgres(bin_dir, data_dir, _free_port(), as_user)
    try:
        subprocess.run(
            [
                *as_user,
                str(bin_dir / "initdb"),
                "-D",
                str(data_dir),
                "-A",
                "trust",
                "-U",
                "postgres",
            ],
            check=True,
            capture_output=True,
            timeout=BOUND_S,
        )
        server.start()
        yield server
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
