"""Opening a channel to a syncd control plane, for `syncctl` and for daemons that call other
daemons (replication). Hand-written, beside the generated code: both `syncctl` and `syncd`
may import `syncd_api`, and neither may import the other.

A unix socket needs no credential (the daemon reads the caller's uid from the kernel); TCP
takes TLS (`ca`, and `cert`/`key` for a client certificate) and/or a bearer token, sent as
`authorization` metadata on each call (`token_metadata`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import grpc

TOKEN_ENV = "SYNCD_TOKEN"
TOKEN_FILE_ENV = "SYNCD_TOKEN_FILE"


class CredentialError(ValueError):
    """A token or TLS file that cannot be used; the message names the file, never a secret."""


class TlsFiles:
    """The client's TLS files. A plain class, not a dataclass: a cold `syncctl status` imports
    this module, and the dataclasses module costs it ~1.5 ms of CPU for nothing else."""

    __slots__ = ("ca", "cert", "key")

    def __init__(self, ca: str = "", cert: str = "", key: str = "") -> None:
        if bool(cert) != bool(key):
            raise CredentialError("a client certificate needs both --cert and --key")
        self.ca = ca  # PEM bundle to verify the daemon with; "" with cert: the system's roots
        self.cert = cert  # client certificate (PEM), for a daemon with [tls] client_ca
        self.key = key


def read_token(token: str | None, token_file: str | None, environ: Mapping[str, str]) -> str | None:
    """The bearer token: given, else read from `token_file`, else $SYNCD_TOKEN, else the file
    named by $SYNCD_TOKEN_FILE; None when there is none."""
    if token:
        return token.strip()
    path = token_file or environ.get(TOKEN_FILE_ENV)
    if not path and environ.get(TOKEN_ENV):
        return environ[TOKEN_ENV].strip()
    if not path:
        return None
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as fh:
            text = fh.read(4096).strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialError(f"cannot read the token file {path}: {exc}") from None
    if not text or len(text.split()) != 1:
        raise CredentialError(f"the token file {path} should hold one token on one line")
    return text


def token_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


def _read(path: str, what: str) -> bytes:
    try:
        with open(os.path.expanduser(path), "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise CredentialError(f"cannot read the {what} {path}: {exc.strerror}") from None


def channel_credentials(tls: TlsFiles) -> grpc.ChannelCredentials:
    import grpc

    return grpc.ssl_channel_credentials(
        root_certificates=_read(tls.ca, "CA file") if tls.ca else None,
        private_key=_read(tls.key, "key file") if tls.key else None,
        certificate_chain=_read(tls.cert, "certificate file") if tls.cert else None,
    )


def open_channel(
    target: str,
    *,
    tls: TlsFiles | None = None,
    options: Sequence[tuple[str, Any]] = (),
    aio: bool = False,
) -> Any:
    """A channel (`grpc.Channel`, or `grpc.aio.Channel` with `aio`) to `target`: TLS when
    `tls` is given, else plaintext (a unix socket, or loopback)."""
    import grpc

    opts = [("grpc.enable_http_proxy", 0), *options]
    if tls is None:
        if aio:
            return grpc.aio.insecure_channel(target, options=opts)
        return grpc.insecure_channel(target, options=opts)
    credentials = channel_credentials(tls)
    if aio:
        return grpc.aio.secure_channel(target, credentials, options=opts)
    return grpc.secure_channel(target, credentials, options=opts)
