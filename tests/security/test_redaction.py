"""Tokens never show: not in the daemon's log file or stdout, not in error messages, not in
the audit trail — tried with a real daemon process, the installed syncctl, and HTTP."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from syncd.security import hash_token, new_token
from tests.daemon_process import BOUND, daemon_process, e2e_config

pytestmark = pytest.mark.e2e

SYNCCTL = Path(sys.executable).with_name("syncctl")


def _config(gate_dir: Path, operator: str, viewer: str) -> str:
    return (
        e2e_config(gate_dir, tcp_address='"127.0.0.1:0"', log_level='"debug"')
        + f'[[auth.tokens]]\nname = "ci"\nrole = "operator"\nsha256 = "{hash_token(operator)}"\n'
        + f'[[auth.tokens]]\nname = "watch"\nrole = "viewer"\nsha256 = "{hash_token(viewer)}"\n'
    )


def _syncctl(state: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    environ["SYNCD_STATE_DIR"] = str(state)
    return subprocess.run(
        [str(SYNCCTL), *args],
        capture_output=True,
        text=True,
        env={**environ, **env},
        timeout=BOUND,
        check=False,
    )


def _http_error(url: str, token: str) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=BOUND) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_tokens_are_redacted_from_logs_errors_and_the_audit_trail(short_tmp: Path) -> None:
    """Good, wrong and viewer tokens over TCP (flag, file, environment) and HTTP, and the
    console's login link: none of them appears in the log file, the daemon's stdout, any
    error message or the audit trail — while the token names do."""
    operator, viewer, wrong = new_token(), new_token(), new_token()
    token_file = short_tmp / "ci.token"
    token_file.write_text(operator + "\n")
    state = short_tmp / "state"
    with daemon_process(state, _config(short_tmp, operator, viewer)) as daemon:
        started = daemon.wait_for_event("daemon.started")
        tcp = next(a for a in started["addresses"] if not a.startswith("unix:"))
        remote = ("--address", tcp)

        ran = _syncctl(state, "run", "QuickJob", "run", *remote, "--token-file", str(token_file))
        assert ran.returncode == 0, ran.stderr
        flag = _syncctl(state, "status", *remote, "--token", viewer)
        assert flag.returncode in (0, 8), flag.stderr
        assert "process list" in flag.stderr  # --token is warned about
        denied = _syncctl(state, "pause", *remote, SYNCD_TOKEN=viewer)
        assert denied.returncode == 11 and "viewer" in denied.stderr
        unknown = _syncctl(state, "status", *remote, SYNCD_TOKEN=wrong)
        assert unknown.returncode == 10, unknown.stderr
        bare = _syncctl(state, "status", *remote)
        assert bare.returncode == 10, bare.stderr

        http = started["http"]
        status, body = _http_error(f"{http}/sync/api/v1/jobs", wrong)
        assert status == 401
        status, body = _http_error(f"{http}/metrics", wrong)
        assert status == 401

        audit = _syncctl(state, "audit", "--json")  # the socket's owner: admin
        assert audit.returncode == 0, audit.stderr
        entries = json.loads(audit.stdout)["entries"]
        assert {"token ci", "token watch"} <= {e["actor"] for e in entries}
        assert any(e["outcome"] == "UNAUTHENTICATED" for e in entries)
        assert daemon.stop() == 0
        stderr = daemon.stderr_text()
    login = re.search(r"\?token=(\S+)", stderr)
    assert login is not None, stderr  # `syncd serve` printed the console's login link
    log_text = (state / "logs" / "syncd.log").read_text()
    stdout_text = json.dumps(daemon.lines)
    assert "token ci" in log_text  # the runs' actor: the name, not the secret
    secrets_ = {"operator": operator, "viewer": viewer, "wrong": wrong, "login": login.group(1)}
    for what, secret in secrets_.items():
        for where, text in (
            ("log file", log_text),
            ("stdout", stdout_text),
            ("audit", audit.stdout),
            ("syncctl stderr", ran.stderr + flag.stderr + denied.stderr + unknown.stderr),
            ("http body", body),
        ):
            assert secret not in text, f"the {what} token is in the {where}"
