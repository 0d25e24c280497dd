"""TLS test material made with the `openssl` command: CAs, a server certificate for loopback,
client certificates (good, from another CA, expired). Tests skip visibly without openssl."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

OPENSSL = shutil.which("openssl")


def need_openssl() -> None:
    if OPENSSL is None:
        pytest.skip("the openssl command is not installed: no TLS test material")


def _openssl(*args: str, cwd: Path) -> None:
    assert OPENSSL is not None
    result = subprocess.run(
        [OPENSSL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"openssl {' '.join(args)}: {result.stderr}"


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


def make_ca(directory: Path, name: str) -> Pair:
    need_openssl()
    directory.mkdir(parents=True, exist_ok=True)
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    return Pair(cert, key)


def issue(
    ca: Pair,
    directory: Path,
    name: str,
    *,
    server: bool = False,
    expired: bool = False,
) -> Pair:
    """A certificate for `name` (its CN) signed by `ca`; a server one is valid for loopback."""
    need_openssl()
    key, csr, cert = (directory / f"{name}.{ext}" for ext in ("key", "csr", "pem"))
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}",
        cwd=directory,
    )  # fmt: skip
    ext = directory / f"{name}.ext"
    usage = "serverAuth" if server else "clientAuth"
    lines = ["basicConstraints=CA:FALSE", f"extendedKeyUsage={usage}"]
    if server:
        lines.append("subjectAltName=IP:127.0.0.1,DNS:localhost")
    ext.write_text("\n".join(lines) + "\n")
    if expired:
        _sign_dated(ca, directory, csr, ext, cert)
    else:
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key),
            "-CAcreateserial", "-out", str(cert), "-extfile", str(ext), "-days", "2",
            cwd=directory,
        )  # fmt: skip
    return Pair(cert, key)


def _sign_dated(ca: Pair, directory: Path, csr: Path, ext: Path, cert: Path) -> None:
    """Sign for 2020-01-01..02 (long expired): `openssl ca` takes explicit dates."""
    db = directory / "ca-db"
    db.mkdir(exist_ok=True)
    (db / "index.txt").write_text("")
    (db / "serial").write_text("1000\n")
    config = db / "ca.cnf"
    config.write_text(
        "[ca]\ndefault_ca = test\n[test]\n"
        f"database = {db / 'index.txt'}\nnew_certs_dir = {db}\nserial = {db / 'serial'}\n"
        "default_md = sha256\npolicy = any\n[any]\ncommonName = supplied\n"
    )
    _openssl(
        "ca", "-batch", "-config", str(config), "-cert", str(ca.cert), "-keyfile", str(ca.key),
        "-in", str(csr), "-out", str(cert), "-extfile", str(ext), "-notext",
        "-startdate", "20200101000000Z", "-enddate", "20200102000000Z",
        cwd=directory,
    )  # fmt: skip


@dataclass(frozen=True)
class Material:
    ca: Pair
    server: Pair
    client: Pair  # CN=deploy, signed by ca
    foreign_client: Pair  # CN=deploy, signed by another CA
    expired_client: Pair  # CN=deploy, signed by ca, expired


def material(directory: Path) -> Material:
    ca = make_ca(directory, "test-ca")
    other = make_ca(directory / "other", "other-ca")
    return Material(
        ca=ca,
        server=issue(ca, directory, "localhost", server=True),
        client=issue(ca, directory, "deploy"),
        foreign_client=issue(other, directory / "other", "deploy"),
        expired_client=issue(ca, _made(directory / "expired"), "deploy", expired=True),
    )


def _made(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
