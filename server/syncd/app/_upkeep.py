"""The daemon's side of replication upkeep. Job definitions: a parent publishes its `[jobs]`
tables at start and on reload; a child replans whenever a sync or a bundle delivers
definitions. Tombstones: collected after the events that tell what every peer received.

The rules themselves (who publishes, what, how a child overlays them) are in
`syncd.replication.jobdefs`; this module only times them and hands the plans to the daemon.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import structlog

from syncd.config import Config
from syncd.errors import SyncdError
from syncd.job import JobSpec
from syncd.ledger.model import RunLedger
from syncd.ledger.recorder import LedgerRecorder
from syncd.ledger.sql import SqlLedger
from syncd.observability.events import Event, EventHub, EventKind
from syncd.replication import jobdefs
from syncd.replication import retention as retention_rules
from syncd.replication.model import JOB
from syncd.replication.report import read_report
from syncd.replication.store import SqlRepository
from syncd.rpc.replication import ReplicationServicer
from syncd.rpc.repository_ops import RepositoryOps
from syncd.scheduling.plan import JobPlan

log = structlog.get_logger("syncd.replication")

Plans = dict[str, JobPlan]


class JobDefinitions:
    """Publishes (on a parent) or follows (on a child) the job definitions of one repository."""

    def __init__(self, specs: Sequence[JobSpec], own: frozenset[str]) -> None:
        self._specs = list(specs)
        self._own = own
        self._received: dict[str, str] = {}  # what the store holds, as last read
        self._accepted: dict[str, str] = {}  # what is in force
        self._refused: dict[str, str] = {}
        self._lock = asyncio.Lock()

    @property
    def refused(self) -> Mapping[str, str]:
        return dict(self._refused)

    # --- start (before the recorder runs: direct calls, as configure() makes) -----------------

    def start(self, repo: SqlRepository, config: Config, plans: Plans) -> Plans:
        if jobdefs.is_parent(config):
            self._publish(repo, config)
            return plans
        self._received = jobdefs.received(repo.records_of(JOB))
        return self.effective(config, plans)

    def _publish(self, repo: SqlRepository, config: Config) -> None:
        wanted = jobdefs.published(config, self._specs, self._own)
        written, removed = jobdefs.publish(repo, wanted)
        if written or removed:
            log.info(
                "replication.jobdefs_published",
                written=written,
                removed=removed,
                definitions={name: wanted[name] for name in written},
            )

    # --- reload ------------------------------------------------------------------------------

    def effective(self, config: Config, plans: Plans) -> Plans:
        """The plans of `config` (already `plans`) under the definitions last received; a
        parent's are its own. Refusals are logged; a refused job keeps what it had."""
        if jobdefs.is_parent(config) or not self._received:
            self._accepted, self._refused = {}, {}
            return plans
        result = jobdefs.overlay(
            config, self._specs, self._received, previous=self._accepted, own=self._own
        )
        for name, why in sorted(result.refused.items()):
            if self._refused.get(name) != why:
                log.warning("replication.jobdef_refused", job=name, problem=why)
        self._accepted, self._refused = result.accepted, result.refused
        return result.plans

    def after_reload(self, recorder: LedgerRecorder, repo: SqlRepository, config: Config) -> None:
        """On a parent, publish the reloaded tables through the one writer."""
        if not jobdefs.is_parent(config):
            return

        async def publish() -> None:
            try:
                await recorder.call_writer(self._publish, repo, config)
            except SyncdError as exc:  # the next reload or start publishes again
                log.error("replication.jobdefs_publish_failed", error=str(exc))

        recorder.spawn(publish())

    # --- arrivals ----------------------------------------------------------------------------

    def follow(
        self,
        recorder: LedgerRecorder,
        repo: SqlRepository,
        current: Callable[[], Config],
        apply: Callable[[Plans], None],
        base_plans: Callable[[Config], Plans],
    ) -> Callable[[], None]:
        """A callback for "definitions may have arrived": re-read them and replan when they
        changed. `apply(plans)` installs plans; `base_plans` plans a config alone."""

        async def refresh() -> None:
            async with self._lock:
                try:
                    records = await recorder.call_reader(repo.records_of, JOB)
                except SyncdError as exc:
                    log.error("replication.jobdefs_read_failed", error=str(exc))
                    return
                config = current()
                if jobdefs.is_parent(config):
                    return
                now = jobdefs.received(records)
                if now == self._received:
                    return
                changed = sorted(
                    n for n in set(now) | set(self._received) if now.get(n) != self._received.get(n)
                )
                self._received = now
                plans = self.effective(config, base_plans(config))
                apply(plans)
                log.info(
                    "replication.jobdefs_applied",
                    changed=changed,
                    accepted=self._accepted,
                    refused=self._refused,
                )

        def arrived() -> None:
            recorder.spawn(refresh())

        return arrived


