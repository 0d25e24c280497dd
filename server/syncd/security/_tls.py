"""The TLS material of the TCP and HTTP listeners, read from `[tls]` and re-read on SIGHUP.

The gRPC edge asks `material()` at each handshake (it builds its credentials from it); the HTTP
listener's `ssl.SSLContext` is loaded again in place, which applies to new connections. A reload
that finds a file missing or malformed keeps the material in use and says why.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import structlog

from syncd.config import TlsConfig
from syncd.errors import ConfigError, bounded

log = structlog.get_logger("syncd.security")


@dataclass(frozen=True, slots=True)
class TlsMaterial:
    cert: bytes
    key: bytes
    client_ca: bytes | None
    generation: int  # grows with each reload that changed something


def _read(key: str, path: str) -> bytes:
    try:
        data = Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise ConfigError(f"tls.{key}", f"cannot read {bounded(path)}: {exc.strerror}") from None
    if b"-----BEGIN " not in data:
        raise ConfigError(f"tls.{key}", f"{bounded(path)} holds no PEM data")
    return data


class ServerTls:
    """The certificate, key and client CA in force."""

    def __init__(self, config: TlsConfig) -> None:
        self._config = config
        self._material = self._load(config, 1)
        self._context: ssl.SSLContext | None = None

    @staticmethod
    def _load(config: TlsConfig, generation: int) -> TlsMaterial:
        cert, key = _read("cert", config.cert), _read("key", config.key)
        ca = _read("client_ca", config.client_ca) if config.client_ca else None
        # Let the ssl module judge the pair now: a mismatched key is a config error, not a
        # handshake failure for every client later.
        probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            probe.load_cert_chain(config.cert, config.key)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError("tls.cert", f"certificate and key do not load: {exc}") from None
        return TlsMaterial(cert, key, ca, generation)

    @property
    def requires_client_cert(self) -> bool:
        return self._material.client_ca is not None

    def material(self) -> TlsMaterial:
        return self._material

    def reload(self, config: TlsConfig | None = None) -> bool:
        """Re-read the files (of `config`, when the configuration changed); True if they
        changed. On a bad file the old material stays and the error is logged."""
        config = config or self._config
        try:
            fresh = self._load(config, self._material.generation + 1)
        except ConfigError as exc:
            log.error("tls.reload_failed", error=str(exc))
            return False
        old = self._material
        if (fresh.cert, fresh.key, fresh.client_ca) == (old.cert, old.key, old.client_ca):
            return False
        self._config, self._material = config, fresh
        if self._context is not None:
            self._context.load_cert_chain(config.cert, config.key)
        log.info("tls.reloaded", cert=config.cert, generation=fresh.generation)
        return True

    def ssl_context(self) -> ssl.SSLContext:
        """The HTTP listener's server context (no client certificates: browsers log in)."""
        if self._context is None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(self._config.cert, self._config.key)
            self._context = context
        return self._context
