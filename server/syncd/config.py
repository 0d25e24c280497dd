"""Configuration: one TOML file into frozen settings structs, validated by msgspec.

Unknown keys and bad values are rejected with their key path (`daemon.shutdown_grace: …`).
Environment overrides: SYNCD_STATE_DIR (daemon.state_dir), SYNCD_ADDRESS (daemon.address),
SYNCD_TCP_ADDRESS (daemon.tcp_address), SYNCD_HTTP_ADDRESS (http.address),
SYNCD_WEBHOOK_URL (notify.webhook_url).

Listening beyond loopback (daemon.address, daemon.tcp_address, http.address) needs `[tls]`.
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import msgspec
from msgspec import Meta, field

from syncd._remote_config import ROLE_NAMES as ROLE_NAMES
from syncd._remote_config import AuthConfig as AuthConfig
from syncd._remote_config import PeerConfig as PeerConfig
from syncd._remote_config import ReplicationConfig as ReplicationConfig
from syncd._remote_config import TlsConfig as TlsConfig
from syncd._remote_config import TokenConfig as TokenConfig
from syncd._remote_config import require_host_port as require_host_port
from syncd._remote_config import require_loopback as require_loopback
from syncd._remote_config import split_host_port as split_host_port
from syncd.configvalues import Count as Count
from syncd.configvalues import Duration as Duration
from syncd.configvalues import DurationAtLeast1s as DurationAtLeast1s
from syncd.configvalues import PositiveCount as PositiveCount
from syncd.configvalues import Settings as Settings
from syncd.configvalues import load_table as load_table
from syncd.configvalues import parse_duration as parse_duration
from syncd.configvalues import shown, shown_key
from syncd.errors import ConfigError


def default_state_dir() -> Path:
    """$SYNCD_STATE_DIR, else $XDG_STATE_HOME/syncd, else ~/.local/state/syncd."""
    if env := os.environ.get("SYNCD_STATE_DIR"):
        return Path(env).expanduser()
    if xdg := os.environ.get("XDG_STATE_HOME"):
        return Path(xdg).expanduser() / "syncd"
    return Path.home() / ".local" / "state" / "syncd"


def socket_path(state_dir: Path) -> Path:
    """The control socket: in a 0700 directory under the state directory."""
    return state_dir / "run" / "syncd.sock"


class DaemonConfig(Settings, frozen=True):
    """The `[daemon]` table."""

    state_dir: Path = field(default_factory=default_state_dir)
    # A gRPC address to listen on; empty means unix:<state_dir>/run/syncd.sock.
    address: str = ""
    # Optional TCP listener (e.g. "127.0.0.1:7601"); beyond loopback only with [tls]. Every
    # caller over TCP needs a credential (a token or a client certificate), loopback included.
    tcp_address: str = ""
    shutdown_grace: Duration = 30.0
    cancel_grace: Duration = 10.0
    log_level: str = "info"
    # Extra job packs as "module:attr" references to JobPack objects.
    packs: tuple[str, ...] = ()
    # Load every pack installed under the `syncd.jobs` entry-point group.
    entry_points: bool = True
    # Where job bodies run: "process" (a child process: killable, no shared GIL) or "thread".
    execution: str = "process"
    # How much job processes defer for CPU (nice increment 0-19 over the daemon's own; the fork
    # server that forks them too). Jobs are batch work: at 10 the control plane (and the
    # machine's interactive services) come first; 0 for equal terms.
    job_nice: Annotated[int, Meta(ge=0, le=19)] = 10
    # The CPU time slice (µs) the daemon asks the kernel for its own threads (Linux 6.12+):
    # a waking control-plane thread preempts a running job sooner. 0: the kernel's default.
    cpu_slice_us: Annotated[int, Meta(ge=0, le=100_000)] = 300

    def __post_init__(self) -> None:
        if self.log_level.lower() not in {"debug", "info", "warning", "error", "critical"}:
            raise ConfigError("log_level", "expected debug, info, warning, error or critical")
        if self.address.startswith("unix:"):
            if not self.address.removeprefix("unix:").startswith("/"):
                raise ConfigError(
                    "address", f"expected unix:/absolute/path, got {shown(self.address)}"
                )
        elif self.address:
            require_host_port("address", self.address)  # loopback unless TLS: see Config
        if self.tcp_address:
            require_host_port("tcp_address", self.tcp_address)
        if self.execution not in ("process", "thread"):
            raise ConfigError(
                "execution", f'expected "process" or "thread", got {shown(self.execution)}'
            )
        if 0 < self.cpu_slice_us < 100:
            raise ConfigError(
                "cpu_slice_us",
                f"expected 0 (the kernel's default) or 100-100000, got {self.cpu_slice_us}",
            )
        for ref in self.packs:
            if ":" not in ref:
                raise ConfigError("packs", f"expected 'module:attr', got {shown(ref)}")

    @property
    def listen_address(self) -> str:
        return self.address or f"unix:{socket_path(self.state_dir)}"


_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def parse_window(text: str) -> tuple[int, int]:
    """Minutes of the UTC day [start, end) from "HH:MM-HH:MM"."""
    match = _WINDOW.match(text)
    if not match:
        raise ValueError(f'expected "HH:MM-HH:MM" (UTC), got {shown(text)}')
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        raise ValueError(f"not a time of day in {shown(text)}")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start >= end:
        raise ValueError(f"the window must end after it starts, got {shown(text)}")
    return start, end


class SchedulerConfig(Settings, frozen=True):
    """The `[scheduler]` table."""

    enabled: bool = True
    # On start-up inside this UTC window, tonight's unfinished jobs run in timetable order.
    catch_up_window: str = "00:00-07:00"
    catch_up: bool = True

    def __post_init__(self) -> None:
        try:
            parse_window(self.catch_up_window)
        except ValueError as exc:
            raise ConfigError("catch_up_window", str(exc)) from None

    @property
    def window(self) -> tuple[int, int]:
        return parse_window(self.catch_up_window)


_LEDGER_URL = re.compile(r"(sqlite|postgresql)(\+\w+)?://")
MAX_KEEP_DAYS = 36500  # a century
MAX_KEEP_RUNS = 1_000_000_000


class LedgerConfig(Settings, frozen=True):
    """The `[ledger]` table: where runs are kept and for how long."""

    # Empty: SQLite at <state_dir>/ledger.sqlite3. Or e.g. postgresql+psycopg://host/db.
    url: str = ""
    # The ceiling keeps the cutoff date representable.
    keep_days: Annotated[float, Meta(gt=0, le=MAX_KEEP_DAYS)] = 90.0
    keep_runs: Annotated[int, Meta(ge=1, le=MAX_KEEP_RUNS)] = 1000  # per bean

    def __post_init__(self) -> None:
        if self.url and not _LEDGER_URL.match(self.url):
            raise ConfigError(
                "url",
                f"the ledger supports sqlite:// and postgresql:// URLs, got {shown(self.url)}",
            )


_CLUSTER_URL = re.compile(r"postgresql(\+\w+)?://")
_REPLICA = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def default_replica() -> str:
    """The host name, cut to a replica name (letters, digits, _ . -)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:64]
    return name or "syncd"


