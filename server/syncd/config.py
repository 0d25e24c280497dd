"""Configuration: one TOML file into frozen, validated dataclasses.

Unknown keys and bad values are rejected with their key path (`daemon.shutdown_grace: …`).
Environment overrides: SYNCD_STATE_DIR (daemon.state_dir), SYNCD_ADDRESS (daemon.address),
SYNCD_TCP_ADDRESS (daemon.tcp_address), SYNCD_HTTP_ADDRESS (http.address),
SYNCD_WEBHOOK_URL (notify.webhook_url).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from syncd.errors import ConfigError

T = TypeVar("T")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> float:
    """Seconds from a number of seconds or text like "1500ms", "30s", "15m", "2h", "1d"."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError(f'expected a duration such as 30, "30s", "15m" or "2h", got {value!r}')
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {value!r}")
    return seconds


def duration(default: float, *, minimum: float = 0.0) -> Any:
    """A dataclass field holding seconds, written in TOML as a number or "30s"/"15m"."""
    return field(default=default, metadata={"duration": True, "minimum": minimum})


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


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def split_host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    return host, int(port)


def require_loopback(key: str, address: str) -> None:
    """HOST:PORT on a loopback host, or ConfigError: beyond loopback needs TLS, not offered yet."""
    try:
        host, _ = split_host_port(address)
    except ValueError as exc:
        raise ConfigError(key, str(exc)) from None
    if not _is_loopback(host):
        raise ConfigError(
            key,
            f"{host} is not a loopback address; listening beyond loopback needs TLS,"
            " which this version does not offer",
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonConfig:
    """The `[daemon]` table."""

    state_dir: Path = field(default_factory=default_state_dir)
    # A gRPC address to listen on; empty means unix:<state_dir>/run/syncd.sock.
    address: str = ""
    # Optional TCP listener, loopback only until TLS arrives (e.g. "127.0.0.1:7601").
    tcp_address: str = ""
    shutdown_grace: float = duration(30.0)
    cancel_grace: float = duration(10.0)
    log_level: str = "info"
    # Extra job packs as "module:attr" references to JobPack objects.
    packs: tuple[str, ...] = ()
    # Load every pack installed under the `syncd.jobs` entry-point group.
    entry_points: bool = True
    # Where job bodies run: "process" (a child process: killable, no shared GIL) or "thread".
    execution: str = "process"

    def __post_init__(self) -> None:
        if self.log_level.lower() not in {"debug", "info", "warning", "error", "critical"}:
            raise ConfigError(
                "daemon.log_level", "expected debug, info, warning, error or critical"
            )
        if self.tcp_address:
            require_loopback("daemon.tcp_address", self.tcp_address)
        if self.execution not in ("process", "thread"):
            raise ConfigError(
                "daemon.execution", f'expected "process" or "thread", got {self.execution!r}'
            )
        for ref in self.packs:
            if ":" not in ref:
                raise ConfigError("daemon.packs", f"expected 'module:attr', got {ref!r}")

    @property
    def listen_address(self) -> str:
        return self.address or f"unix:{socket_path(self.state_dir)}"


_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def parse_window(text: str) -> tuple[int, int]:
    """Minutes of the UTC day [start, end) from "HH:MM-HH:MM"."""
    match = _WINDOW.match(text)
    if not match:
        raise ValueError(f'expected "HH:MM-HH:MM" (UTC), got {text!r}')
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        raise ValueError(f"not a time of day in {text!r}")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start >= end:
        raise ValueError(f"the window must end after it starts, got {text!r}")
    return start, end


@dataclass(frozen=True, slots=True, kw_only=True)
class SchedulerConfig:
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


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerConfig:
    """The `[ledger]` table: where runs are kept and for how long."""

    # Empty: SQLite at <state_dir>/ledger.sqlite3. Or e.g. postgresql+psycopg://host/db.
    url: str = ""
    keep_days: float = 90.0
    keep_runs: int = 1000  # per bean

    def __post_init__(self) -> None:
        if self.url and not self.url.startswith(("sqlite", "postgresql")):
            raise ConfigError("url", "the ledger supports sqlite:// and postgresql:// URLs")
        if self.keep_days <= 0 or self.keep_runs < 1:
            raise ConfigError("keep_days", "retention must keep at least one day and one run")


@dataclass(frozen=True, slots=True, kw_only=True)
class JobConfig:
    """One `[jobs.<Name>]` table. At most one of at / every / cron."""

    at: str | None = None  # "HH:MM", daily, UTC
    every: str | None = None  # "15m"
    cron: str | None = None  # 6-field, UTC
    enabled: bool = True
    timeout: float = duration(0.0)  # 0: no limit
    cancel_grace: float | None = None
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
            raise ConfigError("on_missed", f'expected "skip" or "run_once", got {self.on_missed!r}')
        if self.execution not in (None, "process", "thread"):
            raise ConfigError(
                "execution", f'expected "process" or "thread", got {self.execution!r}'
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggingConfig:
    """The `[logging]` table."""

    # Empty: <state_dir>/logs/syncd.log. "-": no log file (stdout only).
    file: str = ""
    max_bytes: int = 50 * 1024 * 1024
    backups: int = 5
    # stdout rendering: "auto" (console on a terminal, JSON otherwise), "json" or "console".
    format: str = "auto"

    def __post_init__(self) -> None:
        if self.max_bytes < 1024:
            raise ConfigError("max_bytes", f"must be at least 1024, got {self.max_bytes}")
        if self.backups < 0:
            raise ConfigError("backups", f"must not be negative, got {self.backups}")
        if self.format not in ("auto", "json", "console"):
            raise ConfigError(
                "format", f'expected "auto", "json" or "console", got {self.format!r}'
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpConfig:
    """The `[http]` table: the listener for metrics, health and the web console."""

    # HOST:PORT, loopback only (no TLS yet); empty disables the listener.
    address: str = "127.0.0.1:8101"
    context_path: str = "/sync/"
    # Bearer tokens: operators may run and cancel; viewers may read. Env SYNCD_HTTP_OPERATOR_TOKEN
    # adds one operator token.
    operator_tokens: tuple[str, ...] = ()
    viewer_tokens: tuple[str, ...] = ()
    # Read-only views need no token (the listener is loopback-only). State-changing requests
    # from the page always need its CSRF token, or an operator bearer token.
    open_read: bool = True
    # Host names (besides loopback ones) under which anonymous callers are served, e.g. the name
    # a reverse proxy forwards. Anything else is refused, which defeats DNS rebinding.
    allowed_hosts: tuple[str, ...] = ()
    # What the old `GET /api/sys/profile` answers (e.g. "prod", "nimdta"; "nimdta" hides reval).
    profile: str = "default"

    def __post_init__(self) -> None:
        if self.address:
            require_loopback("address", self.address)
        if not (self.context_path.startswith("/") and self.context_path.endswith("/")):
            raise ConfigError(
                "context_path", f"must start and end with '/', got {self.context_path!r}"
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


@dataclass(frozen=True, slots=True, kw_only=True)
class NotifyConfig:
    """The `[notify]` table: a Slack-compatible webhook (env SYNCD_WEBHOOK_URL overrides)."""

    webhook_url: str = ""
    on: tuple[str, ...] = ("failed", "timed_out", "interrupted")
    timeout: float = duration(5.0)
    channel: str = ""
    # Prefix failure messages with <!channel>, as the old service did (it paged people at night).
    mention_on_failure: bool = False

    def __post_init__(self) -> None:
        for item in self.on:
            if item not in NOTIFY_OUTCOMES:
                raise ConfigError("on", f"unknown {item!r} (known: {', '.join(NOTIFY_OUTCOMES)})")
        if self.webhook_url and not self.webhook_url.startswith(("http://", "https://")):
            raise ConfigError("webhook_url", "expected an http:// or https:// URL")


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The whole file. `packs` holds each job pack's raw table, validated by the pack loader;
    `jobs` the per-job tables, validated once the jobs are known."""

    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    jobs: Mapping[str, JobConfig] = field(default_factory=dict)
    packs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

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
        return self.ledger.url or f"sqlite:///{self.daemon.state_dir / 'ledger.sqlite3'}"


def load_dataclass(cls: type[T], table: Mapping[str, Any], path: str) -> T:
    """An instance of the frozen dataclass `cls` from a TOML table, or ConfigError with the path.

    Supports str, int, float, bool, Path, `X | None`, tuple[str, ...], nested dataclasses and
    duration fields (see `duration`).
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    if not isinstance(table, Mapping):
        raise ConfigError(path or "(top level)", f"expected a table, got {type(table).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs: dict[str, Any] = {}
    for key, raw in table.items():
        key_path = f"{path}.{key}" if path else key
        if key not in fields:
            known = ", ".join(sorted(fields)) or "none"
            raise ConfigError(key_path, f"unknown key (known keys here: {known})")
        fld = fields[key]
        try:
            if fld.metadata.get("duration"):
                value: Any = parse_duration(raw)
                if value < fld.metadata.get("minimum", 0.0):
                    raise ValueError(f"must be at least {fld.metadata['minimum']} s")
            else:
                value = _convert(hints[key], raw, key_path)
        except ConfigError:
            raise
        except ValueError as exc:
            raise ConfigError(key_path, str(exc)) from None
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        if path and not exc.key_path.startswith(path):
            raise ConfigError(f"{path}.{exc.key_path}", exc.problem) from None
        raise


def _convert(hint: Any, raw: Any, key_path: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(options) == 1:
            return _convert(options[0], raw, key_path)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return load_dataclass(hint, raw, key_path)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(raw, list):
            raise ValueError(f"expected a list, got {type(raw).__name__}")
        return tuple(_convert(args[0], item, key_path) for item in raw)
    if origin is Mapping or origin is dict:
        if not isinstance(raw, dict):
            raise ValueError(f"expected a table, got {type(raw).__name__}")
        return dict(raw)
    if hint is bool:
        if not isinstance(raw, bool):
            raise ValueError(f"expected true or false, got {raw!r}")
        return raw
    if hint is int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ValueError(f"expected a whole number, got {raw!r}")
        return raw
    if hint is float:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise ValueError(f"expected a number, got {raw!r}")
        return float(raw)
    if hint is str:
        if not isinstance(raw, str):
            raise ValueError(f"expected a string, got {raw!r}")
        return raw
    if hint is Path:
        if not isinstance(raw, str) or not raw:
            raise ValueError(f"expected a path, got {raw!r}")
        return Path(raw).expanduser()
    raise ValueError(f"unsupported setting type {hint!r}")  # a programming error in a pack


def load_config(path: Path | None, env: Mapping[str, str] | None = None) -> Config:
    """The configuration from `path` (or defaults), with environment overrides applied."""
    env = os.environ if env is None else env
    document: dict[str, Any] = {}
    if path is not None:
        try:
            with path.open("rb") as fh:
                document = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(str(path), "no such file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(path), f"not valid TOML: {exc}") from None
    tables = ("daemon", "scheduler", "ledger", "logging", "http", "notify", "jobs", "packs")
    unknown = set(document) - set(tables)
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(key, f"unknown table (known: {', '.join(tables)})")
    daemon_table = dict(document.get("daemon", {}))
    for var, key in (
        ("SYNCD_STATE_DIR", "state_dir"),
        ("SYNCD_ADDRESS", "address"),
        ("SYNCD_TCP_ADDRESS", "tcp_address"),
    ):
        if env.get(var):
            daemon_table[key] = env[var]
    daemon = load_dataclass(DaemonConfig, daemon_table, "daemon")
    scheduler = load_dataclass(SchedulerConfig, document.get("scheduler", {}), "scheduler")
    ledger = load_dataclass(LedgerConfig, document.get("ledger", {}), "ledger")
    logging_cfg = load_dataclass(LoggingConfig, document.get("logging", {}), "logging")
    http_table = dict(document.get("http", {}))
    if "SYNCD_HTTP_ADDRESS" in env:
        http_table["address"] = env["SYNCD_HTTP_ADDRESS"]
    if env.get("SYNCD_HTTP_OPERATOR_TOKEN"):
        http_table["operator_tokens"] = [
            *http_table.get("operator_tokens", []),
            env["SYNCD_HTTP_OPERATOR_TOKEN"],
        ]
    http = load_dataclass(HttpConfig, http_table, "http")
    notify_table = dict(document.get("notify", {}))
    if env.get("SYNCD_WEBHOOK_URL"):
        notify_table["webhook_url"] = env["SYNCD_WEBHOOK_URL"]
    notify = load_dataclass(NotifyConfig, notify_table, "notify")
    jobs_table = document.get("jobs", {})
    if not isinstance(jobs_table, dict):
        raise ConfigError("jobs", "expected tables named after jobs ([jobs.<Name>])")
    jobs = {name: load_dataclass(JobConfig, t, f"jobs.{name}") for name, t in jobs_table.items()}
    packs = document.get("packs", {})
    if not isinstance(packs, dict) or not all(isinstance(v, dict) for v in packs.values()):
        raise ConfigError("packs", "expected tables named after job packs ([packs.<name>])")
    return Config(
        daemon=daemon,
        scheduler=scheduler,
        ledger=ledger,
        logging=logging_cfg,
        http=http,
        notify=notify,
        jobs=jobs,
        packs=packs,
    )


def with_overrides(config: Config, **daemon_changes: Any) -> Config:
    """The config with some `[daemon]` keys replaced (command-line flags), re-validated."""
    changes = {k: v for k, v in daemon_changes.items() if v is not None}
    if not changes:
        return config
    return dataclasses.replace(config, daemon=dataclasses.replace(config.daemon, **changes))
