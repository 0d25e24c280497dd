"""A run service over a given ledger, built as the daemon builds it (without the daemon), for
tests of the service and of what sits on it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from syncd.beans.jobbeans import JobBeans
from syncd.beans.model import Bean
from syncd.clock import Clock, SystemClock
from syncd.config import Config, SchedulerConfig
from syncd.execution.claim import RunClaim
from syncd.execution.runs import RunCoordinator
from syncd.job import JobSpec
from syncd.ledger.model import RunLedger
from syncd.ledger.recorder import LedgerRecorder
from syncd.scheduling.plan import plan_jobs
from syncd.service.runservice import RunService


@dataclass(frozen=True, slots=True)
class Built:
    service: RunService
    jobs: JobBeans
    recorder: LedgerRecorder
    beans: dict[str, Bean]


def build_service(
    ledger: RunLedger,
    specs: Sequence[JobSpec] = (),
    *,
    claim: RunClaim | None = None,
    clock: Clock | None = None,
) -> Built:
    """The service with `specs` as its jobs; the scheduler is off (tests start runs)."""
    clock = clock or SystemClock()
    recorder = LedgerRecorder(ledger)
    coordinator = RunCoordinator(recorder, clock, claim=claim)
    plans = plan_jobs(specs, Config(), {})
    service = RunService(coordinator, recorder, clock, plans, SchedulerConfig(enabled=False))
    jobs = JobBeans(service, recorder)
    beans = {spec.name: jobs.build(spec) for spec in specs}
    return Built(service, jobs, recorder, beans)