class ClusterConfig(Settings, frozen=True):
    """The `[cluster]` table: several daemons (replicas) sharing one PostgreSQL database for
    the ledger, the holds and the run claims. Empty `url`: a single daemon."""

    url: str = ""
    # This daemon's name in the cluster; empty: the host name.
    replica: str = ""
    # How long a running claim lives without a renewal; replicas renew every third of it.
    lease_ttl: DurationAtLeast1s = 30.0
    # A replica that has not renewed for lease_ttl minus this cancels its own runs; at most
    # half the lease (the renewal every third of it must come first).
    lease_margin: Duration = 0.0  # 0: a third of lease_ttl

    def __post_init__(self) -> None:
        if self.url and not _CLUSTER_URL.match(self.url):
            raise ConfigError(
                "url", f"the cluster needs a postgresql:// URL, got {shown(self.url)}"
            )
        if self.replica and not _REPLICA.fullmatch(self.replica):
            raise ConfigError(
                "replica", f"expected 1-64 letters, digits, _ . or -, got {shown(self.replica)}"
            )
        if self.lease_margin > self.lease_ttl / 2:
            raise ConfigError(
                "lease_margin",
                f"must be at most half of lease_ttl ({self.lease_ttl:g}s): a replica renews"
                f" every third of it, and must not give a claim up before; got"
                f" {self.lease_margin:g}s",
            )

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    @property
    def replica_name(self) -> str:
        return self.replica or default_replica()

    @property
    def give_up_after(self) -> float:
        """Seconds without a renewal after which this replica stops its runs."""
        return self.lease_ttl - (self.lease_margin or self.lease_ttl / 3)


