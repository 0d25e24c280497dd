"""What a configuration must pass before the daemon starts, shared by check-config and serve.

`validate` is the one validation: the job packs and their settings, the job plan (timetable
entries, dependencies, unknown jobs) and the paths the daemon will write. `syncd check-config`
runs exactly this and stops; `syncd serve` runs it and then starts. What only starting can show
(a port in use, another daemon's lock, a ledger server that refuses) is found by serve's
start-up steps, which `starting` turns into the same kind of one-line error.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from syncd.app.packs import build_jobs
from syncd.config import Config, split_host_port
from syncd.configvalues import shown
from syncd.errors import (
    ConfigError,
    InstanceLockedError,
    PackLoadError,
    StartupEnvironmentError,
    SyncdError,
)
from syncd.job import JobPack, JobSpec, PackContext
from syncd.scheduling.plan import JobPlan, plan_jobs
from syncd.security import Guard, ServerTls

_MESSAGE_LIMIT = 1000
_PATH_LIMIT = 200


@dataclass(frozen=True, slots=True)
class Validated:
    """A configuration that passed: each pack with its context and jobs, and the job plan."""

    built: list[tuple[JobPack, PackContext, list[JobSpec]]]
    plans: dict[str, JobPlan]

    @property
    def specs(self) -> list[JobSpec]:
        return [spec for _, _, specs in self.built for spec in specs]


def validate(config: Config, packs: list[JobPack], env: Mapping[str, str]) -> Validated:
    """Everything the daemon checks before it starts; ConfigError (exit 2) or
    StartupEnvironmentError (exit 3), each naming the key or path."""
    check_paths(config)
    Guard(config.auth)  # the token file reads and parses
    if config.tls.enabled:
        ServerTls(config.tls)  # the certificate and key load, and match
    built = build_jobs(packs, config, config.daemon.state_dir)
    seen: dict[str, str] = {}
    for pack, _, specs in built:
        for spec in specs:
            if spec.name in seen:
                raise PackLoadError(
                    pack.name, f"job {spec.name} is also declared by pack {seen[spec.name]!r}"
                )
            seen[spec.name] = pack.name
    plans = plan_jobs([s for _, _, specs in built for s in specs], config, env)
    return Validated(built=built, plans=plans)


def check_paths(config: Config) -> None:
    """The state directory, the log file and an SQLite ledger are usable, without creating
    anything (check-config must not leave traces)."""
    _usable_dir(config.daemon.state_dir, "daemon.state_dir")
    if config.log_file is not None:
        _usable_file(config.log_file, "logging.file")
    ledger = sqlite_path(config.ledger_url)
    if ledger is not None:
        _usable_file(ledger, "ledger.url" if config.ledger.url else "ledger")


def sqlite_path(url: str) -> Path | None:
    """The file of an SQLite URL; None for other databases and in-memory SQLite."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ConfigError("ledger.url", f"not a database URL: {shown(url)}") from None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).expanduser()


def _shown_path(path: Path) -> str:
    text = str(path)
    return text if len(text) <= _PATH_LIMIT else f"{text[: _PATH_LIMIT - 1]}…"


def _usable_dir(path: Path, key: str) -> None:
    try:
        probe = path
        while not probe.exists():
            probe = probe.parent
        where = _shown_path(path) if probe == path else f"{_shown_path(path)} ({probe})"
        if not probe.is_dir():
            raise StartupEnvironmentError(key, f"{where} is not a directory")
        if not os.access(probe, os.W_OK | os.X_OK):
            raise StartupEnvironmentError(key, f"{where} is not writable by this user")
    except OSError as exc:  # a name too long, a directory we may not search, …
        raise StartupEnvironmentError(
            key, f"{_shown_path(path)}: {describe_os_error(exc)}"
        ) from None


def _usable_file(path: Path, key: str) -> None:
    try:
        if path.is_dir():
            raise StartupEnvironmentError(key, f"{_shown_path(path)} is a directory, not a file")
        if path.exists():
            if not os.access(path, os.W_OK):
                raise StartupEnvironmentError(
                    key, f"{_shown_path(path)} is not writable by this user"
                )
            return
    except OSError as exc:
        raise StartupEnvironmentError(
            key, f"{_shown_path(path)}: {describe_os_error(exc)}"
        ) from None
    _usable_dir(path.parent, key)


def probe_listen(subject: str, address: str) -> None:
    """Fail with one line if HOST:PORT cannot be listened on (in use, say). gRPC's own bind
    failure is a bare RuntimeError and a C-core log line on stderr; this names the key."""
    try:
        host, port = split_host_port(address)
        if port == 0:
            return
        family, kind, proto, _, sockaddr = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM
        )[0]
        with socket.socket(family, kind, proto) as sock:
            # As servers bind: a connection lingering in TIME_WAIT is no conflict.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(sockaddr)
    except OSError as exc:
        raise StartupEnvironmentError(subject, describe_os_error(exc)) from None
    except ValueError as exc:
        raise StartupEnvironmentError(subject, str(exc)) from None


def describe_os_error(exc: OSError) -> str:
    reason = exc.strerror or type(exc).__name__
    return reason[:1].lower() + reason[1:]


def one_line(exc: BaseException) -> str:
    """An exception as one bounded line: what an operator reads, never a traceback."""
    if isinstance(exc, OSError) and exc.strerror:
        text = describe_os_error(exc)
        if exc.filename is not None:
            text = f"{exc.filename}: {text}"
    else:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not isinstance(exc, SyncdError):
            text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= _MESSAGE_LIMIT else f"{text[: _MESSAGE_LIMIT - 1]}…"


@contextlib.contextmanager
def starting(subject: str) -> Iterator[None]:
    """One start-up step: its failure becomes StartupEnvironmentError naming `subject`.

    Configuration errors and another daemon's lock keep their own types (and exit codes).
    """
    try:
        yield
    except (ConfigError, InstanceLockedError, StartupEnvironmentError):
        raise
    except Exception as exc:  # any failure of this step, from any library: one line
        raise StartupEnvironmentError(subject, one_line(exc)) from exc
