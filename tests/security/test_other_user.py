"""A second local user, for real: uid 65534 (nobody) runs curl against the control socket, the
HTTP listener and the TCP listener of a daemon run by this (root) user. Without a role it gets
nothing anywhere; with one, what the role allows. gRPC is spoken by curl over HTTP/2 (an empty
request message is five zero bytes; the answer's grpc-status header says the outcome)."""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import shutil
import stat
from pathlib import Path

import pytest

from syncd.config import HttpConfig
from tests.harness import Running, running_daemon
from tests.packs.sample import QUICK
from tests.security.support import run, token_auth

NOBODY = 65534
CURL = shutil.which("curl")
_EMPTY_MESSAGE = b"\x00\x00\x00\x00\x00"


def _skip_unless_possible() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root, to run a client as another uid (65534)")
    if CURL is None:
        pytest.skip("needs the curl command (with HTTP/2) to act as the other user")
    try:
        pwd.getpwuid(NOBODY)
    except KeyError:
        pytest.skip("no user with uid 65534 on this machine")


async def _as_nobody(*args: str, stdin: bytes = b"") -> tuple[int, str]:
    """curl's exit status and what it printed (headers, then -w output), run as uid 65534."""
    assert CURL is not None
    proc = await asyncio.create_subprocess_exec(
        CURL, "-sS", "--max-time", "30", *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        user=NOBODY,
        group=NOBODY,
        extra_groups=[],
        env={"PATH": "/usr/bin:/bin", "HOME": "/"},
    )  # fmt: skip
    out, _ = await proc.communicate(stdin)
    return proc.returncode or 0, out.decode(errors="replace")


async def _grpc(method: str, *, unix: str = "", tcp: str = "") -> tuple[int, str | None]:
    """curl's exit status and the grpc-status of a call (None when there was no answer)."""
    where = ["--unix-socket", unix, "http://localhost"] if unix else [f"http://{tcp}"]
    code, out = await _as_nobody(
        "--http2-prior-knowledge", "-X", "POST",
        "-H", "content-type: application/grpc", "-H", "te: trailers",
        "--data-binary", "@-", "-D", "-", "-o", "/dev/null",
        f"{where[-1]}/syncd.v1.Management/{method}", *where[:-1],
        stdin=_EMPTY_MESSAGE,
    )  # fmt: skip
    found = re.search(r"^grpc-status: *(\d+)", out, re.MULTILINE)
    if found is None and code != 7:  # 7: curl could not connect (asserted by the caller)
        raise AssertionError(f"{method}: curl exit {code}, no grpc-status in {out[-500:]!r}")
    return code, found.group(1) if found else None


async def _http(method: str, url: str) -> str:
    _, out = await _as_nobody("-X", method, "-o", "/dev/null", "-w", "%{http_code}", url)
    return out.strip()[-3:]


def _reachable_base(short_tmp: Path) -> Path:
    # mkdtemp made it 0700 for root; the other user must at least traverse it.
    short_tmp.chmod(0o711)
    return short_tmp / "s"


UNAUTHENTICATED, PERMISSION_DENIED, OK = "16", "7", "0"


def test_another_local_user_without_a_role_gets_nothing_on_any_listener(short_tmp: Path) -> None:
    """No [auth] unix_roles: the socket's directory stays 0700 (uid 65534 cannot connect);
    HTTP answers 401 to reads and writes; TCP answers UNAUTHENTICATED."""
    _skip_unless_possible()

    async def main() -> None:
        async with running_daemon(
            _reachable_base(short_tmp),
            [QUICK],
            auth=token_auth(),
            tcp_address="127.0.0.1:0",
            http=HttpConfig(address="127.0.0.1:0"),
        ) as rt:
            await _check_nothing(rt)

    async def _check_nothing(rt: Running) -> None:
        socket_file = rt.address.removeprefix("unix:")
        assert stat.S_IMODE(os.stat(Path(socket_file).parent).st_mode) == 0o700
        code, status = await _grpc("GetStatus", unix=socket_file)
        assert (code, status) == (7, None)  # curl: could not connect (permission denied)
        tcp = rt.daemon.listening.addresses[1]
        for method in ("GetStatus", "RunAll", "Pause"):
            assert (await _grpc(method, tcp=tcp))[1] == UNAUTHENTICATED
        base = f"{rt.daemon.listening.http}/sync/"
        assert await _http("GET", base + "api/v1/jobs") == "401"
        assert await _http("GET", base + "api/jobs/status") == "401"
        assert await _http("POST", base + "api/v1/jobs/QuickJob/run") == "401"
        assert await _http("PUT", base + "api/job/quickJob") == "401"
        assert await _http("GET", rt.daemon.listening.http + "/metrics") == "401"
        assert await _http("GET", rt.daemon.listening.http + "/healthz") == "200"
        assert rt.daemon.service.active("QuickJob") is None
        assert not await rt.daemon.recorder.holds()

    run(main())


def test_a_rule_for_others_opens_the_socket_but_an_ungranted_user_is_still_refused(
    short_tmp: Path,
) -> None:
    """A unix_roles rule for another group makes the socket reachable; uid 65534, not in
    it, is refused (PERMISSION_DENIED) by the kernel-reported uid, and the refusal is audited."""
    _skip_unless_possible()

    async def main() -> None:
        async with running_daemon(
            _reachable_base(short_tmp),
            [QUICK],
            auth=token_auth(unix_roles={"group:root": "viewer"}),
        ) as rt:
            socket_file = rt.address.removeprefix("unix:")
            assert stat.S_IMODE(os.stat(Path(socket_file).parent).st_mode) == 0o711
            for method in ("GetStatus", "RunAll", "Pause", "ListAudit"):
                assert (await _grpc(method, unix=socket_file))[1] == PERMISSION_DENIED
            assert rt.daemon.service.active("QuickJob") is None
            entries = await rt.daemon.recorder.audit_entries(None, 100)
            denied = {(e.actor, e.action, e.outcome) for e in entries}
            assert ("uid 65534 (nobody)", "run", "PERMISSION_DENIED") in denied
            assert ("uid 65534 (nobody)", "pause", "PERMISSION_DENIED") in denied

    run(main())


def test_a_granted_user_gets_exactly_its_role_over_the_socket(short_tmp: Path) -> None:
    """unix_roles = {nobody = "viewer"}: uid 65534 reads the status but may not pause."""
    _skip_unless_possible()
    name = pwd.getpwuid(NOBODY).pw_name

    async def main() -> None:
        async with running_daemon(
            _reachable_base(short_tmp), [QUICK], auth=token_auth(unix_roles={name: "viewer"})
        ) as rt:
            socket_file = rt.address.removeprefix("unix:")
            assert (await _grpc("GetStatus", unix=socket_file))[1] == OK
            assert (await _grpc("Pause", unix=socket_file))[1] == PERMISSION_DENIED
            assert not await rt.daemon.recorder.holds()

    run(main())
