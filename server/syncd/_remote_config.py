"""The settings for what reaches this daemon and what it reaches: listen addresses (loopback
unless TLS), tokens and roles, the TLS material, and the replication peers.

Public through `syncd.config`; kept apart so that file stays one screenful per concept.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Annotated

from msgspec import Meta, field

from syncd.configvalues import Duration, DurationAtLeast1s, Settings, bounded, shown, shown_key
from syncd.errors import ConfigError


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def split_host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ValueError(f"expected HOST:PORT, got {shown(address)}")
    return host, int(port)


def require_host_port(key: str, address: str) -> str:
    """The host of a HOST:PORT address, or ConfigError naming `key`."""
    try:
        host, _ = split_host_port(address)
    except ValueError as exc:
        raise ConfigError(key, str(exc)) from None
    return host


def require_loopback(key: str, address: str) -> None:
    """HOST:PORT on a loopback host, or ConfigError: beyond loopback needs `[tls]`."""
    host = require_host_port(key, address)
    if not _is_loopback(host):
        raise ConfigError(
            key,
            f"{bounded(host)} is not a loopback address; listening beyond loopback needs TLS"
            " (set [tls] cert and key)",
        )


ROLE_NAMES = ("viewer", "operator", "admin")
_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")


def _check_role(key: str, role: str) -> None:
    if role not in ROLE_NAMES:
        raise ConfigError(key, f"expected viewer, operator or admin, got {shown(role)}")


class TokenConfig(Settings, frozen=True):
    """One `[[auth.tokens]]` entry: a bearer token, stored as its hash (`syncd token new`)."""

    name: Annotated[str, Meta(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.@-]+$")]
    role: str
    sha256: str

    def __post_init__(self) -> None:
        _check_role("role", self.role)
        if not _SHA256.fullmatch(self.sha256):
            raise ConfigError(
                "sha256", "expected sha256:<64 lower-case hex digits> (see `syncd token hash`)"
            )


class AuthConfig(Settings, frozen=True):
    """The `[auth]` table: who gets which role. The socket's owner is always admin."""

    tokens: tuple[TokenConfig, ...] = ()
    # A file of more tokens, one "name role sha256:…" per line (# comments); re-read on reload.
    token_file: str = ""
    # Other local users on the control socket: {"alice" = "operator", "group:ops" = "viewer"}.
    unix_roles: Mapping[str, str] = field(default_factory=dict)
    # Client certificates (with [tls] client_ca): subject common name -> role.
    cert_roles: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for table, key in ((self.unix_roles, "unix_roles"), (self.cert_roles, "cert_roles")):
            for name, role in table.items():
                _check_role(f"{key}.{shown_key(name)}", role)
        names = [t.name for t in self.tokens]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ConfigError("tokens", f"token names must be unique: {', '.join(dupes)}")


class TlsConfig(Settings, frozen=True):
    """The `[tls]` table: the TCP and HTTP listeners' certificate; re-read on SIGHUP."""

    cert: str = ""  # PEM certificate chain
    key: str = ""  # PEM private key
    # PEM CA bundle: when set, TCP clients must present a certificate it signed.
    client_ca: str = ""

    def __post_init__(self) -> None:
        if bool(self.cert) != bool(self.key):
            given, missing = ("cert", "key") if self.cert else ("key", "cert")
            raise ConfigError(given, f"set {missing} as well")
        if self.client_ca and not self.cert:
            raise ConfigError("client_ca", "client certificates need cert and key as well")

    @property
    def enabled(self) -> bool:
        return bool(self.cert)


class PeerConfig(Settings, frozen=True):
    """One `[replication.peers.<name>]` table: how this daemon reaches that repository."""

    # A file holding the bearer token sent as `authorization: Bearer …` (preferred to token).
    token_file: str = ""
    token: str = ""
    # TLS (for a grpcs:// URL): the CA that signed the peer's certificate, and a client pair.
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""


class ReplicationConfig(Settings, frozen=True):
    """The `[replication]` table: this repository's name in its cluster, and the arguments a
    scheduled SynchronizeJobData run uses."""

    # This repository's name (unique in its cluster) and its cluster's id; empty: unnamed.
    name: str = ""
    cluster_id: str = ""
    # A child's change stamped further ahead of the parent's clock than this is refused.
    max_drift: Duration = 300.0
    page_size: Annotated[int, Meta(ge=1, le=5000)] = 1000
    parallel: Annotated[int, Meta(ge=1, le=64)] = 4  # children synchronised at once
    timeout: DurationAtLeast1s = 30.0  # the deadline of each call to another repository
    retries: Annotated[int, Meta(ge=1, le=20)] = 4  # attempts of a call that found no peer
    # With no cursor yet, a child's last_sync_time less this bounds the first exchange.
    safety_margin: Duration = 86400.0
    # synchronizeJobData's defaults (a scheduled run has no other arguments): the parent's
    # URL and name, and one row per child: "name connected url [last_sync_time]".
    parent_url: str = ""
    parent_name: str = ""
    children: tuple[str, ...] = ()
    # Folder ExportJobData writes bundles to and ImportJobData reads them from by default.
    bundle_dir: str = ""
    # A tombstone every peer has received is purged once it is older than this (§3.7).
    tombstone_retention: Duration = 30 * 86400.0
    # Every N-th SynchronizeJobData cycle compares each child's digest with the parent's and
    # repairs what differs (a day of 15-minute cycles); 0: only for a restored child.
    anti_entropy_every: Annotated[int, Meta(ge=0, le=1_000_000)] = 96
    peers: Mapping[str, PeerConfig] = field(default_factory=dict)
