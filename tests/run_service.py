"""A run service over a given ledger, built as the daemon builds it (without the daemon), for
tests of the service and of what sits on it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from syncd.beans import Bean
from syncd.clock import Clock, SystemClock
from syncd.config import Config, SchedulerConfig
from syncd.job import JobSpec
from syncd.jobbeans import JobBeans
from syncd.ledger import RunLedger
from syncd.plan import plan_jobs
from syncd.recorder import LedgerRecorder
from syncd.runs import RunCoordinator
from syncd.service import RunClaim
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
