"""Peer identity on the control socket, from the kernel (SO_PEERCRED), with stock grpcio.

grpcio's server does not hand out the accepted socket, and the peer it reports for a unix
connection carries no uid. So the daemon accepts on the public socket itself, reads each
connection's SO_PEERCRED, and relays the bytes to the gRPC server on an internal socket in a
private (0700) directory — connecting from a socket bound to an abstract address that names
the peer's uid, gid and pid behind a per-daemon secret. gRPC reports that address as the call's
peer (`unix-abstract:<name>`), and `parse_relayed_peer` reads the identity back. Only the
daemon's own user can reach the internal socket, and nobody can guess the secret, so a relayed
peer cannot be forged.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

import structlog

log = structlog.get_logger("syncd.security")

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_HIGH_WATER = 256 * 1024


@dataclass(frozen=True, slots=True)
class RelayedPeer:
    uid: int
    gid: int
    pid: int


def parse_relayed_peer(peer: str, secret: str) -> RelayedPeer | None:
    """The identity in a gRPC peer string made by this daemon's relay; None for any other."""
    prefix = f"unix-abstract:syncd-{secret}-"
    if not peer.startswith(prefix):
        return None
    parts = peer.removeprefix(prefix).split("-")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        return None
    return RelayedPeer(uid=int(parts[0]), gid=int(parts[1]), pid=int(parts[2]))


class _Half(asyncio.Protocol):
    """One side of a relayed connection; writes what it reads to its partner."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.partner: _Half | None = None
        self._early: list[bytes] = []  # read before the partner was there

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=_HIGH_WATER)

    def data_received(self, data: bytes) -> None:
        partner = self.partner
        if partner is not None and partner.transport is not None:
            partner.transport.write(data)
            return
        self._early.append(data)
        if self.transport is not None:
            self.transport.pause_reading()

    def pair(self, partner: _Half) -> None:
        """Join `partner`; hand it what was read meanwhile, and read on."""
        self.partner, partner.partner = partner, self
        for half in (self, partner):
            other = half.partner
            if other is not None and other.transport is not None:
                for data in half._early:
                    other.transport.write(data)
            half._early.clear()
            if half.transport is not None and not half.transport.is_closing():
                half.transport.resume_reading()

    def eof_received(self) -> bool:
        partner = self.partner
        if (
            partner is not None
            and partner.transport is not None
            and partner.transport.can_write_eof()
        ):
            partner.transport.write_eof()
        return True  # keep our own write side open for the partner's answer

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.partner is not None and self.partner.transport is not None:
            self.partner.transport.close()

    # Flow control: while our writes back up, stop reading from the partner.
    def pause_writing(self) -> None:
        if self.partner is not None and self.partner.transport is not None:
            self.partner.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.partner is not None and self.partner.transport is not None:
            self.partner.transport.resume_reading()


class _Front(_Half):
    """A client's connection to the public socket."""

    def __init__(self, relay: PeerRelay) -> None:
        super().__init__()
        self._relay = relay

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert isinstance(transport, asyncio.Transport)
        self._relay.fronts.add(self)
        transport.pause_reading()  # until the back connection is up
        sock = transport.get_extra_info("socket")
        pid, uid, gid = _UCRED.unpack(
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
        )
        self._relay.connect_back(self, uid, gid, pid)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._relay.fronts.discard(self)

    def close(self) -> None:
        for half in (self, self.partner):
            if half is not None and half.transport is not None:
                half.transport.abort()


class PeerRelay:
    """The public control socket, relayed to the gRPC server's internal one."""

    def __init__(self, public: Path, internal: Path) -> None:
        self.public = public
        self.internal = internal
        self.secret = secrets.token_hex(8)
        self._numbers = itertools.count(1)
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.fronts: set[_Front] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(lambda: _Front(self), str(self.public))

    def connect_back(self, front: _Front, uid: int, gid: int, pid: int) -> None:
        task = asyncio.get_running_loop().create_task(self._connect(front, uid, gid, pid))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, front: _Front, uid: int, gid: int, pid: int) -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(f"\0syncd-{self.secret}-{uid}-{gid}-{pid}-{next(self._numbers)}")
            sock.setblocking(False)
            await loop.sock_connect(sock, str(self.internal))
            _, back = await loop.create_unix_connection(_Half, sock=sock)
        except OSError as exc:
            sock.close()
            log.warning("control.relay_failed", uid=uid, pid=pid, error=str(exc))
            if front.transport is not None:
                front.transport.close()
            return
        if front.transport is None:  # the client left meanwhile
            if back.transport is not None:
                back.transport.close()
            return
        front.pair(back)

    async def stop(self) -> None:
        """Stop accepting and cut every relayed connection (the gRPC server is stopping)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        for front in list(self.fronts):
            front.close()
        self.fronts.clear()
