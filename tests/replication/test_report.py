"""The last-sync table on disk and the per-child metrics made from it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from syncd.observability.replication_metrics import ReplicationCollector
from syncd.replication.cycle import ChildResult, SyncReport
from syncd.replication.report import read_report, write_report

NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)


def test_a_failed_child_keeps_its_last_success_and_metrics_show_each_child(tmp_path: Path) -> None:
    """The table is replaced atomically each cycle; a child that failed keeps the time it last
    synchronised; Prometheus sees status, per-child ok, counts and last success."""
    ok = ChildResult(
        "ohio", "true", "grpc://ohio", last_sync_time=NOW.isoformat(), pulled=3, pushed=4
    )
    write_report(tmp_path, SyncReport(0, [ok]), NOW)
    failed = ChildResult("ohio", "true", "grpc://ohio", result="failed", error="push: gone")
    skipped = ChildResult("az", "false", "grpc://az", result="skipped")
    write_report(tmp_path, SyncReport(1, [failed, skipped]), NOW)
    report = read_report(tmp_path)
    assert report is not None and report["status"] == 1
    assert report["rows"][0]["last_sync_time"] == NOW.isoformat()
    assert not list((tmp_path / "replication").glob("*.tmp"))
    registry = CollectorRegistry()
    registry.register(ReplicationCollector(lambda: read_report(tmp_path)))
    text = generate_latest(registry).decode()
    assert "syncd_replication_last_status 1.0" in text
    assert 'syncd_replication_ok{child="ohio"} 0.0' in text
    assert 'syncd_replication_last_success_timestamp_seconds{child="ohio"} 1.7953128e+09' in text
    assert 'child="az"' not in text  # a skipped row is no peer of this cycle


def test_no_table_no_metrics(tmp_path: Path) -> None:
    """Before any cycle, nothing is read and nothing is reported."""
    registry = CollectorRegistry()
    registry.register(ReplicationCollector(lambda: read_report(tmp_path)))
    assert "syncd_replication" not in generate_latest(registry).decode()
