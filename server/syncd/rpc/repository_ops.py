"""The Management RPCs over the repository: notes, sync status and other repositories' runs.
Decode, call `syncd.replication.operator` on the ledger's threads, encode."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from syncd.errors import InvalidArgumentError
from syncd.ledger.recorder import LedgerRecorder
from syncd.ledger.sql import SqlLedger
from syncd.replication import operator
from syncd.rpc import convert
from syncd_api.v1 import management_pb2 as pb


def _note(view: operator.NoteView, names: dict[str, str]) -> pb.Note:
    return pb.Note(
        note_id=view.note_id,
        subject=view.subject,
        text=view.text,
        author=view.author,
        at=convert.timestamp(view.at),
        repository=names.get(view.origin, view.origin),
    )


class RepositoryOps:
    """Serves the repository's operator RPCs for one daemon."""

    def __init__(
        self,
        ledger: SqlLedger,
        recorder: LedgerRecorder,
        sync_report: Callable[[], dict[str, Any] | None],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        refused_definitions: Callable[[], Mapping[str, str]] = dict,
    ) -> None:
        self._ledger = ledger
        self._repo = ledger.repository
        self._recorder = recorder
        self._sync_report = sync_report
        self._now = now
        self._refused = refused_definitions

    async def add_note(self, request: pb.AddNoteRequest, actor: str) -> pb.Note:
        write = functools.partial(
            operator.add_note, self._repo, request.subject, request.text, actor, self._now()
        )
        view = await self._recorder.call_writer(write)
        return _note(view, await self._recorder.call_reader(self._repo.repo_names))

    async def list_notes(self, request: pb.ListNotesRequest) -> pb.ListNotesResponse:
        if not 0 <= request.limit <= 10_000:
            raise InvalidArgumentError("ListNotes", "must be 1-10000", "limit")
        limit = request.limit or 50
        views = await self._recorder.call_reader(
            operator.list_notes, self._repo, request.subject, limit
        )
        names = await self._recorder.call_reader(self._repo.repo_names)
        return pb.ListNotesResponse(notes=[_note(v, names) for v in views])

    async def sync_status(self) -> pb.GetSyncStatusResponse:
        info = await self._recorder.call_reader(self._repo.info)
        cursors = await self._recorder.call_reader(operator.cursor_views, self._repo)
        pending = await self._recorder.call_reader(self._repo.pending_pingbacks)
        reply = pb.GetSyncStatusResponse(
            repository=info.name,
            repo_id=info.repo_id,
            epoch=info.epoch,
            cluster_id=info.cluster_id,
            stable_watermark=info.stable_watermark,
            pending_pingbacks=pending,
            last_status=-1,
            refused_definitions=[
                pb.RefusedDefinition(job=job, problem=problem)
                for job, problem in sorted(self._refused().items())
            ],
            cursors=[
                pb.PeerCursor(
                    peer_name=c.peer_name,
                    peer_id=c.peer_id,
                    peer_epoch=c.peer_epoch,
                    stream=c.stream,
                    cursor=c.cursor,
                    updated_at=convert.timestamp(c.updated_at),
                    lag=c.lag,
                )
                for c in cursors
            ],
        )
        report = self._sync_report()
        if report is not None:
            reply.last_status = int(report.get("status", -1))
            try:
                finished = datetime.fromisoformat(str(report["finished_at"]))
                reply.last_finished_at.CopyFrom(convert.timestamp(finished))
            except (KeyError, ValueError):
                pass
            fields = set(pb.SyncRow.DESCRIPTOR.fields_by_name)
            for row in report.get("rows", []):
                if isinstance(row, dict):
                    reply.last_sync.append(
                        pb.SyncRow(**{k: v for k, v in row.items() if k in fields})
                    )
        return reply

    async def history(self, request: pb.RepositoryHistoryRequest) -> pb.HistoryResponse:
        if not 0 <= request.limit <= 10_000:
            raise InvalidArgumentError("RepositoryHistory", "must be 1-10000", "limit")
        if len(request.repository) > 200 or len(request.bean) > 200:
            raise InvalidArgumentError(
                "RepositoryHistory", "longer than 200 characters", "repository"
            )
        repo_id = await self._recorder.call_reader(
            operator.repository_id, self._repo, request.repository
        )
        records = await self._recorder.call_reader(
            self._ledger.history, request.bean or None, request.limit or 20, repo_id or None
        )
        names = await self._recorder.call_reader(self._repo.repo_names)
        runs = []
        for record in records:
            info = convert.run_info(record)
            info.repository = names.get(record.origin, record.origin)
            runs.append(info)
        return pb.HistoryResponse(runs=runs)
