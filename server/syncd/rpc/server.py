"""The gRPC server: Management, Replication (over an SQL ledger), standard health and reflection
on the control socket (behind the peer relay, see `syncd.security`) and, optionally, a TCP
listener (TLS when configured). Every call passes the security interceptor (`syncd.rpc.guard`)."""

from __future__ import annotations

import os
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from syncd.clock import Clock
from syncd.ledger.recorder import LedgerRecorder
from syncd.rpc.decoding import management_handlers
from syncd.rpc.guard import SecurityInterceptor
from syncd.rpc.replication import REPLICATION_SERVICE, ReplicationServicer, replication_handlers
from syncd.rpc.servicer import ControlPlane, ManagementServicer
from syncd.security import Guard, PeerRelay, ServerTls
from syncd_api.v1 import management_pb2 as pb

MANAGEMENT_SERVICE = pb.DESCRIPTOR.services_by_name["Management"].full_name


class ControlServer:
    """The server and its health servicer, so the daemon can flip health on drain."""

    def __init__(
        self,
        plane: ControlPlane,
        replication: ReplicationServicer | None = None,
        *,
        guard: Guard,
        recorder: LedgerRecorder,
        clock: Clock,
        tls: ServerTls | None = None,
    ) -> None:
        self.relay: PeerRelay | None = None
        self._tls = tls
        self._tls_generation = 0
        self.server = grpc.aio.server(
            interceptors=[
                SecurityInterceptor(
                    guard, recorder, clock, lambda: self.relay.secret if self.relay else None
                )
            ],
            options=[
                # Followers of long runs keep their stream open; allow their keepalive pings.
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
                # gRPC sets SO_REUSEPORT by default: a second daemon could then share our TCP
                # port and take half the calls. One port, one daemon.
                ("grpc.so_reuseport", 0),
            ],
        )
        self.health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        # Not the generated add_…_to_server: these handlers refuse undecodable requests
        # with INVALID_ARGUMENT (see syncd.rpc.decoding).
        self.server.add_generic_rpc_handlers((management_handlers(ManagementServicer(plane)),))
        services = [MANAGEMENT_SERVICE]
        if replication is not None:  # the repository other daemons synchronise with
            self.server.add_generic_rpc_handlers((replication_handlers(replication),))
            services.append(REPLICATION_SERVICE)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (
                *services,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            self.server,
        )

    def bind_unix(self, path: Path, internal: Path) -> str:
        """Serve gRPC on `internal` (in a private 0700 directory); the relay will accept on
        `path`, the public control socket, once `start_relay` runs."""
        old = os.umask(0o077)  # the socket file itself is created owner-only too
        try:
            self.server.add_insecure_port(f"unix:{internal}")
        finally:
            os.umask(old)
        self.relay = PeerRelay(path, internal)
        return f"unix:{path}"

    async def start_relay(self) -> None:
        if self.relay is not None:
            old = os.umask(0o077)
            try:
                await self.relay.start()
            finally:
                os.umask(old)

    def bind_tcp(self, address: str) -> str:
        """A TCP listener: TLS when `[tls]` is set, else plain (the config allows that on
        loopback only); either way every call needs a credential."""
        if self._tls is None:
            port = self.server.add_insecure_port(address)
        else:
            port = self.server.add_secure_port(address, self._credentials(self._tls))
        host = address.rpartition(":")[0]
        return f"{host}:{port}"

    def _credentials(self, tls: ServerTls) -> grpc.ServerCredentials:
        def configuration() -> grpc.ServerCertificateConfiguration:
            material = tls.material()
            self._tls_generation = material.generation
            return grpc.ssl_server_certificate_configuration(
                [(material.key, material.cert)], root_certificates=material.client_ca
            )

        def fetch() -> grpc.ServerCertificateConfiguration | None:
            # Asked at each handshake: a reload (SIGHUP) shows here as a new generation.
            if tls.material().generation == self._tls_generation:
                return None
            return configuration()

        return grpc.dynamic_ssl_server_credentials(
            configuration(),
            fetch,  # type: ignore[arg-type]  # grpc-stubs: None ("no change") is allowed
            require_client_authentication=tls.requires_client_cert,
        )

    async def stop_relay(self) -> None:
        if self.relay is not None:
            await self.relay.stop()

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in ("", MANAGEMENT_SERVICE):
            await self.health.set(service, status)
