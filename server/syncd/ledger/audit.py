"""The audit trail: who changed what, when, from where, and how it ended.

One row per state-changing request (run, cancel, pause, resume, reload, note…) and per refused
credential, written through the ledger's one writer (`LedgerRecorder.audit`) into the ledger's
own database (table `syncd_audit`), or kept in memory beside a memory ledger. Rows hold the
actor the daemon established (a uid, a token's *name*, a certificate subject), never a secret.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa

from syncd.ledger.model import RunLedger
from syncd.ledger.schema import UTCDateTime
from syncd.ledger.sql import SqlLedger

MAX_KEPT_IN_MEMORY = 10_000
FIELD_LIMIT = 200  # every text field is cut to this: a target may come from input


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    at: datetime
    actor: str  # "uid 1000 (alice)", "token ci", "cert CN=deploy", "anonymous"
    role: str  # the role the caller had: none, viewer, operator, admin
    address: str  # "unix:pid 4242", "ipv4:10.0.0.5:51234"
    action: str  # run, cancel, pause, resume, reload, note, authenticate…
    target: str  # the bean (and operation), or "" for the whole daemon
    outcome: str  # "ok", or the refusal: "PERMISSION_DENIED", "UNAUTHENTICATED", "NOT_FOUND"…
    detail: str = ""  # the refusal's message, or the run id started

    def bounded(self) -> AuditEntry:
        def cut(text: str) -> str:
            return text if len(text) <= FIELD_LIMIT else text[:FIELD_LIMIT] + "…"

        return AuditEntry(
            at=self.at,
            actor=cut(self.actor),
            role=cut(self.role),
            address=cut(self.address),
            action=cut(self.action),
            target=cut(self.target),
            outcome=cut(self.outcome),
            detail=cut(self.detail),
        )


class AuditTrail(Protocol):
    """Blocking; called from the recorder's threads only."""

    def append(self, entry: AuditEntry) -> None: ...
    def entries(self, since: datetime | None, limit: int) -> list[AuditEntry]:
        """Newest first."""
        ...

    def prune(self, before: datetime) -> int:
        """Drop entries older than `before`; how many went."""
        ...


class MemoryAuditTrail:
    def __init__(self, keep: int = MAX_KEPT_IN_MEMORY) -> None:
        self._rows: deque[AuditEntry] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def append(self, entry: AuditEntry) -> None:
        with self._lock:
            self._rows.append(entry)

    def entries(self, since: datetime | None, limit: int) -> list[AuditEntry]:
        with self._lock:
            rows = [r for r in self._rows if since is None or r.at >= since]
        return sorted(rows, key=lambda r: r.at, reverse=True)[:limit]

    def prune(self, before: datetime) -> int:
        with self._lock:
            kept = [r for r in self._rows if r.at >= before]
            gone = len(self._rows) - len(kept)
            self._rows.clear()
            self._rows.extend(kept)
        return gone


audit_table = sa.Table(
    "syncd_audit",
    sa.MetaData(),  # its own: created beside the run tables, outside their schema version
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(FIELD_LIMIT + 1), nullable=False),
    sa.Column("role", sa.String(FIELD_LIMIT + 1), nullable=False),
    sa.Column("address", sa.String(FIELD_LIMIT + 1), nullable=False),
    sa.Column("action", sa.String(FIELD_LIMIT + 1), nullable=False),
    sa.Column("target", sa.String(FIELD_LIMIT + 1), nullable=False),
    sa.Column("outcome", sa.String(FIELD_LIMIT + 1), nullable=False),
    sa.Column("detail", sa.String(FIELD_LIMIT + 1), nullable=False),
    sa.Index("ix_syncd_audit_at", "at"),
)
_INSERT = audit_table.insert()  # built once: an append only binds its values


def _entry(row: sa.Row[Any]) -> AuditEntry:
    m = row._mapping
    return AuditEntry(
        at=m["at"],
        actor=m["actor"],
        role=m["role"],
        address=m["address"],
        action=m["action"],
        target=m["target"],
        outcome=m["outcome"],
        detail=m["detail"],
    )


class SqlAuditTrail:
    """The trail in the SQL ledger's database, through the ledger's connections (and so its
    fault handling: a full disk is a LedgerUnavailableError here too)."""

    def __init__(self, ledger: SqlLedger) -> None:
        self._ledger = ledger
        with ledger._tx() as conn:
            audit_table.create(conn, checkfirst=True)

    def append(self, entry: AuditEntry) -> None:
        e = entry.bounded()
        with self._ledger._tx() as conn:
            conn.execute(
                _INSERT,
                {
                    "at": e.at,
                    "actor": e.actor,
                    "role": e.role,
                    "address": e.address,
                    "action": e.action,
                    "target": e.target,
                    "outcome": e.outcome,
                    "detail": e.detail,
                },
            )

    def entries(self, since: datetime | None, limit: int) -> list[AuditEntry]:
        query = sa.select(audit_table).order_by(audit_table.c.id.desc()).limit(limit)
        if since is not None:
            query = query.where(audit_table.c.at >= since)
        with self._ledger._read() as conn:
            return [_entry(row) for row in conn.execute(query)]

    def prune(self, before: datetime) -> int:
        with self._ledger._tx() as conn:
            done = conn.execute(audit_table.delete().where(audit_table.c.at < before))
            return int(done.rowcount or 0)


def trail_for(ledger: RunLedger) -> AuditTrail:
    """The trail that lives with `ledger`."""
    if isinstance(ledger, SqlLedger):
        return SqlAuditTrail(ledger)
    return MemoryAuditTrail()
