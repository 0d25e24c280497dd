"""Daemons with credentials for the security tests: tokens by role, a TCP listener."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import grpc
import pytest

from syncd.config import AuthConfig, TokenConfig
from syncd.security import hash_token, new_token
from syncd_api.v1 import management_pb2 as pb
from syncd_api.v1 import management_pb2_grpc as pb_grpc

VIEWER = new_token()
OPERATOR = new_token()
ADMIN = new_token()


def token_auth(**more: object) -> AuthConfig:
    return AuthConfig(
        tokens=(
            TokenConfig(name="watcher", role="viewer", sha256=hash_token(VIEWER)),
            TokenConfig(name="ci", role="operator", sha256=hash_token(OPERATOR)),
            TokenConfig(name="root-ops", role="admin", sha256=hash_token(ADMIN)),
        ),
        **more,  # type: ignore[arg-type]
    )


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def run(coro: Awaitable[None], bound: float = 60.0) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(bound):
            await coro

    asyncio.run(bounded())


async def refused(call: Awaitable[object]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


def stub(channel: grpc.aio.Channel) -> pb_grpc.ManagementAsyncStub:
    return pb_grpc.ManagementStub(channel)


async def audit(stub: pb_grpc.ManagementAsyncStub) -> list[pb.AuditEntry]:
    """The audit trail, oldest first (read as the socket's owner: admin)."""
    reply = await stub.ListAudit(pb.ListAuditRequest())
    return list(reversed(reply.entries))
