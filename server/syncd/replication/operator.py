"""What operators see and do of the repository: notes on jobs and runs, and sync status."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from syncd.errors import InvalidArgumentError, bounded
from syncd.replication.model import ACKED_BY_CHILD, NOTE, new_id
from syncd.replication.store import SqlRepository

MAX_NOTE = 4000
SUBJECT_KINDS = ("job", "run")


@dataclass(frozen=True, slots=True)
class NoteView:
    note_id: str
    subject: str
    text: str
    author: str
    at: datetime
    origin: str


@dataclass(frozen=True, slots=True)
class CursorView:
    peer_name: str
    peer_id: str
    peer_epoch: str
    stream: str
    cursor: int
    updated_at: datetime
    lag: int


def check_subject(operation: str, subject: str) -> str:
    kind, sep, name = subject.partition(":")
    if not sep or kind not in SUBJECT_KINDS or not name.strip() or len(name) > 200:
        raise InvalidArgumentError(
            operation,
            f"{bounded(subject, 60)!r} is not job:<Bean> or run:<run id>",
            "subject",
        )
    return f"{kind}:{name.strip()}"


def add_note(repo: SqlRepository, subject: str, text: str, author: str, at: datetime) -> NoteView:
    """A new note (its id time-ordered), written as this repository's change."""
    subject = check_subject("AddNote", subject)
    text = text.strip()
    if not text or len(text) > MAX_NOTE or "\x00" in text:
        raise InvalidArgumentError("AddNote", f"must be 1 to {MAX_NOTE} characters", "text")
    note_id = new_id(int(at.timestamp() * 1000))
    body = {"subject": subject, "text": text, "author": author[:200], "at": at.isoformat()}
    version = repo.write(NOTE, note_id, {"body": json.dumps(body, sort_keys=True)})
    return NoteView(note_id, subject, text, body["author"], at, version.origin)


def _view(note_id: str, raw: str, origin: str) -> NoteView | None:
    try:
        body: dict[str, Any] = json.loads(raw)
        return NoteView(
            note_id,
            str(body["subject"]),
            str(body["text"]),
            str(body.get("author", "")),
            datetime.fromisoformat(str(body["at"])),
            origin,
        )
    except (ValueError, KeyError, TypeError):
        return None  # a note another repository wrote in a shape this one does not read


def list_notes(repo: SqlRepository, subject: str, limit: int) -> list[NoteView]:
    wanted = check_subject("ListNotes", subject) if subject else None
    views = [
        v
        for c in repo.records_of(NOTE)
        if not c.deleted and (v := _view(c.id, str(c.body.get("body", "")), c.version.origin))
    ]
    chosen = [v for v in views if wanted is None or v.subject == wanted]
    return sorted(chosen, key=lambda v: (v.at, v.note_id), reverse=True)[:limit]


def cursor_views(repo: SqlRepository) -> list[CursorView]:
    """Every stored cursor with its peer's name; for what a child acknowledged, the lag."""
    names = repo.repo_names()
    watermark = repo.info().stable_watermark
    return [
        CursorView(
            names.get(peer_id, peer_id),
            peer_id,
            epoch,
            stream,
            cursor,
            updated,
            max(0, watermark - cursor) if stream == ACKED_BY_CHILD else 0,
        )
        for peer_id, epoch, stream, cursor, updated in repo.cursors()
    ]


def repository_id(repo: SqlRepository, name_or_id: str) -> str:
    """A repository's id from its name or id ("*" stays "*")."""
    if name_or_id in ("", "*"):
        return name_or_id
    names = repo.repo_names()
    if name_or_id in names:
        return name_or_id
    for repo_id, name in names.items():
        if name == name_or_id:
            return repo_id
    known = ", ".join(sorted(names.values())) or "none"
    raise InvalidArgumentError(
        "RepositoryHistory",
        f"no repository {bounded(name_or_id, 60)!r} (known: {known})",
        "repository",
    )


def sync_view(repo: SqlRepository, report: dict[str, Any] | None) -> dict[str, Any]:
    """This repository's replication state as JSON: cursors per peer and the last table."""
    info = repo.info()
    return {
        "repository": info.name,
        "clusterId": info.cluster_id,
        "stableWatermark": info.stable_watermark,
        "pendingPingbacks": repo.pending_pingbacks(),
        "cursors": [
            {
                "peer": c.peer_name,
                "stream": c.stream,
                "cursor": c.cursor,
                "lag": c.lag,
                "updatedAt": c.updated_at.isoformat(),
            }
            for c in cursor_views(repo)
        ],
        "lastStatus": None if report is None else report.get("status"),
        "lastFinishedAt": None if report is None else report.get("finished_at"),
        "lastSync": [] if report is None else list(report.get("rows", [])),
    }
