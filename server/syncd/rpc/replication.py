"""The syncd.v1.Replication servicer: decode, call the repository on the ledger's threads
(batches on its one writer), encode."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc
import structlog

from syncd.errors import BundleError, InvalidArgumentError
from syncd.ledger.recorder import LedgerRecorder
from syncd.replication.bundle import Imported, import_bundle
from syncd.replication.model import (
    ACKED_BY_PARENT,
    FROM_PARENT,
    JOB,
    ApplyResult,
    Change,
    Key,
    Rejected,
)
from syncd.replication.store import SqlRepository
from syncd.rpc import replconvert as cv
from syncd.rpc.decoding import service_handlers
from syncd.rpc.errors import mapped_errors
from syncd_api.v1 import replication_pb2 as pb

log = structlog.get_logger("syncd.rpc")

SERVICE = pb.DESCRIPTOR.services_by_name["Replication"]
REPLICATION_SERVICE = SERVICE.full_name
Context = grpc.aio.ServicerContext[Any, Any]
_T = TypeVar("_T")


class ReplicationServicer:
    """Serves one repository (the daemon's state store)."""

    def __init__(
        self,
        repo: SqlRepository,
        recorder: LedgerRecorder,
        *,
        on_jobdefs: Callable[[], None] | None = None,
        on_parent_ack: Callable[[], None] | None = None,
    ) -> None:
        self._repo = repo
        self._recorder = recorder
        # Called after a batch from the parent carrying job definitions is committed.
        self._on_jobdefs = on_jobdefs
        # Called after the parent acknowledged what it pulled (tombstones may go).
        self._on_parent_ack = on_parent_ack

    async def _answer(self, context: Context, method: str, work: Callable[[], Any]) -> Any:
        async with mapped_errors(context, method):
            return await work()
        raise AssertionError("unreachable")  # abort raises

    async def GetInfo(self, request: pb.GetInfoRequest, context: Context) -> pb.RepositoryInfo:
        async def work() -> pb.RepositoryInfo:
            reply = cv.info_to_pb(await self._recorder.call_reader(self._repo.info))
            reply.applies_page = True
            return reply

        return await self._answer(context, "GetInfo", work)  # type: ignore[no-any-return]

    async def GetChanges(self, request: pb.GetChangesRequest, context: Context) -> pb.ChangePage:
        async def work() -> pb.ChangePage:
            since = cv.check_cursor("GetChanges", request.since_cursor, "since_cursor")
            limit = cv.check_limit("GetChanges", request.limit)
            up_to = request.up_to_cursor if request.HasField("up_to_cursor") else None
            if request.min_hlc > cv.MAX_HLC:  # an unsigned field; no store holds it
                raise InvalidArgumentError("GetChanges", "hlc outside 63 bits", "min_hlc")
            if len(request.skip_via) > 130:
                raise InvalidArgumentError("GetChanges", "longer than 130 characters", "skip_via")
            # Read and encoded on a reader thread: a page of thousands of changes would hold
            # the event loop (and every control-plane call behind it) for tens of ms.
            encoded: pb.ChangePage = await self._recorder.call_reader(
                lambda: cv.page_to_pb(
                    self._repo.get_changes(
                        since,
                        limit,
                        up_to=up_to,
                        min_hlc=request.min_hlc,
                        skip_via=request.skip_via,
                    )
                )
            )
            return encoded

        return await self._answer(context, "GetChanges", work)  # type: ignore[no-any-return]

    async def ApplyChanges(
        self, request: pb.ApplyChangesRequest, context: Context
    ) -> pb.ApplyChangesResponse:
        async def work() -> pb.ApplyChangesResponse:
            op = "ApplyChanges"
            cv.check_peer(op, request.source_id, request.source_epoch)
            stream = cv.check_stream(op, request.stream)
            start = cv.check_cursor(op, request.from_cursor, "from_cursor")
            end = cv.check_cursor(op, request.to_cursor, "to_cursor")
            if end < start:
                raise InvalidArgumentError(op, "must not be below from_cursor", "to_cursor")
            # A page passed on as it was read (field 8), or the changes one by one (field 7).
            if request.HasField("page"):
                if request.changes:
                    raise InvalidArgumentError(op, "set either changes or page, not both", "page")
                msgs: Any = request.page.changes
            else:
                msgs = request.changes
            # Decoded off the event loop, as a page is encoded (GetChanges).
            changes = await self._recorder.call_reader(cv.changes_from_pb, op, msgs)
            result: ApplyResult = await self._recorder.call_writer(
                lambda: self._repo.apply_changes(
                    source_id=request.source_id,
                    source_epoch=request.source_epoch,
                    stream=stream,
                    from_cursor=start,
                    to_cursor=end,
                    changes=changes,
                )
            )
            if (
                self._on_jobdefs is not None
                and stream == FROM_PARENT
                and any(c.type == JOB for c in changes)
            ):
                self._on_jobdefs()
            return cv.result_to_pb(result)

        return await self._answer(context, "ApplyChanges", work)  # type: ignore[no-any-return]

    def _keys(self, op: str, keys: Any) -> list[Key]:
        return [cv.key_from_pb(op, f"key {i}", k.type, k.id) for i, k in enumerate(keys, start=1)]

    async def GetRecords(
        self, request: pb.GetRecordsRequest, context: Context
    ) -> pb.GetRecordsResponse:
        async def work() -> pb.GetRecordsResponse:
            keys = self._keys("GetRecords", request.keys)
            found: list[Change] = await self._recorder.call_reader(self._repo.get_records, keys)
            reply = pb.GetRecordsResponse()
            cv.add_changes(reply.records, found)
            return reply

        return await self._answer(context, "GetRecords", work)  # type: ignore[no-any-return]

    def _bits(self, op: str, bits: int) -> int:
        if not 0 <= bits <= 16:
            raise InvalidArgumentError(op, f"must be 0 to 16, got {bits}", "prefix_bits")
        return bits

    async def GetDigest(
        self, request: pb.GetDigestRequest, context: Context
    ) -> pb.GetDigestResponse:
        async def work() -> pb.GetDigestResponse:
            bits = self._bits("GetDigest", request.prefix_bits)
            buckets = await self._recorder.call_reader(self._repo.digest, bits)
            return pb.GetDigestResponse(buckets=buckets)

        return await self._answer(context, "GetDigest", work)  # type: ignore[no-any-return]

    async def ListVersions(
        self, request: pb.ListVersionsRequest, context: Context
    ) -> pb.ListVersionsResponse:
        async def work() -> pb.ListVersionsResponse:
            bits = self._bits("ListVersions", request.prefix_bits)
            if not 0 <= request.bucket < (1 << bits):
                raise InvalidArgumentError(
                    "ListVersions", "outside 0 .. 2**prefix_bits - 1", "bucket"
                )
            found = await self._recorder.call_reader(self._repo.list_versions, request.bucket, bits)
            reply = pb.ListVersionsResponse()
            cv.add_changes(reply.records, found)
            return reply

        return await self._answer(context, "ListVersions", work)  # type: ignore[no-any-return]

    async def GetCursor(self, request: pb.CursorRequest, context: Context) -> pb.CursorResponse:
        async def work() -> pb.CursorResponse:
            cv.check_peer("GetCursor", request.peer_id, request.peer_epoch)
            stream = cv.check_stream("GetCursor", request.stream)
            value = await self._recorder.call_reader(
                self._repo.cursor, request.peer_id, request.peer_epoch, stream
            )
            return pb.CursorResponse() if value is None else pb.CursorResponse(cursor=value)

        return await self._answer(context, "GetCursor", work)  # type: ignore[no-any-return]

    async def AckCursor(self, request: pb.CursorRequest, context: Context) -> pb.CursorResponse:
        async def work() -> pb.CursorResponse:
            cv.check_peer("AckCursor", request.peer_id, request.peer_epoch)
            stream = cv.check_stream("AckCursor", request.stream)
            cursor = cv.check_cursor("AckCursor", request.cursor, "cursor")
            value = await self._recorder.call_writer(
                self._repo.ack_cursor, request.peer_id, request.peer_epoch, stream, cursor
            )
            if self._on_parent_ack is not None and stream == ACKED_BY_PARENT:
                self._on_parent_ack()
            return pb.CursorResponse(cursor=value)

        return await self._answer(context, "AckCursor", work)  # type: ignore[no-any-return]

    async def ImportBundle(
        self, request: pb.ImportBundleRequest, context: Context
    ) -> pb.ImportBundleResponse:
        async def work() -> pb.ImportBundleResponse:
            path = request.path
            if not path.startswith("/") or len(path) > 4096 or "\x00" in path:
                raise InvalidArgumentError(
                    "ImportBundle", "expected an absolute path of at most 4096 bytes", "path"
                )
            # Only a regular file: a FIFO or a device would hold the one writer.
            if not await asyncio.to_thread(_regular_file, Path(path)):
                raise BundleError(Path(path).name, "no such file (or not a regular file)")
            done: Imported = await self._recorder.call_writer(import_bundle, self._repo, Path(path))
            log.info(
                "replication.bundle_imported",
                source=done.manifest.get("source_name"),
                stream=done.manifest.get("stream"),
                applied=done.result.applied,
                repeat=done.repeat,
            )
            if done.manifest.get("stream") == FROM_PARENT:
                # As after a sync's batch and acknowledgement: definitions may have arrived,
                # and the bundle's receipt may let tombstones go.
                for hook in (self._on_jobdefs, self._on_parent_ack):
                    if hook is not None:
                        hook()
            return pb.ImportBundleResponse(
                applied=done.result.applied,
                repeat=done.repeat,
                stale=len(done.result.stale),
                rejected=len(done.result.rejected),
                record_count=int(done.manifest.get("record_count", 0)),
                source_name=str(done.manifest.get("source_name", ""))[:200],
            )

        return await self._answer(context, "ImportBundle", work)  # type: ignore[no-any-return]

    async def GetPingbacks(
        self, request: pb.PingbacksRequest, context: Context
    ) -> pb.PingbacksResponse:
        async def work() -> pb.PingbacksResponse:
            cv.check_peer("GetPingbacks", request.child_id, "-")
            found = await self._recorder.call_reader(
                lambda: self._repo.pingbacks(
                    request.child_id, with_graveyard=request.with_graveyard
                )
            )
            reply = pb.PingbacksResponse()
            cv.add_changes(reply.records, found)
            return reply

        return await self._answer(context, "GetPingbacks", work)  # type: ignore[no-any-return]

    async def ClearPingbacks(
        self, request: pb.ClearPingbacksRequest, context: Context
    ) -> pb.ClearPingbacksResponse:
        async def work() -> pb.ClearPingbacksResponse:
            cv.check_peer("ClearPingbacks", request.child_id, "-")
            keys = self._keys("ClearPingbacks", request.keys)
            await self._recorder.call_writer(self._repo.clear_pingbacks, request.child_id, keys)
            return pb.ClearPingbacksResponse()

        return await self._answer(context, "ClearPingbacks", work)  # type: ignore[no-any-return]


def replication_handlers(servicer: ReplicationServicer) -> grpc.GenericRpcHandler[Any, Any]:
    return service_handlers(SERVICE, servicer)


__all__ = ["REPLICATION_SERVICE", "Rejected", "ReplicationServicer", "replication_handlers"]


def _regular_file(path: Path) -> bool:
    """`path.is_file()`, false also where the path cannot be looked up at all (a name longer
    than the file system takes raises rather than answering)."""
    try:
        return path.is_file()
    except OSError:
        return False
