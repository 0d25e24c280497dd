"""Replication messages to the repository's values and back, checking what arrives."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from syncd.errors import InvalidArgumentError, bounded
from syncd.replication.bodies import JsonBody, body_json, parse
from syncd.replication.model import (
    STREAMS,
    TYPES,
    ApplyResult,
    Change,
    ChangePage,
    Key,
    RepoInfo,
    Version,
    change_of,
    version_of,
)
from syncd_api.v1 import replication_pb2 as pb

MAX_PAGE = 5000
MAX_ID = 200
MAX_ORIGIN = 64
MAX_BODY = 1 << 20  # one record's JSON body
MAX_HLC = (1 << 63) - 1  # what every backend's BIGINT holds


def version_to_pb(v: Version) -> pb.Version:
    return pb.Version(hlc=v.hlc, origin=v.origin)


def add_changes(into: Any, changes: Iterable[Change]) -> None:
    """Append `changes` to a repeated Change field, each built in place: building messages and
    passing the list to a constructor copies every one (two thirds of a page's encoding). A
    change relayed as it arrived (`Change.wire`) is copied as a message, not encoded again."""
    add, append = into.add, into.append
    for c in changes:
        if c.wire is not None:
            append(c.wire)
        else:
            _fill(add(), c)


def _fill(msg: pb.Change, c: Change) -> None:
    msg.type, msg.id, msg.deleted, msg.out_of_band = c.type, c.id, c.deleted, c.out_of_band
    if not c.deleted:
        msg.body_json = body_json(c.body)
    version = msg.version
    version.hlc, version.origin = c.version.hlc, c.version.origin
    if c.base is not None:
        base = msg.base
        base.hlc, base.origin = c.base.hlc, c.base.origin


def _refuse(operation: str, where: str, problem: str, parameter: str) -> InvalidArgumentError:
    return InvalidArgumentError(operation, f"{where}: {problem}", parameter)


def key_from_pb(operation: str, where: str, type_: str, id_: str) -> Key:
    if type_ not in TYPES:
        raise _refuse(
            operation,
            where,
            f"unknown type {bounded(type_, 40)!r} (one of {', '.join(TYPES)})",
            "type",
        )
    if not id_ or len(id_) > MAX_ID or "\x00" in id_:
        raise _refuse(operation, where, f"id must be 1 to {MAX_ID} characters, no NUL", "id")
    return (type_, id_)


def change_from_pb(operation: str, index: int, msg: pb.Change) -> Change:
    where = f"change {index}"
    type_, id_ = msg.type, msg.id
    if type_ not in TYPES or not id_ or len(id_) > MAX_ID or "\x00" in id_:
        key_from_pb(operation, where, type_, id_)  # raises, naming the problem
    version = msg.version  # each access builds a wrapper: read once
    hlc, origin = version.hlc, version.origin
    if not origin or not msg.HasField("version"):
        raise _refuse(operation, where, "a version with an origin is required", "version")
    has_base = msg.HasField("base")
    if has_base:
        base = msg.base
        base_hlc, base_origin = base.hlc, base.origin
    else:
        base_hlc, base_origin = 0, ""
    if len(origin) > MAX_ORIGIN or "\x00" in origin or "\x00" in base_origin:
        raise _refuse(operation, where, f"origin longer than {MAX_ORIGIN} characters", "version")
    if hlc > MAX_HLC or base_hlc > MAX_HLC:
        raise _refuse(operation, where, "hlc outside 63 bits", "version")
    deleted = msg.deleted
    body: dict[str, Any] = {}
    if not deleted:
        text = msg.body_json
        if len(text) > MAX_BODY:
            raise _refuse(operation, where, "body larger than 1 MiB", "body_json")
        try:
            body = parse(text or "{}")
        except ValueError:
            raise _refuse(operation, where, "body_json is not JSON", "body_json") from None
        if not isinstance(body, dict):
            raise _refuse(operation, where, "body_json is not a JSON object", "body_json")
    return change_of(
        type_,
        id_,
        version_of(hlc, origin),
        deleted,
        body,
        version_of(base_hlc, base_origin) if has_base else None,
        msg.out_of_band,
    )


def changes_from_pb(operation: str, msgs: Iterable[pb.Change]) -> list[Change]:
    return [change_from_pb(operation, i, m) for i, m in enumerate(msgs, start=1)]


def changes_relayed(operation: str, msgs: Sequence[pb.Change]) -> list[Change]:
    """A page's changes for the cycle, which only passes them on (by key and version): the
    same checks of key and version as `change_from_pb`, but each body stays the JSON it came
    as (read if something asks) and the message is kept to be sent on as it is. The
    repository that applies them checks every body as it decodes them."""
    out: list[Change] = []
    for index, msg in enumerate(msgs, start=1):
        version = msg.version
        hlc, origin, type_, id_ = version.hlc, version.origin, msg.type, msg.id
        base = version_of(msg.base.hlc, msg.base.origin) if msg.HasField("base") else None
        if (
            type_ not in TYPES
            or not id_
            or len(id_) > MAX_ID
            or "\x00" in id_
            or not origin
            or len(origin) > MAX_ORIGIN
            or "\x00" in origin
            or hlc > MAX_HLC
            or (base is not None and (base.hlc > MAX_HLC or "\x00" in base.origin))
            or not msg.HasField("version")
        ):
            change_from_pb(operation, index, msg)  # raises, naming the problem
        deleted = msg.deleted
        change = change_of(
            type_,
            id_,
            version_of(hlc, origin),
            deleted,
            {} if deleted else JsonBody(msg.body_json),
            base,
            msg.out_of_band,
        )
        object.__setattr__(change, "wire", msg)
        out.append(change)
    return out


def check_stream(operation: str, stream: str) -> str:
    if stream not in STREAMS:
        raise InvalidArgumentError(
            operation,
            f"unknown stream {bounded(stream, 40)!r} (one of {', '.join(STREAMS)})",
            "stream",
        )
    return stream


def check_cursor(operation: str, value: int, name: str) -> int:
    if value < 0:
        raise InvalidArgumentError(operation, "must be 0 or more", name)
    return value


def check_peer(operation: str, peer_id: str, epoch: str) -> None:
    for name, value in (("peer_id", peer_id), ("peer_epoch", epoch)):
        if not value or len(value) > MAX_ORIGIN or "\x00" in value:
            raise InvalidArgumentError(operation, f"must be 1 to {MAX_ORIGIN} characters", name)


def check_limit(operation: str, limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidArgumentError(operation, f"must be 1 to {MAX_PAGE}, got {limit}", "limit")
    return limit


def info_to_pb(info: RepoInfo) -> pb.RepositoryInfo:
    return pb.RepositoryInfo(
        repo_id=info.repo_id,
        name=info.name,
        epoch=info.epoch,
        cluster_id=info.cluster_id,
        hlc_now=info.hlc_now,
        schema_version=info.schema_version,
        stable_watermark=info.stable_watermark,
        gc_floor=info.gc_floor,
    )


def info_from_pb(msg: pb.RepositoryInfo) -> RepoInfo:
    return RepoInfo(
        repo_id=msg.repo_id,
        name=msg.name,
        epoch=msg.epoch,
        cluster_id=msg.cluster_id,
        hlc_now=msg.hlc_now,
        schema_version=msg.schema_version,
        stable_watermark=msg.stable_watermark,
        gc_floor=msg.gc_floor,
    )


def page_to_pb(page: ChangePage) -> pb.ChangePage:
    msg = pb.ChangePage(next_cursor=page.next_cursor, has_more=page.has_more)
    add_changes(msg.changes, page.changes)
    return msg


def key_to_pb(key: Key) -> pb.RecordKey:
    return pb.RecordKey(type=key[0], id=key[1])


def result_to_pb(result: ApplyResult) -> pb.ApplyChangesResponse:
    return pb.ApplyChangesResponse(
        applied=result.applied,
        stale=[key_to_pb(k) for k in result.stale],
        rejected=[pb.Rejection(key=key_to_pb(r.key), reason=r.reason) for r in result.rejected],
        stored_cursor=result.stored_cursor,
        conflicts=result.conflicts,
    )
