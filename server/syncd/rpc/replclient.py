"""The daemon-to-daemon client: one channel factory, and a `Peer` over the Replication service.

`open_channel` is the one place a syncd connects to another: a bearer token (sent as
`authorization: Bearer …` metadata on every call) and optional TLS (CA, client certificate
and key) are configured per peer. Transport failures become `PeerUnavailableError` (the cycle
retries them); a cursor gap comes back as `CursorGapError`; any other refusal is a
`ReplicationError` that is not retried.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import grpc
from google.protobuf.message import DecodeError

from syncd.errors import CursorGapError, PeerUnavailableError, ReplicationError
from syncd.replication.model import ApplyResult, Change, ChangePage, Key, Rejected, RepoInfo
from syncd.rpc import replconvert as cv
from syncd.rpc.errors import GAP_STORED_KEY
from syncd_api.channel import CredentialError, TlsFiles, token_metadata
from syncd_api.channel import open_channel as shared_open_channel
from syncd_api.v1 import replication_pb2 as pb
from syncd_api.v1 import replication_pb2_grpc as pb_grpc

MAX_MESSAGE = 64 * 1024 * 1024  # pages of a few thousand records; gRPC's default is 4 MiB
_RETRIED = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerCredentials:
    """How to reach one peer: a bearer token, and TLS files when its URL is grpcs://."""

    token: str = ""
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


def _target(url: str) -> tuple[str, bool]:
    """(gRPC target, TLS?) from `grpc://host:port`, `grpcs://host:port`, `unix:/path` or
    `host:port`."""
    url = url.strip()
    for scheme, tls in (("grpcs://", True), ("grpc://", False)):
        if url.startswith(scheme):
            return url[len(scheme) :].rstrip("/"), tls
    return url, False


def open_channel(
    url: str, credentials: PeerCredentials | None = None
) -> tuple[grpc.Channel, tuple[tuple[str, str], ...]]:
    """A channel to the repository at `url`, and the metadata each call sends: syncctl's own
    connection helper (`syncd_api.channel`), so TLS and tokens work the same for both."""
    creds = credentials or PeerCredentials()
    target, tls = _target(url)
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE),
        ("grpc.max_send_message_length", MAX_MESSAGE),
    ]
    files = None
    if tls:
        try:
            files = TlsFiles(
                ca=str(creds.ca_file or ""),
                cert=str(creds.cert_file or ""),
                key=str(creds.key_file or ""),
            )
        except CredentialError as exc:
            raise ReplicationError(f"peer {url[:200]}: {exc}") from None
    try:
        channel = shared_open_channel(target, tls=files, options=options)
    except CredentialError as exc:
        raise ReplicationError(f"peer {url[:200]}: {exc}") from None
    return channel, token_metadata(creds.token or None)


def _gap_stored(exc: Any) -> int | None:
    for key, value in exc.trailing_metadata() or ():
        if key == GAP_STORED_KEY:
            text = value.decode() if isinstance(value, bytes) else str(value)
            return int(text) if text.isdigit() else None
    return None


class RelayedChanges(Sequence[Change]):
    """A page's changes as GetChanges answered them, for the cycle, which mostly passes them
    on: the page's bytes are kept, and sent on as they are when the page goes whole to a
    repository that said it applies a page so (`GrpcPeer.apply_changes`), which checks every
    change as it decodes them. The `Change` values (`changes_relayed`, with its checks) are
    built only if something reads them (echo suppression, the pull's record of what a child
    sent)."""

    __slots__ = ("_decoded", "_msgs", "raw")

    def __init__(self, raw: bytes, msgs: Sequence[pb.Change]) -> None:
        self.raw = raw
        self._msgs = msgs
        self._decoded: list[Change] | None = None

    def _changes(self) -> list[Change]:
        decoded = self._decoded
        if decoded is None:
            decoded = self._decoded = cv.changes_relayed("GetChanges", self._msgs)
        return decoded

    def __len__(self) -> int:
        return len(self._msgs)

    @overload
    def __getitem__(self, index: int) -> Change: ...
    @overload
    def __getitem__(self, index: slice) -> list[Change]: ...
    def __getitem__(self, index: int | slice) -> Change | list[Change]:
        return self._changes()[index]

    def __iter__(self) -> Iterator[Change]:
        return iter(self._changes())


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_PAGE_TAG = b"\x42"  # ApplyChangesRequest.page: field 8, length-delimited


