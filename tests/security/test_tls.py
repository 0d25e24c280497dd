"""TLS on the TCP listener: client certificates from the configured CA only, expiry checked,
certificates with a role act as that role; non-loopback addresses need TLS."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from syncd.config import TlsConfig, load_config
from syncd.errors import ConfigError
from syncd_api.channel import TlsFiles, channel_credentials
from syncd_api.v1 import management_pb2 as pb
from tests.daemon_process import daemon_env
from tests.harness import running_daemon
from tests.packs.sample import QUICK
from tests.security.certs import Material, Pair, material
from tests.security.support import VIEWER, audit, bearer, refused, run, stub, token_auth


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Material:
    return material(tmp_path_factory.mktemp("tls"))


def _tls(certs: Material, *, client_ca: bool = True) -> TlsConfig:
    return TlsConfig(
        cert=str(certs.server.cert),
        key=str(certs.server.key),
        client_ca=str(certs.ca.cert) if client_ca else "",
    )


def _channel(address: str, certs: Material, client: Pair | None) -> grpc.aio.Channel:
    files = TlsFiles(
        ca=str(certs.ca.cert),
        cert=str(client.cert) if client else "",
        key=str(client.key) if client else "",
    )
    return grpc.aio.secure_channel(address, channel_credentials(files))


def test_a_client_certificate_with_a_role_acts_as_it_and_is_audited(
    short_tmp: Path, certs: Material
) -> None:
    """CN=deploy maps to operator: it runs a job; the run and the audit name the subject."""

    async def main() -> None:
        async with running_daemon(
            short_tmp / "s",
            [QUICK],
            auth=token_auth(cert_roles={"deploy": "operator"}),
            tls=_tls(certs),
            tcp_address="127.0.0.1:0",
        ) as rt:
            address = rt.daemon.listening.addresses[1]
            async with _channel(address, certs, certs.client) as channel:
                reply = await stub(channel).Invoke(
                    pb.InvokeRequest(bean="QuickJob", operation="run")
                )
                assert reply.run.actor == "cert CN=deploy"
            ran = [e for e in await audit(rt.stub) if e.action == "run"]
            assert [(e.actor, e.role, e.outcome) for e in ran] == [
                ("cert CN=deploy", "operator", "ok")
            ]

    run(main())


@pytest.mark.parametrize("which", ["foreign", "expired", "none"])
def test_a_certificate_from_another_ca_an_expired_one_or_none_fails_the_handshake(
    short_tmp: Path, certs: Material, which: str
) -> None:
    """With [tls] client_ca set, the handshake itself fails: the call never reaches a servicer
    (UNAVAILABLE, as for any transport failure), and nothing runs."""
    client = {"foreign": certs.foreign_client, "expired": certs.expired_client, "none": None}[which]

    async def main() -> None:
        async with running_daemon(
            short_tmp / "s",
            [QUICK],
            auth=token_auth(cert_roles={"deploy": "operator"}),
            tls=_tls(certs),
            tcp_address="127.0.0.1:0",
        ) as rt:
            address = rt.daemon.listening.addresses[1]
            async with _channel(address, certs, client) as channel:
                request = pb.InvokeRequest(bean="QuickJob", operation="run")
                error = await refused(stub(channel).Invoke(request, timeout=5))
                assert error.code() is grpc.StatusCode.UNAVAILABLE, error.details()
            assert rt.daemon.service.active("QuickJob") is None
            assert not [e for e in await audit(rt.stub) if e.action == "run"]

    run(main())


def test_tokens_work_over_tls_without_client_certificates(short_tmp: Path, certs: Material) -> None:
    """Without client_ca, a TLS client brings a token; a plaintext client cannot talk at all."""

    async def main() -> None:
        async with running_daemon(
            short_tmp / "s",
            [QUICK],
            auth=token_auth(),
            tls=_tls(certs, client_ca=False),
            tcp_address="127.0.0.1:0",
        ) as rt:
            address = rt.daemon.listening.addresses[1]
            async with _channel(address, certs, None) as channel:
                status = await stub(channel).GetStatus(
                    pb.GetStatusRequest(), metadata=bearer(VIEWER)
                )
                assert [b.ref.name for b in status.beans] == ["QuickJob"]
                error = await refused(stub(channel).GetStatus(pb.GetStatusRequest()))
                assert error.code() is grpc.StatusCode.UNAUTHENTICATED
            async with grpc.aio.insecure_channel(address) as plain:
                error = await refused(
                    stub(plain).GetStatus(pb.GetStatusRequest(), metadata=bearer(VIEWER), timeout=5)
                )
                assert error.code() is grpc.StatusCode.UNAVAILABLE

    run(main())


def test_listening_beyond_loopback_needs_tls(tmp_path: Path, certs: Material) -> None:
    """A non-loopback tcp_address (or http.address) is a config error naming [tls], and is
    accepted once cert and key are set."""
    path = tmp_path / "c.toml"
    path.write_text('[daemon]\ntcp_address = "0.0.0.0:7601"\n')
    with pytest.raises(ConfigError, match=r"daemon\.tcp_address: .*needs TLS"):
        load_config(path, env={})
    path.write_text('[http]\naddress = "0.0.0.0:8101"\n')
    with pytest.raises(ConfigError, match=r"http\.address: .*needs TLS"):
        load_config(path, env={})
    path.write_text(
        f'[daemon]\ntcp_address = "0.0.0.0:7601"\n[tls]\ncert = "{certs.server.cert}"\n'
        f'key = "{certs.server.key}"\n'
    )
    assert load_config(path, env={}).daemon.tcp_address == "0.0.0.0:7601"
    path.write_text(f'[tls]\ncert = "{certs.server.cert}"\n')
    with pytest.raises(ConfigError, match=r"tls\.cert: set key as well"):
        load_config(path, env={})


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[tls]\ncert = "{missing}"\nkey = "{missing}"\n', "tls.cert: cannot read"),
        ('[auth]\ntoken_file = "{tokens}"\n', "auth.token_file: line 1"),
    ],
    ids=["missing-certificate", "plain-token-in-file"],
)
def test_check_config_refuses_what_serve_would(short_tmp: Path, table: str, message: str) -> None:
    """A certificate that cannot be read, or a token file holding a plain token, is exit 2
    from check-config and serve alike, one line naming the key, never the token."""
    secret = "syncd_plain-token-pasted-by-mistake"
    (short_tmp / "tokens").write_text(f"ci operator {secret}\n")
    config = short_tmp / "c.toml"
    config.write_text(
        table.format(missing=short_tmp / "nope.pem", tokens=short_tmp / "tokens")
        + "[scheduler]\ncatch_up = false\n"
    )
    for command in ("check-config", "serve"):
        done = subprocess.run(
            [sys.executable, "-m", "syncd", "--config", str(config), command],
            env=daemon_env(short_tmp / "state"),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, (command, done.stderr)
        assert message in done.stderr and secret not in done.stderr + done.stdout
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
