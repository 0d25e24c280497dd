"""syncctl from elsewhere, as an operator would: the installed script over TCP with TLS, a
client certificate or a token; a certificate from another CA gets nowhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from syncd.security import hash_token, new_token
from tests.daemon_process import BOUND, daemon_process, e2e_config
from tests.security.certs import material

pytestmark = pytest.mark.e2e

SYNCCTL = Path(sys.executable).with_name("syncctl")


def _syncctl(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    return subprocess.run(
        [str(SYNCCTL), *args],
        capture_output=True,
        text=True,
        env={**environ, **env},
        timeout=BOUND,
        check=False,
    )


def test_remote_syncctl_with_a_client_certificate_or_a_token(short_tmp: Path) -> None:
    """With [tls] client_ca: the deploy certificate (operator) runs a job; a token over the
    same TLS adds its own role; another CA's certificate is not connected (exit 7)."""
    certs = material(short_tmp / "pki")
    viewer = new_token()
    token_file = short_tmp / "viewer.token"
    token_file.write_text(viewer + "\n")
    config = (
        e2e_config(short_tmp, tcp_address='"127.0.0.1:0"')
        + f'[tls]\ncert = "{certs.server.cert}"\nkey = "{certs.server.key}"\n'
        + f'client_ca = "{certs.ca.cert}"\n'
        + '[auth]\ncert_roles = { deploy = "operator" }\n'
        + f'[[auth.tokens]]\nname = "watch"\nrole = "viewer"\nsha256 = "{hash_token(viewer)}"\n'
    )
    with daemon_process(short_tmp / "state", config) as daemon:
        started = daemon.wait_for_event("daemon.started")
        tcp = next(a for a in started["addresses"] if not a.startswith("unix:"))
        tls = ("--address", tcp, "--tls-ca", str(certs.ca.cert))
        mine = ("--cert", str(certs.client.cert), "--key", str(certs.client.key))

        ran = _syncctl("run", "QuickJob", "run", "--wait", *tls, *mine)
        assert ran.returncode == 0, ran.stderr
        history = _syncctl("history", "QuickJob", "--json", *tls, *mine)
        assert json.loads(history.stdout)["runs"][0]["actor"] == "cert CN=deploy"

        watched = _syncctl("pause", *tls, *mine, SYNCD_TOKEN_FILE=str(token_file))
        assert watched.returncode == 11 and "token watch (viewer)" in watched.stderr
        status = _syncctl("status", *tls, *mine, SYNCD_TOKEN_FILE=str(token_file))
        assert status.returncode in (0, 8), status.stderr

        foreign = ("--cert", str(certs.foreign_client.cert), "--key", str(certs.foreign_client.key))
        refused = _syncctl("status", *tls, *foreign)
        assert refused.returncode == 7, refused.stderr
        no_key = _syncctl("status", *tls, "--cert", str(certs.client.cert))
        assert no_key.returncode == 2 and "--key" in no_key.stderr
        assert daemon.stop() == 0
