"""Prometheus metrics: per-job counters fed by daemon events, gauges read at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from syncd.cluster.model import ReplicaInfo
from syncd.execution.claim import Claim
from syncd.execution.health import Health, Verdict
from syncd.execution.runs import RunCoordinator
from syncd.job import JobSpec
from syncd.ledger.model import LatestRuns
from syncd.observability.events import Event, EventKind


class _Judged(Protocol):
    @property
    def verdict(self) -> Verdict: ...


class JobCatalogue(Protocol):
    """The jobs to report on, with their verdicts (the run service's job beans provide it)."""

    def specs(self) -> list[JobSpec]: ...
    def status(self, name: str) -> _Judged: ...


class _LiveCollector(Collector):
    """Gauges computed from the daemon's state when Prometheus scrapes."""

    def __init__(
        self,
        jobs: JobCatalogue,
        ledger: LatestRuns,
        coordinator: RunCoordinator,
        draining: Callable[[], bool],
    ) -> None:
        self._jobs = jobs
        self._ledger = ledger
        self._coordinator = coordinator
        self._draining = draining

    def collect(self) -> Iterable[Metric]:
        running = GaugeMetricFamily(
            "syncd_job_running", "1 while a run of the job is under way", labels=["job"]
        )
        success = GaugeMetricFamily(
            "syncd_job_last_success_timestamp_seconds",
            "End of the last successful run (Unix time)",
            labels=["job"],
        )
        duration = GaugeMetricFamily(
            "syncd_job_last_duration_seconds", "Duration of the last finished run", labels=["job"]
        )
        # The daemon's one health verdict (syncd.execution.health), as `syncctl status` and the console get it.
        failing = GaugeMetricFamily(
            "syncd_job_failing",
            "1 when the job is failing: its last run failed, timed out or was interrupted",
            labels=["job"],
        )
        stuck = GaugeMetricFamily(
            "syncd_job_stuck",
            "1 when the job's run is cancelling or past its timeout plus cancel grace",
            labels=["job"],
        )
        rerun = GaugeMetricFamily(
            "syncd_job_needs_rerun",
            "1 when the job's last run did not complete (failed, timed out, interrupted, cancelled)",
            labels=["job"],
        )
        for spec in self._jobs.specs():
            name = spec.name
            # Here or, in cluster mode, on any replica.
            busy = self._coordinator.active(name) or self._coordinator.claim_of(name)
            running.add_metric([name], 1.0 if busy else 0.0)
            last_ok = self._ledger.last_success(name)
            if last_ok is not None and last_ok.ended_at is not None:
                success.add_metric([name], last_ok.ended_at.timestamp())
            last = self._ledger.last_finished(name)
            if last is not None and last.ended_at is not None:
                duration.add_metric([name], (last.ended_at - last.started_at).total_seconds())
            verdict = self._jobs.status(name).verdict
            failing.add_metric([name], 1.0 if verdict.health is Health.FAILING else 0.0)
            stuck.add_metric([name], 1.0 if verdict.health is Health.STUCK else 0.0)
            rerun.add_metric([name], 1.0 if verdict.needs_rerun else 0.0)
        draining = GaugeMetricFamily("syncd_draining", "1 while the daemon is shutting down")
        draining.add_metric([], 1.0 if self._draining() else 0.0)
        yield from (running, success, duration, failing, stuck, rerun, draining)


class ClusterSource(Protocol):
    """What cluster mode shows (`syncd.cluster.ClusterRunClaim`), as of its last heartbeat."""

    replica: str
    problem: str
    seen: list[ReplicaInfo]

    def holders(self) -> dict[str, Claim]: ...


class ClusterCollector(Collector):
    """Cluster mode: every replica's liveness and heartbeat, and which replica runs what, as
    this replica last saw them (no I/O at scrape time)."""

    def __init__(self, cluster: ClusterSource) -> None:
        self._cluster = cluster

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "syncd_cluster_replica_up",
            "1 while the replica's heartbeat is within a lease; 0 when it left or is lost",
            labels=["replica", "state"],
        )
        age = GaugeMetricFamily(
            "syncd_cluster_replica_heartbeat_age_seconds",
            "Seconds since the replica's last heartbeat, on the database's clock",
            labels=["replica"],
        )
        for replica in self._cluster.seen:
            up.add_metric([replica.name, replica.state], 1.0 if replica.state == "live" else 0.0)
            age.add_metric([replica.name], replica.heartbeat_age)
        running = GaugeMetricFamily(
            "syncd_cluster_job_running",
            "1 for each job under way, labelled with the replica that runs it",
            labels=["job", "replica", "run_id"],
        )
        for bean, claim in sorted(self._cluster.holders().items()):
            running.add_metric([bean, claim.replica, claim.run_id], 1.0)
        reachable = GaugeMetricFamily(
            "syncd_cluster_database_reachable",
            "1 while this replica's heartbeat reaches the cluster database",
            labels=["replica"],
        )
        reachable.add_metric([self._cluster.replica], 0.0 if self._cluster.problem else 1.0)
        yield from (up, age, running, reachable)


class Metrics:
    """The daemon's registry; `on_event` is an EventHub listener."""

    def __init__(
        self,
        jobs: JobCatalogue,
        ledger: LatestRuns,
        coordinator: RunCoordinator,
        draining: Callable[[], bool],
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._runs = Counter(
            "syncd_job_runs",
            "Runs by outcome (incl. skipped and missed slots)",
            ["job", "outcome"],
            registry=self.registry,
        )
        self._rows_read = Counter(
            "syncd_job_rows_read", "Rows read by finished runs", ["job"], registry=self.registry
        )
        self._rows_written = Counter(
            "syncd_job_rows_written",
            "Rows written by finished runs",
            ["job"],
            registry=self.registry,
        )
        self.lateness = Histogram(
            "syncd_scheduler_lateness_seconds",
            "How late scheduled fires were",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0, 60.0),
            registry=self.registry,
        )
        self.registry.register(_LiveCollector(jobs, ledger, coordinator, draining))

    def on_event(self, event: Event) -> None:
        if event.kind in (EventKind.RUN_FINISHED, EventKind.RUN_SKIPPED, EventKind.RUN_MISSED):
            self._runs.labels(event.bean, event.outcome).inc()
        if event.kind is EventKind.RUN_FINISHED:
            self._rows_read.labels(event.bean).inc(event.rows_read)
            self._rows_written.labels(event.bean).inc(event.rows_written)
