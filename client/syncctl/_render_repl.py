"""Output for the repository commands: notes and `sync status`. Same conventions as
`_render`: a table on a TTY, tab-separated columns when piped, one JSON document with --json.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO, Any

from syncctl._render import Mode, when, when_json, write_json, write_rows
from syncd_api.v1 import management_pb2 as pb


def render_notes(out: IO[str], mode: Mode, notes: Sequence[pb.Note], now: float) -> None:
    """Newest first. TSV columns: at, subject, author, repository, text, note id."""
    if mode is Mode.JSON:
        write_json(
            out,
            {
                "notes": [
                    {
                        "note_id": n.note_id,
                        "subject": n.subject,
                        "text": n.text,
                        "author": n.author,
                        "at": when_json(n, "at"),
                        "repository": n.repository,
                    }
                    for n in notes
                ]
            },
        )
        return
    if mode is Mode.TABLE and not notes:
        out.write("No notes.\n")
        return
    rows = [
        (when(n, "at", mode=mode, now=now), n.subject, n.author, n.repository, n.text, n.note_id)
        for n in notes
    ]
    write_rows(out, mode, ("AT", "SUBJECT", "AUTHOR", "REPOSITORY", "NOTE", "ID"), rows)


def _row_dict(row: pb.SyncRow) -> dict[str, Any]:
    return {f.name: getattr(row, f.name) for f in pb.SyncRow.DESCRIPTOR.fields}


def render_sync_status(
    out: IO[str], mode: Mode, reply: pb.GetSyncStatusResponse, now: float
) -> None:
    """The peers' cursors (TSV: `cursor` lines) and the last cycle's table (TSV: `child`
    lines: child, result, pulled, pushed, conflicts, last sync, error, repaired by
    anti-entropy; `refused` lines: a parent's job definition this child refused, and why)."""
    if mode is Mode.JSON:
        write_json(
            out,
            {
                "repository": reply.repository,
                "repo_id": reply.repo_id,
                "epoch": reply.epoch,
                "cluster_id": reply.cluster_id,
                "stable_watermark": reply.stable_watermark,
                "pending_pingbacks": reply.pending_pingbacks,
                "cursors": [
                    {
                        "peer": c.peer_name,
                        "peer_id": c.peer_id,
                        "peer_epoch": c.peer_epoch,
                        "stream": c.stream,
                        "cursor": c.cursor,
                        "updated_at": when_json(c, "updated_at"),
                        "lag": c.lag,
                    }
                    for c in reply.cursors
                ],
                "last_status": None if reply.last_status < 0 else reply.last_status,
                "last_finished_at": when_json(reply, "last_finished_at"),
                "last_sync": [_row_dict(r) for r in reply.last_sync],
                "refused_definitions": [
                    {"job": d.job, "problem": d.problem} for d in reply.refused_definitions
                ],
            },
        )
        return
    cursors = [
        (
            c.peer_name,
            c.stream,
            str(c.cursor),
            str(c.lag),
            when(c, "updated_at", mode=mode, now=now),
        )
        for c in reply.cursors
    ]
    children = [
        (
            r.child_repository,
            r.result,
            str(r.pulled),
            str(r.pushed),
            str(r.conflicts),
            r.last_sync_time,
            r.error or r.warning,
            str(r.repaired),
        )
        for r in reply.last_sync
    ]
    refused = [(d.job, d.problem) for d in reply.refused_definitions]
    if mode is Mode.TSV:
        write_rows(out, mode, (), [("cursor", *c) for c in cursors])
        write_rows(out, mode, (), [("child", *c) for c in children])
        write_rows(out, mode, (), [("refused", *d) for d in refused])
        return
    out.write(
        f"Repository {reply.repository or reply.repo_id} (cluster {reply.cluster_id or '-'}),"
        f" {reply.stable_watermark} changes logged, {reply.pending_pingbacks} ping-backs pending\n"
    )
    if cursors:
        write_rows(out, mode, ("PEER", "STREAM", "CURSOR", "LAG", "UPDATED"), cursors)
    else:
        out.write("No peer has synchronised with this repository yet.\n")
    for job, problem in refused:
        out.write(f"Refused the parent's definition of {job}: {problem}\n")
    if reply.last_status < 0:
        out.write("No SynchronizeJobData cycle has run here.\n")
        return
    finished = when(reply, "last_finished_at", mode=mode, now=now)
    out.write(f"\nLast cycle: status {reply.last_status}, finished {finished}\n")
    write_rows(
        out,
        mode,
        ("CHILD", "RESULT", "PULLED", "PUSHED", "CONFLICTS", "REPAIRED", "LAST SYNC", "ERROR"),
        # The repaired count came last to TSV (a script's columns stay where they were).
        [(*c[:5], c[7], c[5], c[6]) for c in children],
    )