def import_listener(arrived: Callable[[], None], bean: str) -> Callable[[Event], None]:
    """An event listener calling `arrived` when a run of `bean` (ImportJobData) finishes."""

    def listen(event: Event) -> None:
        if event.kind is EventKind.RUN_FINISHED and event.bean == bean:
            arrived()

    return listen


class TombstoneCollector:
    """Runs the collection of §3.7 through the one writer: on a parent after each successful
    SynchronizeJobData (or import) run, on a child when its parent acknowledged a pull."""

    def __init__(
        self, recorder: LedgerRecorder, repo: SqlRepository, retention: Callable[[], float]
    ) -> None:
        self._recorder = recorder
        self._repo = repo
        self._retention = retention
        self._lock = asyncio.Lock()

    def run(self) -> None:
        self._recorder.spawn(self._collect())

    async def _collect(self) -> None:
        async with self._lock:  # one at a time; a second request finds nothing more to do
            retention = timedelta(seconds=self._retention())
            try:
                purged = await self._recorder.call_writer(
                    retention_rules.collect, self._repo, retention
                )
            except SyncdError as exc:  # the next cycle tries again
                log.error("replication.tombstones_failed", error=str(exc))
                return
            log.info("replication.tombstones_collected", purged=purged)

    def listener(self, beans: frozenset[str]) -> Callable[[Event], None]:
        """An event listener: collect after a successful run of one of `beans`."""

        def listen(event: Event) -> None:
            if (
                event.kind is EventKind.RUN_FINISHED
                and event.bean in beans
                and event.outcome == "success"
            ):
                self.run()

        return listen


@dataclass(frozen=True, slots=True)
class UpkeepHooks:
    """What the Replication service calls after a batch from the parent carrying job
    definitions (`jobdefs_arrived`) and after the parent acknowledged a pull (`parent_acked`)."""

    jobdefs_arrived: Callable[[], None] | None = None
    parent_acked: Callable[[], None] | None = None


def install_upkeep(
    jobdefs: JobDefinitions,
    recorder: LedgerRecorder,
    repo: SqlRepository,
    events: EventHub,
    current: Callable[[], Config],
    apply: Callable[[Plans], None],
    base_plans: Callable[[Config], Plans],
    *,
    sync_bean: str,
    import_bean: str,
) -> UpkeepHooks:
    """Wire a named repository's upkeep: replans on arrivals (a sync's batch, a finished
    import) and tombstone collection after the runs and acknowledgements that allow it."""
    collector = TombstoneCollector(
        recorder, repo, lambda: current().replication.tombstone_retention
    )
    events.listen(collector.listener(frozenset({sync_bean, import_bean})))
    arrived = jobdefs.follow(recorder, repo, current, apply, base_plans)
    events.listen(import_listener(arrived, import_bean))
    return UpkeepHooks(jobdefs_arrived=arrived, parent_acked=collector.run)


def replication_edges(
    ledger: RunLedger,
    recorder: LedgerRecorder,
    state_dir: Path,
    hooks: UpkeepHooks,
    jobdefs: JobDefinitions,
) -> tuple[RepositoryOps | None, ReplicationServicer | None]:
    """The repository's operator calls and its Replication service (none without SQL)."""
    if not isinstance(ledger, SqlLedger):
        return None, None
    return (
        RepositoryOps(
            ledger,
            recorder,
            lambda: read_report(state_dir),
            refused_definitions=lambda: jobdefs.refused,
        ),
        ReplicationServicer(
            ledger.repository,
            recorder,
            on_jobdefs=hooks.jobdefs_arrived,
            on_parent_ack=hooks.parent_acked,
        ),
    )


def open_repository(
    ledger: SqlLedger, config: Config, jobdefs: JobDefinitions, plans: Plans
) -> Plans:
    """Name the repository and set its drift guard; then a parent publishes its job tables
    and a child plans under its parent's. Returns the plans in force."""
    repl = config.replication
    ledger.repository.hlc.max_drift_ms = int(repl.max_drift * 1000)
    if not repl.name:
        return plans
    ledger.repository.configure(name=repl.name, cluster_id=repl.cluster_id)
    return jobdefs.start(ledger.repository, config, plans)