class JobConfig(Settings, frozen=True):
    """One `[jobs.<Name>]` table. At most one of at / every / cron."""

    at: str | None = None  # "HH:MM", daily, UTC
    every: str | None = None  # "15m"
    cron: str | None = None  # 6-field, UTC
    enabled: bool = True
    timeout: Duration = 0.0  # 0: no limit
    cancel_grace: Duration | None = None  # None: daemon.cancel_grace
    after: tuple[str, ...] | None = None  # None: the job's default dependencies
    on_missed: str = "skip"  # or "run_once"
    execution: str | None = None  # None: daemon.execution

    def __post_init__(self) -> None:
        given = [k for k in ("at", "every", "cron") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ConfigError(
                given[1], f"give only one of at, every and cron (got {', '.join(given)})"
            )
        if self.on_missed not in ("skip", "run_once"):
            raise ConfigError(
                "on_missed", f'expected "skip" or "run_once", got {shown(self.on_missed)}'
            )
        if self.execution not in (None, "process", "thread"):
            raise ConfigError(
                "execution", f'expected "process" or "thread", got {shown(self.execution)}'
            )


MAX_LOG_BACKUPS = 1000  # rotation renames every backup in turn


class LoggingConfig(Settings, frozen=True):
    """The `[logging]` table."""

    # Empty: <state_dir>/logs/syncd.log. "-": no log file (stdout only).
    file: str = ""
    max_bytes: Annotated[int, Meta(ge=1024, le=2**63 - 1)] = 50 * 1024 * 1024
    backups: Annotated[int, Meta(ge=0, le=MAX_LOG_BACKUPS)] = 5
    # stdout rendering: "auto" (console on a terminal, JSON otherwise), "json" or "console".
    format: str = "auto"

    def __post_init__(self) -> None:
        if self.format not in ("auto", "json", "console"):
            raise ConfigError(
                "format", f'expected "auto", "json" or "console", got {shown(self.format)}'
            )


# URL path segments the router takes literally: no spaces, braces (route patterns) or escapes.
_CONTEXT_PATH = re.compile(r"/(?:[A-Za-z0-9._~-]+/)*")


class HttpConfig(Settings, frozen=True):
    """The `[http]` table: the listener for metrics, health and the web console."""

    # HOST:PORT (HTTPS with [tls]; beyond loopback only then); empty disables the listener.
    address: str = "127.0.0.1:8101"
    context_path: str = "/sync/"
    # Credentials come from [auth] (bearer tokens) or the console's login link. These open
    # parts to callers without one — for a single-user machine only: any local user could.
    open_read: bool = False  # read-only views and the old status API
    open_write: bool = False  # run, cancel and run-all too (needs open_read)
    open_metrics: bool = False  # /metrics without a viewer token
    # Host names (besides loopback ones) under which cookie and anonymous callers are served,
    # e.g. the name a reverse proxy forwards. Anything else is refused (DNS rebinding).
    allowed_hosts: tuple[str, ...] = ()
    # What the old `GET /api/sys/profile` answers (e.g. "prod", "nimdta"; "nimdta" hides reval).
    profile: str = "default"

    def __post_init__(self) -> None:
        if self.address:
            require_host_port("address", self.address)  # loopback unless TLS: see Config
        if self.open_write and not self.open_read:
            raise ConfigError("open_write", "anonymous writes need open_read = true as well")
        if not _CONTEXT_PATH.fullmatch(self.context_path):
            raise ConfigError(
                "context_path",
                "must start and end with '/' and hold only letters, digits and . _ ~ -"
                f" between, got {shown(self.context_path)}",
            )


NOTIFY_OUTCOMES = (
    "started",
    "success",
    "failed",
    "cancelled",
    "timed_out",
    "interrupted",
    "skipped",
    "missed",
)


class NotifyConfig(Settings, frozen=True):
    """The `[notify]` table: a Slack-compatible webhook (env SYNCD_WEBHOOK_URL overrides)."""

    webhook_url: str = ""
    on: tuple[str, ...] = ("failed", "timed_out", "interrupted")
    timeout: Duration = 5.0
    channel: str = ""
    # Prefix failure messages with <!channel>, as the old service did (it paged people at night).
    mention_on_failure: bool = False
    # A post that fails for a reason worth retrying (no answer, 429, 5xx) is tried again, up to
    # `attempts` posts in all, the waits doubling from `retry_delay` (with jitter).
    attempts: Annotated[int, Meta(ge=1, le=20)] = 4
    retry_delay: Duration = 2.0

    def __post_init__(self) -> None:
        for item in self.on:
            if item not in NOTIFY_OUTCOMES:
                raise ConfigError(
                    "on", f"unknown {shown(item)} (known: {', '.join(NOTIFY_OUTCOMES)})"
                )
        if self.webhook_url and not self.webhook_url.startswith(("http://", "https://")):
            raise ConfigError("webhook_url", "expected an http:// or https:// URL")


class Config(Settings, frozen=True):
    """The whole file. `packs` holds each job pack's raw table, validated by the pack loader;
    `jobs` the per-job tables (their names are checked once the jobs are known)."""

    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    replication: ReplicationConfig = field(default_factory=ReplicationConfig)
    jobs: Mapping[str, JobConfig] = field(default_factory=dict)
    packs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # One database in cluster mode: replicas that recorded runs apart could not see each
        # other's runs, holds or catch-up.
        if self.cluster.url and self.ledger.url and self.ledger.url != self.cluster.url:
            raise ConfigError(
                "ledger.url",
                "in cluster mode the ledger lives in the cluster database: remove ledger.url"
                " or set it to cluster.url",
            )
        if self.tls.enabled:
            return
        addresses = (
            (
                "daemon.address",
                "" if self.daemon.address.startswith("unix:") else self.daemon.address,
            ),
            ("daemon.tcp_address", self.daemon.tcp_address),
            ("http.address", self.http.address),
        )
        for key, address in addresses:
            if address:
                require_loopback(key, address)

    @property
    def log_file(self) -> Path | None:
        if self.logging.file == "-":
            return None
        return (
            Path(self.logging.file).expanduser()
            if self.logging.file
            else (self.daemon.state_dir / "logs" / "syncd.log")
        )

    @property
    def ledger_url(self) -> str:
        if self.cluster.url:
            return self.cluster.url
        return self.ledger.url or f"sqlite:///{self.daemon.state_dir / 'ledger.sqlite3'}"


# Job and pack names: what a bean or pack can be called; anything else is a typo or garbage.
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML document at `path`, or ConfigError naming the file and what is wrong with it."""
    where = shown_key(str(path)) if len(str(path)) > 200 else str(path)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(where, "no such file") from None
    except OSError as exc:
        raise ConfigError(where, f"cannot read it: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(where, f"not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(where, "not valid TOML: not UTF-8 text") from None
    except RecursionError:
        # tomllib recurses once per level of nested inline tables and arrays.
        raise ConfigError(where, "not usable TOML: values nested too deeply") from None


def _named_tables(document: Mapping[str, Any], key: str, what: str) -> dict[str, Any]:
    # Table by table, so that an error names it (msgspec shows a map's values as `[...]`).
    tables = load_table(dict[str, Any], document.get(key, {}), key)
    for name, table in tables.items():
        if not _NAME.fullmatch(name):
            raise ConfigError(
                f"{key}.{shown_key(name)}", f"not a {what} name (letters, digits, _ . -)"
            )
        load_table(dict[str, Any], table, f"{key}.{name}")
    return tables


def _with_environment(document: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """The document with the SYNCD_* overrides applied to its (copied) tables."""

    def table(key: str) -> dict[str, Any]:
        value = document.get(key, {})
        # Not a table: left as it is, for the validation to name.
        document[key] = dict(value) if isinstance(value, dict) else value
        return document[key] if isinstance(value, dict) else {}

    document = dict(document)
    daemon = table("daemon")
    for var, key in (
        ("SYNCD_STATE_DIR", "state_dir"),
        ("SYNCD_ADDRESS", "address"),
        ("SYNCD_TCP_ADDRESS", "tcp_address"),
    ):
        if env.get(var):
            daemon[key] = env[var]
    http = table("http")
    if "SYNCD_HTTP_ADDRESS" in env:
        http["address"] = env["SYNCD_HTTP_ADDRESS"]
    if env.get("SYNCD_WEBHOOK_URL"):
        table("notify")["webhook_url"] = env["SYNCD_WEBHOOK_URL"]
    return document


def load_config(path: Path | None, env: Mapping[str, str] | None = None) -> Config:
    """The configuration from `path` (or defaults), with environment overrides applied."""
    env = os.environ if env is None else env
    document = _with_environment(read_toml(path) if path is not None else {}, env)
    jobs = {
        name: load_table(JobConfig, table, f"jobs.{name}")
        for name, table in _named_tables(document, "jobs", "job").items()
    }
    packs = _named_tables(document, "packs", "job pack")
    tables = {key: value for key, value in document.items() if key not in ("jobs", "packs")}
    return msgspec.structs.replace(load_table(Config, tables, ""), jobs=jobs, packs=packs)


def with_overrides(config: Config, **daemon_changes: Any) -> Config:
    """The config with some `[daemon]` keys replaced (command-line flags), re-validated."""
    changes = {k: v for k, v in daemon_changes.items() if v is not None}
    if not changes:
        return config
    try:
        daemon = msgspec.structs.replace(config.daemon, **changes)
    except ConfigError as exc:
        raise ConfigError(f"daemon.{exc.key_path}", exc.problem) from None
    return msgspec.structs.replace(config, daemon=daemon)
