"""The audit trail's storage: the same contract in memory, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from syncd.ledger.audit import FIELD_LIMIT, AuditEntry, AuditTrail, MemoryAuditTrail, trail_for
from syncd.ledger.model import MemoryLedger
from syncd.ledger.sql import SqlLedger
from tests.services import fresh_postgres_database

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _entry(minutes: int, action: str = "run", target: str = "QuickJob.run") -> AuditEntry:
    return AuditEntry(
        at=T0 + timedelta(minutes=minutes),
        actor="token ci",
        role="operator",
        address="ipv4:127.0.0.1:5000",
        action=action,
        target=target,
        outcome="ok",
        detail="",
    )


@contextmanager
def _trail(kind: str, tmp_path: Path) -> Iterator[AuditTrail]:
    if kind == "memory":
        yield trail_for(MemoryLedger())
    elif kind == "sqlite":
        ledger = SqlLedger(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
        try:
            yield trail_for(ledger)
        finally:
            ledger.close()
    else:
        with fresh_postgres_database() as url:
            ledger = SqlLedger(url)
            try:
                yield trail_for(ledger)
            finally:
                ledger.close()


@pytest.mark.parametrize(
    "kind", ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.services)]
)
def test_entries_come_back_newest_first_since_an_instant_and_are_pruned(
    kind: str, tmp_path: Path
) -> None:
    """Newest first; `since` is inclusive; `limit` caps; prune drops only older entries."""
    with _trail(kind, tmp_path) as trail:
        for minutes, action in ((0, "run"), (5, "cancel"), (10, "pause")):
            trail.append(_entry(minutes, action))
        assert [e.action for e in trail.entries(None, 10)] == ["pause", "cancel", "run"]
        assert [e.action for e in trail.entries(T0 + timedelta(minutes=5), 10)] == [
            "pause",
            "cancel",
        ]
        assert len(trail.entries(None, 2)) == 2
        assert trail.entries(None, 1)[0].at == T0 + timedelta(minutes=10)
        assert trail.prune(T0 + timedelta(minutes=5)) == 1
        assert [e.action for e in trail.entries(None, 10)] == ["pause", "cancel"]


def test_a_long_target_is_cut_before_it_is_stored(tmp_path: Path) -> None:
    """Fields that may come from input are bounded (a 100 KB bean name stays 200 characters)."""
    ledger = SqlLedger(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    try:
        trail = trail_for(ledger)
        trail.append(_entry(0, target="x" * 100_000))
        (stored,) = trail.entries(None, 5)
        assert len(stored.target) == FIELD_LIMIT + 1 and stored.target.endswith("…")
    finally:
        ledger.close()
    assert isinstance(trail_for(MemoryLedger()), MemoryAuditTrail)
