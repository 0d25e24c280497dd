"""SIGHUP re-reads the TLS certificate: new connections to the TCP and HTTPS listeners get
the new one, with no restart (a real daemon process)."""

from __future__ import annotations

import json
import shutil
import signal
import ssl
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.daemon_process import BOUND, daemon_env, daemon_process, e2e_config
from tests.security.certs import issue, make_ca

pytestmark = pytest.mark.e2e


def _served(address: str) -> str:
    host, _, port = address.rpartition(":")
    return ssl.get_server_certificate((host, int(port)), timeout=10)


def _same(pem_a: str, pem_b: str) -> bool:
    return ssl.PEM_cert_to_DER_cert(pem_a) == ssl.PEM_cert_to_DER_cert(pem_b)


def test_sighup_reloads_the_certificate_for_new_connections(short_tmp: Path) -> None:
    """Before: the first certificate on TCP and HTTPS; after the files change and SIGHUP (a
    `tls.reloaded` line): the second one on both. The reload is in the audit trail."""
    ca = make_ca(short_tmp / "pki", "test-ca")
    first = issue(ca, short_tmp / "pki", "localhost", server=True)
    second = issue(ca, _dir(short_tmp / "pki" / "next"), "localhost", server=True)
    cert, key = short_tmp / "syncd.pem", short_tmp / "syncd.key"
    shutil.copy(first.cert, cert)
    shutil.copy(first.key, key)
    config = e2e_config(short_tmp, tcp_address='"127.0.0.1:0"') + (
        f'[tls]\ncert = "{cert}"\nkey = "{key}"\n'
    )
    with daemon_process(short_tmp / "state", config) as daemon:
        started = daemon.wait_for_event("daemon.started")
        tcp = next(a for a in started["addresses"] if not a.startswith("unix:"))
        https = urlsplit(started["http"])
        assert https.scheme == "https"
        web = f"{https.hostname}:{https.port}"
        assert _same(_served(tcp), first.cert.read_text())
        assert _same(_served(web), first.cert.read_text())

        shutil.copy(second.cert, cert)
        shutil.copy(second.key, key)
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_for_event("tls.reloaded")
        assert _same(_served(tcp), second.cert.read_text())
        assert _same(_served(web), second.cert.read_text())
        daemon.wait_for_event("daemon.hangup_audited", outcome="ok")
        audit = subprocess.run(
            [str(Path(sys.executable).with_name("syncctl")), "audit", "--json"],
            capture_output=True,
            text=True,
            env={**daemon_env(short_tmp / "state")},
            timeout=BOUND,
            check=True,
        )
        reloads = [e for e in json.loads(audit.stdout)["entries"] if e["action"] == "reload"]
        assert [(e["actor"], e["outcome"]) for e in reloads] == [("signal SIGHUP", "ok")]
        assert daemon.stop() == 0


def _dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