class GrpcPeer:
    """A repository reached over gRPC; every call has a deadline."""

    def __init__(
        self,
        name: str,
        url: str,
        credentials: PeerCredentials | None = None,
        *,
        timeout: float = 30.0,
    ) -> None:
        self.name = name
        self._channel, self._metadata = open_channel(url, credentials)
        self._stub = pb_grpc.ReplicationStub(self._channel)
        # A page read as bytes (parsed here once) and sent on as bytes: `RelayedChanges`.
        service = f"/{pb.DESCRIPTOR.services_by_name['Replication'].full_name}"
        self._get_changes_raw = self._channel.unary_unary(
            f"{service}/GetChanges",
            request_serializer=pb.GetChangesRequest.SerializeToString,
            response_deserializer=None,
        )
        self._apply_raw = self._channel.unary_unary(
            f"{service}/ApplyChanges",
            request_serializer=None,
            response_deserializer=pb.ApplyChangesResponse.FromString,
        )
        self._timeout = timeout
        # Whether the repository said (GetInfo) it applies a page sent as bytes (field 8).
        self._applies_page = False

    def close(self) -> None:
        self._channel.close()

    def _call(
        self, method: Callable[..., Any], request: Any, *, from_cursor: int = 0, stream: str = ""
    ) -> Any:
        try:
            return method(request, timeout=self._timeout, metadata=self._metadata)
        except grpc.RpcError as exc:
            code: grpc.StatusCode = exc.code()
            details = str(exc.details() or "")
            if code in _RETRIED:
                raise PeerUnavailableError(self.name, f"{code.name}: {details}") from None
            stored = _gap_stored(exc)
            if code is grpc.StatusCode.FAILED_PRECONDITION and stored is not None:
                raise CursorGapError(stream, stored, from_cursor) from None
            raise ReplicationError(f"{self.name}: {code.name}: {details}") from None

    def info(self) -> RepoInfo:
        reply: pb.RepositoryInfo = self._call(self._stub.GetInfo, pb.GetInfoRequest())
        self._applies_page = reply.applies_page
        return cv.info_from_pb(reply)

    def get_changes(
        self,
        since: int,
        limit: int,
        *,
        up_to: int | None = None,
        min_hlc: int = 0,
        skip_via: str = "",
    ) -> ChangePage:
        request = pb.GetChangesRequest(
            since_cursor=since, limit=limit, min_hlc=min_hlc, skip_via=skip_via
        )
        if up_to is not None:
            request.up_to_cursor = up_to
        raw: bytes = self._call(self._get_changes_raw, request)
        try:
            reply = pb.ChangePage.FromString(raw)
        except DecodeError as exc:
            raise ReplicationError(
                f"{self.name}: GetChanges: the reply is not a valid ChangePage: {str(exc)[:200]}"
            ) from None
        # The cycle sends a page on to the other repository as it came (RelayedChanges).
        return ChangePage(RelayedChanges(raw, reply.changes), reply.next_cursor, reply.has_more)

    def apply_changes(
        self,
        *,
        source_id: str,
        source_epoch: str,
        stream: str,
        from_cursor: int,
        to_cursor: int,
        changes: Sequence[Change],
    ) -> ApplyResult:
        request = pb.ApplyChangesRequest(
            source_id=source_id,
            source_epoch=source_epoch,
            stream=stream,
            from_cursor=from_cursor,
            to_cursor=to_cursor,
        )
        reply: pb.ApplyChangesResponse
        if isinstance(changes, RelayedChanges) and self._applies_page:
            # A page sent whole: its bytes as field 8, after the header's fields.
            raw = changes.raw
            data = request.SerializeToString() + _PAGE_TAG + _varint(len(raw)) + raw
            reply = self._call(self._apply_raw, data, from_cursor=from_cursor, stream=stream)
        else:
            cv.add_changes(request.changes, changes)
            reply = self._call(
                self._stub.ApplyChanges, request, from_cursor=from_cursor, stream=stream
            )
        return ApplyResult(
            applied=reply.applied,
            stale=[(k.type, k.id) for k in reply.stale],
            rejected=[Rejected((r.key.type, r.key.id), r.reason) for r in reply.rejected],
            stored_cursor=reply.stored_cursor,
            conflicts=reply.conflicts,
        )

    def cursor(self, peer_id: str, peer_epoch: str, stream: str) -> int | None:
        request = pb.CursorRequest(peer_id=peer_id, peer_epoch=peer_epoch, stream=stream)
        reply: pb.CursorResponse = self._call(self._stub.GetCursor, request)
        return reply.cursor if reply.HasField("cursor") else None

    def ack_cursor(self, peer_id: str, peer_epoch: str, stream: str, cursor: int) -> int:
        request = pb.CursorRequest(
            peer_id=peer_id, peer_epoch=peer_epoch, stream=stream, cursor=cursor
        )
        reply: pb.CursorResponse = self._call(self._stub.AckCursor, request)
        return reply.cursor

    def pingbacks(self, child_id: str, *, with_graveyard: bool = False) -> list[Change]:
        request = pb.PingbacksRequest(child_id=child_id, with_graveyard=with_graveyard)
        reply: pb.PingbacksResponse = self._call(self._stub.GetPingbacks, request)
        return cv.changes_from_pb("GetPingbacks", reply.records)

    def clear_pingbacks(self, child_id: str, keys: Iterable[Key]) -> None:
        request = pb.ClearPingbacksRequest(child_id=child_id, keys=[cv.key_to_pb(k) for k in keys])
        self._call(self._stub.ClearPingbacks, request)

    def get_records(self, keys: Iterable[Key]) -> list[Change]:
        request = pb.GetRecordsRequest(keys=[cv.key_to_pb(k) for k in keys])
        reply: pb.GetRecordsResponse = self._call(self._stub.GetRecords, request)
        return cv.changes_from_pb("GetRecords", reply.records)

    def digest(self, bits: int = 8) -> dict[int, str]:
        reply: pb.GetDigestResponse = self._call(
            self._stub.GetDigest, pb.GetDigestRequest(prefix_bits=bits)
        )
        return dict(reply.buckets)

    def import_bundle(self, path: str) -> pb.ImportBundleResponse:
        """Have the daemon at this address apply a bundle file on its host."""
        reply: pb.ImportBundleResponse = self._call(
            self._stub.ImportBundle, pb.ImportBundleRequest(path=path)
        )
        return reply

    def list_versions(self, bucket: int, bits: int = 8) -> list[Change]:
        request = pb.ListVersionsRequest(bucket=bucket, prefix_bits=bits)
        reply: pb.ListVersionsResponse = self._call(self._stub.ListVersions, request)
        return cv.changes_from_pb("ListVersions", reply.records)
