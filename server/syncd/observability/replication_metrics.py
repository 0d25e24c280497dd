"""Per-child replication gauges, from the last SynchronizeJobData table when Prometheus scrapes."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class ReplicationCollector(Collector):
    def __init__(self, report: Callable[[], dict[str, Any] | None]) -> None:
        self._report = report

    def collect(self) -> Iterable[Metric]:
        report = self._report()
        if report is None:
            return
        status = GaugeMetricFamily(
            "syncd_replication_last_status",
            "Status of the last SynchronizeJobData cycle run here (0 ok, 1 partial, 2 nothing)",
        )
        status.add_metric([], float(report.get("status", 2)))
        yield status
        families = {
            name: GaugeMetricFamily(f"syncd_replication_{name}", text, labels=["child"])
            for name, text in (
                ("ok", "1 when the child completed pull and push in the last cycle"),
                ("pulled", "Changes the last cycle pulled from the child"),
                ("pushed", "Changes the last cycle pushed to the child"),
                ("conflicts", "Concurrent writes the last cycle resolved for the child"),
                ("last_success_timestamp_seconds", "When the child last synchronised fully"),
            )
        }
        for row in report.get("rows", []):
            if not isinstance(row, dict) or row.get("result") == "skipped":
                continue
            child = [str(row.get("child_repository", ""))]
            families["ok"].add_metric(child, 1.0 if row.get("result") == "ok" else 0.0)
            for name in ("pulled", "pushed", "conflicts"):
                families[name].add_metric(child, float(row.get(name, 0)))
            try:
                at = datetime.fromisoformat(str(row.get("last_sync_time", "")))
            except ValueError:
                continue
            families["last_success_timestamp_seconds"].add_metric(child, at.timestamp())
        yield from families.values()
