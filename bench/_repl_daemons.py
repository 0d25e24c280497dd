"""The replication benchmark as deployed: the parent and the child each a daemon process on its
own TCP listener (token-authenticated, as between hosts), and the cycle in a third process (this
one, standing in for the SynchronizeJobData job process), talking gRPC to both.

Nothing is shared but the machine: each repository's servicer and store run in its own daemon
with its own interpreter lock, as an operator runs them.
"""

from __future__ import annotations

import json
import os
import resource
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench._daemon import ROOT, bench_config
from syncd.replication.children import ChildRow
from syncd.replication.cycle import Synchronizer
from syncd.retry import Backoff
from syncd.rpc.replclient import GrpcPeer, PeerCredentials
from syncd.security import hash_token, new_token


@dataclass(frozen=True, slots=True)
class Daemon:
    proc: subprocess.Popen[bytes]
    address: str  # grpc://127.0.0.1:port

    def cpu_seconds(self) -> float:
        """User + system CPU of the daemon so far (from /proc; Linux)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _config(name: str, ledger_url: str, token: str) -> str:
    ledger = f'[ledger]\nurl = "{ledger_url}"\n' if ledger_url.startswith("postgresql") else ""
    return bench_config(
        '[daemon]\nentry_points = false\ntcp_address = "127.0.0.1:0"\n'
        f"{ledger}"
        f'[replication]\nname = "{name}"\ncluster_id = "bench"\n'
        f'[[auth.tokens]]\nname = "peers"\nrole = "admin"\nsha256 = "{hash_token(token)}"\n'
    )


@contextmanager
def daemon(folder: Path, name: str, ledger_url: str, token: str) -> Iterator[Daemon]:
    """A daemon whose state dir is `folder/name/state`; yields it once it listens on TCP."""
    state = folder / name / "state"
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    config = folder / name / "syncd.toml"
    config.write_text(_config(name, ledger_url, token))
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = dict(
        os.environ, SYNCD_STATE_DIR=str(state), PYTHONPATH=path, SYNCD_HTTP_ADDRESS="127.0.0.1:0"
    )
    env.pop("SYNCD_ADDRESS", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncd", "--config", str(config), "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        address = _started(proc, 60.0)
        # Keep draining stdout so the daemon never blocks on a full pipe.
        drain = subprocess.Popen(["cat"], stdin=proc.stdout, stdout=subprocess.DEVNULL)
        try:
            yield Daemon(proc, f"grpc://{address}")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
            drain.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _started(proc: subprocess.Popen[bytes], timeout: float) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        buffer = b""
        while time.monotonic() < deadline and sel.select(deadline - time.monotonic()):
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if event.get("event") == "daemon.started":
                    return str(next(a for a in event["addresses"] if not a.startswith("unix:")))
    raise RuntimeError("the daemon did not start")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Pair:
    """A parent and a child daemon, and the cycle between them run from this process."""

    def __init__(self, parent: Daemon, child: Daemon, token: str, page: int) -> None:
        self.parent, self.child = parent, child
        self._token, self._page = token, page

    def cycle(self) -> tuple[float, int]:
        creds = PeerCredentials(token=self._token)
        parent = GrpcPeer("parent", self.parent.address, creds, timeout=300)
        child = GrpcPeer("child", self.child.address, creds, timeout=300)
        try:
            sync = Synchronizer(
                parent,
                lambda _row: child,
                page_limit=self._page,
                parallel=1,
                backoff=Backoff(initial=0.1, maximum=1.0, attempts=2),
            )
            begun = time.perf_counter()
            report = sync.run([ChildRow("child", True, "true", self.child.address, None)])
            took = time.perf_counter() - begun
        finally:
            parent.close()
            child.close()
        (row,) = report.rows
        assert report.status == 0, row.error
        return took, row.pushed + row.pulled

    def cpu(self) -> tuple[float, float, float]:
        """CPU seconds so far: the parent daemon, the child daemon, this (the cycle's) process."""
        return self.parent.cpu_seconds(), self.child.cpu_seconds(), own_cpu_seconds()


@contextmanager
def pair(folder: Path, parent_url: str, child_url: str, page: int) -> Iterator[Pair]:
    """A parent and a child daemon under `folder` on the given state stores (a SQLite store
    is the file `sqlite_url` names in the daemon's state dir)."""
    token = new_token()
    with (
        daemon(folder, "parent", parent_url, token) as parent,
        daemon(folder, "child", child_url, token) as child,
    ):
        yield Pair(parent, child, token, page)


def sqlite_url(folder: Path, name: str) -> str:
    """Where the daemon named `name` under `folder` keeps its SQLite store (made ready here, so
    the parent can be filled before it starts)."""
    state = folder / name / "state"
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    return f"sqlite:///{state / 'ledger.sqlite3'}"
