"""The daemon: the composition root that owns the event loop's server, runs and shutdown.

Shutdown is a staged protocol: health NOT_SERVING → new runs refused → running jobs get
`shutdown_grace` to finish → the rest are cancelled (and, after `cancel_grace`, abandoned) and
recorded → the server stops. A second signal forces an immediate exit.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import structlog
from aiohttp import web

from syncd import __version__
from syncd.app._forced import forced_exit_ends
from syncd.app._startsteps import Listening, bind_control, prune_at_start, settle_heap
from syncd.app._upkeep import (
    JobDefinitions,
    UpkeepHooks,
    install_upkeep,
    open_repository,
    replication_edges,
)
from syncd.app.instance import InstanceLock, open_socket, private_dir
from syncd.app.reload import ReloadResult, diff, plan_reload
from syncd.app.replication import IMPORT_BEAN, REPLICATION_BEANS, SYNC_BEAN
from syncd.app.startup import starting
from syncd.beans.daemonbean import daemon_bean
from syncd.beans.jobbeans import JobBeans
from syncd.beans.registry import BeanRegistry
from syncd.clock import Clock, clock_from_env, real_paced
from syncd.config import Config
from syncd.errors import ConfigError, SyncdError
from syncd.execution import _jobtrees
from syncd.execution.claim import InMemoryRunClaim, RunClaim
from syncd.execution.executors import Executor, ProcessExecutor, ThreadExecutor
from syncd.execution.run import JobOptions
from syncd.execution.runs import RunCoordinator
from syncd.job import JobSpec
from syncd.ledger.audit import AuditEntry
from syncd.ledger.model import RunLedger
from syncd.ledger.recorder import LedgerRecorder
from syncd.ledger.sql import SqlLedger
from syncd.observability.events import Event, EventKind
from syncd.observability.loghub import LogHub
from syncd.observability.logs import LEVELS, flush_logs
from syncd.observability.metrics import ClusterCollector, Metrics
from syncd.observability.notify import WebhookNotifier
from syncd.observability.replication_metrics import ReplicationCollector
from syncd.replication.operator import sync_view
from syncd.replication.report import read_report
from syncd.rpc.server import ControlServer
from syncd.rpc.servicer import ControlPlane
from syncd.scheduling.plan import JobPlan, plan_jobs
from syncd.security import Guard, ServerTls
from syncd.service.runservice import RunService
from syncd.web import console
from syncd.web.console import WebAccess
from syncd.web.plane import WebPlane
from syncd.web.server import HttpServer

if TYPE_CHECKING:  # cluster mode's modules load only when it is configured
    from syncd.cluster import ClusterLedger, ClusterRunClaim, Reaped

log = structlog.get_logger("syncd.daemon")

FORCED_EXIT_LOG_S = 2.0  # how long a forced exit waits for the log file and stdout
LEDGER_CLOSE_S = 10.0  # at most this long, at shutdown, for a faulty ledger to recover


class Daemon:
    """One syncd instance over one state directory."""

    def __init__(
        self,
        config: Config,
        jobs: Sequence[JobSpec] = (),
        *,
        clock: Clock | None = None,
        ledger: RunLedger | None = None,
        log_hub: LogHub | None = None,
        reload_config: Callable[[], Config] | None = None,
    ) -> None:
        self.config = config
        self._reload_config = reload_config
        self._specs = list(jobs)
        self.log_hub = log_hub or LogHub()
        self.clock = clock or clock_from_env(os.environ)
        self.plans = plan_jobs(jobs, config, os.environ)  # bad timetable: ConfigError, early
        with starting("daemon.state_dir"):
            private_dir(config.daemon.state_dir)
        self.cluster: ClusterRunClaim | None = None
        claim: RunClaim = InMemoryRunClaim()  # one daemon: claims held in memory
        self._cluster_ledger: ClusterLedger | None = None
        if config.cluster.enabled:
            from syncd.cluster import ClusterLedger, ClusterRunClaim, ClusterStore

            cluster = config.cluster
            if ledger is None:
                with starting("cluster.url"):
                    ledger = self._cluster_ledger = ClusterLedger(config.ledger_url)
            if not isinstance(ledger, SqlLedger):
                raise ConfigError("cluster.url", "cluster mode keeps its ledger in SQL")
            # Cluster-wide: a lease in the cluster database, with a fencing token. The run
            # records the claim writes (a takeover's `interrupted`) are versioned by the ledger.
            store = ClusterStore(
                cluster.url, cluster.replica_name, cluster.lease_ttl, ledger.repository.stamp
            )
            self.cluster = ClusterRunClaim(
                store,
                # Leases are real seconds on the database's clock, whatever a drill's rate.
                real_paced(self.clock),
                give_up_after=cluster.give_up_after,
            )
            claim = self.cluster
        if ledger is None:
            with starting("ledger"):
                ledger = SqlLedger(config.ledger_url)
        self.ledger = ledger
        self.jobdefs = JobDefinitions(self._specs, REPLICATION_BEANS)
        if isinstance(ledger, SqlLedger):
            with starting("replication"):
                self.plans = open_repository(ledger, config, self.jobdefs, self.plans)
        # Every ledger write and read from here on goes through its one writer, off the loop.
        self.recorder = LedgerRecorder(self.ledger)
        self.coordinator = RunCoordinator(self.recorder, self.clock, claim=claim)
        self.service = RunService(
            self.coordinator,
            self.recorder,
            self.clock,
            self.plans,
            config.scheduler,
            # The metrics are built over the job beans, after the service.
            observe_lateness=lambda seconds: self.metrics.lateness.observe(seconds),
        )
        if self.cluster is not None:
            self.service.join_cluster(self.cluster)
        self.service.defer_starts()  # until start-up has repaired what a predecessor left
        self.jobs = JobBeans(self.service, self.recorder)
        self.registry = BeanRegistry()
        self.started_at = self.clock.now()
        self.registry.register(
            daemon_bean(
                clock=self.clock,
                started_at=self.started_at,
                state_dir=config.daemon.state_dir,
                service=self.service,
                bean_count=lambda: len(self.registry),
                reload=self._reload_summary,
                login_link=self._login_link,
            )
        )
        modules = sorted({s.body.__module__ for s in jobs} | {m for s in jobs for m in s.preload})
        self._executors: dict[str, Executor] = {
            "thread": ThreadExecutor(),
            # Its fork server starts on first use; each run's process tree is recorded.
            "process": ProcessExecutor(
                preload=modules,
                record_dir=config.daemon.state_dir / _jobtrees.RECORD_DIR,
                log_level=LEVELS[config.daemon.log_level.lower()],
                nice=config.daemon.job_nice,
            ),
        }
        for spec in jobs:
            self.registry.register(self.jobs.build(spec))
        self._apply_plans()
        self._upkeep = UpkeepHooks()
        if isinstance(self.ledger, SqlLedger) and config.replication.name:
            self._upkeep = install_upkeep(
                self.jobdefs,
                self.recorder,
                self.ledger.repository,
                self.coordinator.events,
                lambda: self.config,
                self._install_plans,
                lambda cfg: plan_jobs(self._specs, cfg, os.environ),
                sync_bean=SYNC_BEAN,
                import_bean=IMPORT_BEAN,
            )
        self.metrics = Metrics(
            self.jobs, self.recorder, self.coordinator, lambda: self.coordinator.draining
        )
        self.coordinator.events.listen(self.metrics.on_event)
        if self.cluster is not None:
            self.metrics.registry.register(ClusterCollector(self.cluster))
        if isinstance(self.ledger, SqlLedger):
            state_dir = config.daemon.state_dir
            self.metrics.registry.register(ReplicationCollector(lambda: read_report(state_dir)))
        self.notifier: WebhookNotifier | None = None
        if config.notify.webhook_url:
            self.notifier = WebhookNotifier(config.notify, self.recorder)
            self.coordinator.events.listen(self.notifier.on_event)
        with starting("auth"):
            self.guard = Guard(config.auth)
        self.tls = ServerTls(config.tls) if config.tls.enabled else None
        self.listening = Listening()
        self._web_access: WebAccess | None = None
        self.announce_login = False  # `syncd serve` prints the console's login link
        self.freeze_startup_heap = False  # `syncd serve` only: see settle_heap
        self._stop = asyncio.Event()
        self._stop_signals = 0

    def _apply_plans(self) -> None:
        for name, plan in self.plans.items():
            self.coordinator.set_options(
                name,
                JobOptions(
                    timeout=plan.timeout,
                    cancel_grace=plan.cancel_grace,
                    executor=self._executors[plan.execution],
                ),
            )
            if plan.enabled:
                self.service.enable(name)
            else:
                self.service.disable(
                    name, f"disabled in the configuration (jobs.{name}.enabled = false)"
                )

    def reload(self) -> ReloadResult:
        """Re-read the configuration: the timetable and job settings apply now; a bad file
        changes nothing (raises ConfigError); other changes are reported as needing a restart."""
        if self._reload_config is None:
            raise ConfigError("(reload)", "this daemon was started without a configuration source")
        try:
            new, plans, result = plan_reload(
                self._reload_config, self.config, self._specs, dict(self.plans)
            )
            if new.replication.name:  # the parent's definitions still apply over the new file
                plans = self.jobdefs.effective(new, plans)
                result.changed_jobs[:] = diff(self.config, new, self.plans, plans).changed_jobs
            self.guard.update(new.auth)  # tokens and roles apply now; a bad token file raises
        except SyncdError as exc:
            log.error("config.reload_failed", error=str(exc))
            raise
        # Opening the socket to other users, or TLS on or off, changes listeners: a restart.
        if bool(new.auth.unix_roles) != bool(self.config.auth.unix_roles):
            result.restart_needed.append("auth.unix_roles")
        if new.tls.enabled != self.config.tls.enabled:
            result.restart_needed.append("tls")
        elif self.tls is not None:
            self.tls.reload(new.tls)  # the files (or their paths) may have changed
        self.config = msgspec.structs.replace(new, packs=self.config.packs)
        self._install_plans(plans)
        if isinstance(self.ledger, SqlLedger) and new.replication.name:
            self.jobdefs.after_reload(self.recorder, self.ledger.repository, new)
        log.info(
            "config.reloaded",
            changed_jobs=result.changed_jobs,
            restart_needed=result.restart_needed,
        )
        self.coordinator.events.publish(
            Event(
                kind=EventKind.CONFIG_RELOADED,
                at=self.clock.now(),
                message=f"changed: {', '.join(result.changed_jobs) or 'nothing'}",
            )
        )
        return result

    def _install_plans(self, plans: dict[str, JobPlan]) -> None:
        """The scheduler and the job options follow `plans` from now (no restart)."""
        self.plans = plans
        self._apply_plans()
        self.service.replace_plans(plans)

    def _reload_summary(self) -> dict[str, list[str]]:
        result = self.reload()
        return {"changedJobs": result.changed_jobs, "restartNeeded": result.restart_needed}

    def _login_link(self) -> str:
        """A fresh one-time link to the console (the Daemon bean's consoleLoginLink)."""
        if self._web_access is None or not self.listening.http:
            raise ConfigError("http.address", "the HTTP listener is off: there is no console")
        token = self._web_access.new_login_token()
        return f"{self.listening.http}{self.config.http.context_path}?token={token}"

    def _on_hangup(self) -> None:
        outcome = "ok"
        try:
            self.reload()
        except SyncdError as exc:  # already logged; the old config stays
            outcome = f"refused: {exc}"
        # The signal's sender is a local user allowed to signal us: our own user or root.
        entry = AuditEntry(
            at=self.clock.now(),
            actor="signal SIGHUP",
            role="admin",
            address="local",
            action="reload",
            target="(daemon)",
            outcome="ok" if outcome == "ok" else "FAILED_PRECONDITION",
            detail="" if outcome == "ok" else outcome,
        )

        async def audited() -> None:
            await self.recorder.audit(entry)
            log.info("daemon.hangup_audited", outcome=entry.outcome)

        self.recorder.spawn(audited())

    @property
    def state_dir(self) -> Path:
        return self.config.daemon.state_dir

    def request_stop(self) -> None:
        """Begin the shutdown protocol; safe to call at any time and more than once."""
        self._stop.set()

    def _on_signal(self, signum: int) -> None:
        self._stop_signals += 1
        if self._stop_signals == 1:
            log.info("daemon.signal", signal=signal.Signals(signum).name)
            self.request_stop()
            return
        self._force_exit(signum)

    def _force_exit(self, signum: int) -> None:
        """Second signal: record what is still running and leave now."""
        outcome = forced_exit_ends(
            self.coordinator.active_runs(),
            self.clock.now(),
            self.recorder,
            self.cluster,
            self._executors.values(),
        )
        log.warning("daemon.forced_exit", signal=signal.Signals(signum).name, **outcome)
        flush_logs(FORCED_EXIT_LOG_S)  # the log's own thread writes the lines, this one too
        os._exit(128 + signum)

    async def _after_failover(self, reaped: list[Reaped]) -> None:
        """Runs of other replicas (or this replica's previous process) whose leases expired
        were recorded interrupted; the catch-up rules decide whether each job runs again."""
        if not reaped:
            return
        await self._cluster_beat()
        await self.service.schedule.after_failover({r.bean for r in reaped})

    async def _cluster_beat(self) -> None:
        """After each heartbeat: the latest outcomes and the holds other replicas wrote."""
        if self._cluster_ledger is not None:  # (a ledger a caller gave is its own business)
            finished, success = await asyncio.to_thread(self._cluster_ledger.refresh_latest)
            self.recorder.adopt(finished, success)
        changes = self.service.schedule.hold_changes
        holds = await self.recorder.holds()
        self.service.schedule.follow_holds(holds, self.clock.now(), changes)
        await self.service.refresh_remote_runs()

    def _web_routes(self, app: web.Application) -> None:
        """The web console and the old REST API."""
        self._web_access = console.install(
            app,
            WebPlane(
                config=self.config.http,
                registry=self.registry,
                jobs=self.jobs,
                service=self.service,
                ledger=self.ledger,
                log_hub=self.log_hub,
                events=self.coordinator.events,
                clock=self.clock,
                started_at=self.started_at,
                guard=self.guard,
                audit=self.recorder.audit,
                replication=self._replication_view if isinstance(self.ledger, SqlLedger) else None,
            ),
        )

    async def _replication_view(self) -> dict[str, Any]:
        assert isinstance(self.ledger, SqlLedger)
        repo, state_dir = self.ledger.repository, self.state_dir
        return await self.recorder.call_reader(lambda: sync_view(repo, read_report(state_dir)))

    async def serve(self, *, handle_signals: bool = True) -> int:
        """Run until asked to stop; returns the process exit status (0 on a clean stop)."""
        daemon_cfg = self.config.daemon
        with starting("daemon.state_dir"):
            private_dir(self.state_dir)
            lock = InstanceLock(self.state_dir)
            lock.acquire()
        socket_file: Path | None = None
        repository, replication = replication_edges(
            self.ledger, self.recorder, self.state_dir, self._upkeep, self.jobdefs
        )
        control = ControlServer(
            ControlPlane(
                registry=self.registry,
                jobs=self.jobs,
                service=self.service,
                log_hub=self.log_hub,
                started_at=self.started_at,
                pid=os.getpid(),
                ledger_health=self.recorder.health,
                audit_entries=self.recorder.audit_entries,
                repository=repository,
            ),
            replication=replication,
            guard=self.guard,
            recorder=self.recorder,
            clock=self.clock,
            tls=self.tls,
        )
        loop = asyncio.get_running_loop()
        self.log_hub.bind_loop(loop)
        http: HttpServer | None = None
        try:
            socket_file = bind_control(control, daemon_cfg, self.listening.addresses)
            await control.server.start()
            await control.start_relay()
            if socket_file is not None:
                open_socket(socket_file, self.state_dir, shared=self.guard.grants_unix_users)
            await control.set_serving(True)
            if self.config.http.address:
                http = HttpServer(
                    self.config.http,
                    self.metrics,
                    lambda: not self.coordinator.draining,
                    extra_routes=self._web_routes,
                    ledger_problem=lambda: self.recorder.health().problem,
                    guard=self.guard,
                    ssl_context=self.tls.ssl_context() if self.tls is not None else None,
                )
                with starting(f"http.address: cannot listen on {self.config.http.address}"):
                    self.listening.http = await http.start()
            if handle_signals:
                for signum in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(signum, self._on_signal, signum)
                loop.add_signal_handler(signal.SIGHUP, self._on_hangup)
            log.info(
                "daemon.started",
                version=__version__,
                pid=os.getpid(),
                addresses=self.listening.addresses,
                http=self.listening.http or None,
                state_dir=str(self.state_dir),
                beans=[b.name for b in self.registry.beans()],
            )
            await prune_at_start(self.recorder, self.clock, self.config.ledger)
            # Under the instance lock and before any job starts: end what runs of a killed
            # predecessor left, then note it with those (now interrupted) runs.
            survivors = _jobtrees.end_survivors(self.state_dir / _jobtrees.RECORD_DIR)
            if self.cluster is not None:
                with starting("cluster.url"):
                    reaped = await self.cluster.join(os.getpid())
                await self._after_failover(reaped)
            await self.service.begin()
            await _jobtrees.note_survivors(self.recorder, survivors)
            if self.cluster is not None:
                self.cluster.start_heartbeat(self._after_failover, self._cluster_beat)
            self.listening.ready.set()
            if self.freeze_startup_heap:
                settle_heap()
            if http is not None and self._web_access is not None and self.announce_login:
                # On stderr, never through the log: the link is a credential (it works once).
                token = self._web_access.login_token()
                base = f"{self.listening.http}{self.config.http.context_path}"
                sys.stderr.write(f"syncd: the web console: {base}?token={token}\n")
            await self._stop.wait()

            log.info("daemon.draining", running=[r.run_id for r in self.coordinator.active_runs()])
            await control.set_serving(False)
            self.coordinator.refuse_new_runs()
            self.service.open_starts()  # starts still held now meet the refusal
            self.coordinator.events.publish(
                Event(kind=EventKind.DAEMON_DRAINING, at=self.clock.now(), message="shutting down")
            )
            await self.service.stop_scheduling()
            await self.coordinator.drain(daemon_cfg.shutdown_grace)
            if self.cluster is not None:
                await self.cluster.leave()
            if self.notifier is not None:
                await self.notifier.close()
            await control.server.stop(grace=1.0)
            log.info("daemon.stopped")
            return 0
        finally:
            if handle_signals:
                for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    loop.remove_signal_handler(signum)
            await control.stop_relay()
            await control.server.stop(grace=None)
            if http is not None:
                await http.stop()
            if socket_file is not None and socket_file.is_socket():
                socket_file.unlink()
            # Ends still kept in memory get a last chance to be written, then are logged whole.
            await self.recorder.close(timeout=min(daemon_cfg.shutdown_grace, LEDGER_CLOSE_S))
            if self.cluster is not None:
                await self.cluster.leave()  # a second time is harmless; after a failure, needed
                await self.cluster.close()
            lock.release()
