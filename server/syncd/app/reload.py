"""Configuration reload (SIGHUP, the Reload RPC): the timetable and per-job settings apply at
once; other changes are named as needing a restart. A bad file changes nothing."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import msgspec
import structlog

from syncd.config import Config
from syncd.job import JobSpec
from syncd.scheduling.plan import JobPlan, plan_jobs

log = structlog.get_logger("syncd.reload")

# Top-level sections whose changes only a restart applies.
RESTART_SECTIONS = ("daemon", "ledger", "logging", "http", "notify", "packs")


@dataclass(frozen=True, slots=True)
class ReloadResult:
    changed_jobs: list[str]
    restart_needed: list[str]


def describe(plan: JobPlan) -> tuple[object, ...]:
    return (
        plan.schedule,
        plan.enabled,
        plan.timeout,
        plan.cancel_grace,
        plan.after,
        plan.on_missed,
        plan.execution,
    )


def diff(
    old: Config, new: Config, old_plans: dict[str, JobPlan], new_plans: dict[str, JobPlan]
) -> ReloadResult:
    changed = [
        n
        for n in new_plans
        if n not in old_plans or describe(new_plans[n]) != describe(old_plans[n])
    ]
    restart = []
    for section in RESTART_SECTIONS:
        a, b = getattr(old, section), getattr(new, section)
        if a == b:
            continue
        if isinstance(a, msgspec.Struct):
            restart += [
                f"{section}.{name}"
                for name in a.__struct_fields__
                if getattr(a, name) != getattr(b, name)
            ]
        else:
            restart.append(section)
    return ReloadResult(changed_jobs=changed, restart_needed=restart)


def plan_reload(
    load: Callable[[], Config],
    old: Config,
    specs: Sequence[JobSpec],
    old_plans: dict[str, JobPlan],
) -> tuple[Config, dict[str, JobPlan], ReloadResult]:
    """Load and validate the new configuration; raises SyncdError (ConfigError) when bad."""
    new = load()
    plans = plan_jobs(specs, new, os.environ)
    return new, plans, diff(old, new, old_plans, plans)
