"""The gRPC server: Management, Replication (over an SQL ledger), standard health and
reflection on the control socket."""

from __future__ import annotations

import os
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from syncd.rpc.decoding import management_handlers
from syncd.rpc.replication import REPLICATION_SERVICE, ReplicationServicer, replication_handlers
from syncd.rpc.servicer import ControlPlane, ManagementServicer
from syncd_api.v1 import management_pb2 as pb

MANAGEMENT_SERVICE = pb.DESCRIPTOR.services_by_name["Management"].full_name


class ControlServer:
    """The server and its health servicer, so the daemon can flip health on drain."""

    def __init__(self, plane: ControlPlane, replication: ReplicationServicer | None = None) -> None:
        self.server = grpc.aio.server(
            options=[
                # Followers of long runs keep their stream open; allow their keepalive pings.
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
                # gRPC sets SO_REUSEPORT by default: a second daemon could then share our TCP
                # port and take half the calls. One port, one daemon.
                ("grpc.so_reuseport", 0),
            ]
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

    def bind_unix(self, path: Path) -> str:
        """Bind the control socket; its directory must already be private (0700)."""
        old = os.umask(0o077)  # the socket file itself is created owner-only too
        try:
            self.server.add_insecure_port(f"unix:{path}")
        finally:
            os.umask(old)
        return f"unix:{path}"

    def bind_tcp(self, address: str) -> str:
        port = self.server.add_insecure_port(address)
        host = address.rpartition(":")[0]
        return f"{host}:{port}"

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in ("", MANAGEMENT_SERVICE):
            await self.health.set(service, status)
