"""A page passed on as the bytes it was read as (ApplyChangesRequest field 8) is applied as the
same changes sent one by one (field 7) are; a request is one or the other, and a bad change
in a page is refused as in field 7."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from syncd.config import ReplicationConfig
from syncd.replication.model import FROM_CHILD, NOTE, REPO, ApplyResult, Change, ChangePage
from syncd.rpc import replconvert as cv
from syncd.rpc.replclient import GrpcPeer, RelayedChanges
from syncd_api.v1 import replication_pb2 as rpb
from syncd_api.v1 import replication_pb2_grpc as rpb_grpc
from tests.harness import Served, daemon_in_thread

ORIGIN = "elsewhere"


@contextlib.contextmanager
def repositories(tmp: Path, names: list[str]) -> Iterator[list[Served]]:
    with contextlib.ExitStack() as stack:
        yield [
            stack.enter_context(
                daemon_in_thread(tmp / name, replication=ReplicationConfig(name=name))
            )
            for name in names
        ]


def _change(n: int, *, deleted: bool = False) -> rpb.Change:
    return rpb.Change(
        type=NOTE,
        id=f"n{n}",
        version=rpb.Version(hlc=1000 + n, origin=ORIGIN),
        deleted=deleted,
        body_json="" if deleted else json.dumps({"text": f"note {n}", "n": n}),
    )


def _seed(address: str) -> None:
    """Five notes (one a tombstone) written on a repository, as another one's batch."""
    with grpc.insecure_channel(address) as channel:
        stub = rpb_grpc.ReplicationStub(channel)
        stub.ApplyChanges(
            rpb.ApplyChangesRequest(
                source_id=ORIGIN,
                source_epoch="e",
                stream=FROM_CHILD,
                to_cursor=1,
                changes=[_change(n, deleted=n == 4) for n in range(1, 6)],
            )
        )


def _apply(
    peer: GrpcPeer, source: str, start: int, page: ChangePage, changes: object
) -> ApplyResult:
    return peer.apply_changes(
        source_id=source,
        source_epoch="e1",
        stream=FROM_CHILD,
        from_cursor=start,
        to_cursor=page.next_cursor,
        changes=changes,  # type: ignore[arg-type]
    )


def test_a_page_relayed_as_bytes_is_applied_as_its_changes_one_by_one(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[int] = []
    relayed = cv.changes_relayed

    def counted(operation: str, msgs: object) -> list[Change]:
        decoded.append(1)
        return relayed(operation, msgs)  # type: ignore[arg-type]

    monkeypatch.setattr(cv, "changes_relayed", counted)
    with repositories(short_tmp, ["source", "raw", "each"]) as (source, raw, each):
        _seed(source.address)
        peers = [GrpcPeer(s.daemon.config.replication.name, s.address) for s in (source, raw, each)]
        reader, by_page, by_change = peers
        # Only a repository that says it applies a page as bytes is sent one so (an older one
        # skips the unknown field): `by_change` is never asked.
        assert by_page.info().name == "raw"
        try:
            start, results = 0, []
            while True:
                page = reader.get_changes(start, 3)
                assert isinstance(page.changes, RelayedChanges)
                assert 1 <= len(page.changes) <= 3  # the notes, and the source's name card
                whole = _apply(by_page, "src", start, page, page.changes)
                assert not decoded, "a page sent whole is not decoded"
                one_by_one = _apply(by_change, "src", start, page, page.changes)
                assert decoded
                decoded.clear()
                results.append((whole, one_by_one))
                start = page.next_cursor
                if not page.has_more:
                    break
            assert len(results) == 2
            for whole, one_by_one in results:
                assert isinstance(whole, ApplyResult)
                assert whole == one_by_one
                assert whole.applied > 0
            # The notes, and the source's name card (each target's digest differs by its own).
            keys = [(NOTE, f"n{n}") for n in range(1, 6)] + [(REPO, reader.info().repo_id)]
            stored = by_page.get_records(keys)
            assert len(stored) == 6
            assert [(c.key, c.version, c.deleted, c.body) for c in stored] == [
                (c.key, c.version, c.deleted, c.body) for c in by_change.get_records(keys)
            ]
            assert by_page.cursor("src", "e1", FROM_CHILD) == start
            assert by_change.cursor("src", "e1", FROM_CHILD) == start
        finally:
            for peer in peers:
                peer.close()


def _refusal(stub: rpb_grpc.ReplicationStub, request: rpb.ApplyChangesRequest) -> str:
    with pytest.raises(grpc.RpcError) as refused:
        stub.ApplyChanges(request)
    error: grpc.Call = refused.value  # type: ignore[assignment]
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    return str(error.details())


def test_a_request_is_changes_or_a_page_and_a_bad_change_in_a_page_is_named(
    short_tmp: Path,
) -> None:
    with (
        repositories(short_tmp, ["target"]) as (target,),
        grpc.insecure_channel(target.address) as channel,
    ):
        stub = rpb_grpc.ReplicationStub(channel)

        def request(**fields: Any) -> rpb.ApplyChangesRequest:
            return rpb.ApplyChangesRequest(
                source_id="src", source_epoch="e1", stream=FROM_CHILD, to_cursor=1, **fields
            )

        both = request(changes=[_change(1)], page=rpb.ChangePage(changes=[_change(2)]))
        assert "'page'" in _refusal(stub, both)
        bad = [
            rpb.Change(type="widget", id="1", version=rpb.Version(hlc=1, origin="x")),
            rpb.Change(type=NOTE, id="1", version=rpb.Version(hlc=1, origin="x"), body_json="{"),
            rpb.Change(type=NOTE, id="", version=rpb.Version(hlc=1, origin="x")),
        ]
        for change in bad:
            as_field_7 = request(changes=[_change(1), change])
            in_page = request(page=rpb.ChangePage(changes=[_change(1), change]))
            details = _refusal(stub, in_page)
            assert "change 2" in details
            assert details == _refusal(stub, as_field_7)
        # Nothing was applied by any refused request.
        assert (
            stub.GetCursor(rpb.CursorRequest(peer_id="src", peer_epoch="e1", stream=FROM_CHILD))
            == rpb.CursorResponse()
        )
