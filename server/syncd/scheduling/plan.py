"""The job plan: each job's timetable entry, limits and dependencies, validated together.

Sources of a job's schedule, first found wins: the old service's APPLICATION_CRON_<JOB>
environment variable (as in the old deployment, the environment overrides files), the
`[jobs.<Name>]` table (at / every / cron), then the job's default.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from graphlib import CycleError, TopologicalSorter

from syncd.config import Config, JobConfig
from syncd.configvalues import shown
from syncd.errors import ConfigError
from syncd.job import JobSpec
from syncd.scheduling.timetable import Cron, Schedule, ScheduleError, parse_at, parse_every


@dataclass(frozen=True, slots=True, kw_only=True)
class JobPlan:
    name: str
    schedule: Schedule | None
    schedule_source: str
    enabled: bool
    timeout: float
    cancel_grace: float
    after: tuple[str, ...]
    on_missed: str
    execution: str


def _schedule(
    spec: JobSpec, cfg: JobConfig, env: Mapping[str, str], key: str
) -> tuple[Schedule | None, str]:
    path = f"jobs.{key}"
    if spec.cron_env and env.get(spec.cron_env, "").strip():
        try:
            return _firing(Cron.parse(env[spec.cron_env])), f"env {spec.cron_env}"
        except ScheduleError as exc:
            raise ConfigError(f"env {spec.cron_env}", str(exc)) from None
    try:
        if cfg.at is not None:
            return parse_at(cfg.at), f"{path}.at"
        if cfg.every is not None:
            return parse_every(cfg.every), f"{path}.every"
        if cfg.cron is not None:
            return _firing(Cron.parse(cfg.cron)), f"{path}.cron"
    except ScheduleError as exc:
        key = next(k for k in ("at", "every", "cron") if getattr(cfg, k) is not None)
        raise ConfigError(f"{path}.{key}", str(exc)) from None
    if spec.default_at:
        return parse_at(spec.default_at), "default"
    return None, "none"


def _firing(cron: Cron) -> Cron:
    """`cron`, once it is known to fire at all (31 February never comes): ScheduleError if not."""
    cron.next_after(_MIDNIGHT)
    return cron


def plan_jobs(
    specs: Sequence[JobSpec], config: Config, env: Mapping[str, str]
) -> dict[str, JobPlan]:
    """Every job's plan, in timetable order; ConfigError names the offending key."""
    names = {s.name for s in specs}
    # The old service's names (aliases) are accepted for the jobs they now name, as in every
    # command: a runbook's config can say `[jobs.PersonElasticSearchSyncJob]`.
    canonical = {alias: s.name for s in specs for alias in s.aliases} | {n: n for n in names}
    tables = _tables_by_job(config.jobs, canonical)
    plans: dict[str, JobPlan] = {}
    for spec in specs:
        key, cfg = tables.get(spec.name, (spec.name, JobConfig()))
        schedule, source = _schedule(spec, cfg, env, key)
        if cfg.after is not None:
            for dep in cfg.after:
                if dep not in canonical:
                    raise ConfigError(f"jobs.{key}.after", f"unknown job {shown(dep)}")
                if canonical[dep] == spec.name:
                    raise ConfigError(f"jobs.{key}.after", "a job cannot depend on itself")
            after = tuple(dict.fromkeys(canonical[dep] for dep in cfg.after))
        else:  # defaults may name jobs of a pack that is not loaded: keep only the present ones
            after = tuple(d for d in spec.default_after if d in names)
        plans[spec.name] = JobPlan(
            name=spec.name,
            schedule=schedule,
            schedule_source=source,
            # A job that cannot run here (no broker, …) is not scheduled either.
            enabled=cfg.enabled and not spec.disabled_reason,
            timeout=cfg.timeout,
            cancel_grace=cfg.cancel_grace
            if cfg.cancel_grace is not None
            else config.daemon.cancel_grace,
            after=after,
            on_missed=cfg.on_missed,
            execution=cfg.execution or config.daemon.execution,
        )
    _refuse_cycles(plans)
    ordered = sorted(plans.values(), key=_timetable_key)
    return {p.name: p for p in ordered}


def _tables_by_job(
    tables: Mapping[str, JobConfig], canonical: Mapping[str, str]
) -> dict[str, tuple[str, JobConfig]]:
    """Each `[jobs.<key>]` table under the job it names, with the key it was written as."""
    found: dict[str, tuple[str, JobConfig]] = {}
    for key, cfg in tables.items():
        name = canonical.get(key)
        if name is None:
            known = ", ".join(sorted(set(canonical.values()))) or "none"
            raise ConfigError(
                f"jobs.{key}", f"no job named {shown(key)} is loaded (known: {known})"
            )
        if name in found:
            raise ConfigError(
                f"jobs.{key}",
                f"names the same job as jobs.{found[name][0]} ({name}); keep one table",
            )
        found[name] = (key, cfg)
    return found


_MIDNIGHT = datetime(2000, 1, 1, tzinfo=UTC)


def _timetable_key(plan: JobPlan) -> tuple[int, float, str]:
    if plan.schedule is None:
        return (1, 0.0, plan.name)
    first = plan.schedule.next_after(_MIDNIGHT - _TICK)
    return (0, (first - _MIDNIGHT).total_seconds() % 86400, plan.name)


_TICK = datetime(2000, 1, 1, 0, 0, 1, tzinfo=UTC) - _MIDNIGHT


def _refuse_cycles(plans: Mapping[str, JobPlan]) -> None:
    try:
        TopologicalSorter({name: plan.after for name, plan in plans.items()}).prepare()
    except CycleError as exc:
        # graphlib lists each job before one that waits for it, the first repeated at the end;
        # the message reads the other way ("A → B": A waits for B), from the first job in plan
        # order, so the same config always names the same key.
        waits_for = list(reversed(exc.args[1][:-1]))
        position = list(plans)
        start = min(range(len(waits_for)), key=lambda i: position.index(waits_for[i]))
        cycle = [*waits_for[start:], *waits_for[:start]]
        raise ConfigError(
            f"jobs.{cycle[0]}.after", "dependency cycle: " + " → ".join([*cycle, cycle[0]])
        ) from None


def dependants(plans: Mapping[str, JobPlan], name: str) -> list[str]:
    """Every job that depends on `name`, directly or not, in a runnable order."""
    found: set[str] = set()
    frontier = [name]
    while frontier:
        current = frontier.pop()
        for plan in plans.values():
            if current in plan.after and plan.name not in found:
                found.add(plan.name)
                frontier.append(plan.name)
    return run_order(plans, found)


def run_order(plans: Mapping[str, JobPlan], names: Iterable[str]) -> list[str]:
    """`names` ordered so each job comes after its prerequisites; timetable order otherwise."""
    wanted = set(names)
    position = {n: i for i, n in enumerate(plans)}
    graph: TopologicalSorter[str] = TopologicalSorter(
        {n: [d for d in plans[n].after if d in wanted] for n in wanted}
    )
    graph.prepare()  # plans are cycle-free: plan_jobs refused cycles
    order: list[str] = []
    ready: list[str] = []
    while graph.is_active():
        ready.extend(graph.get_ready())
        # Of all jobs whose prerequisites are done, the earliest in the timetable goes next.
        nxt = min(ready, key=position.__getitem__)
        ready.remove(nxt)
        order.append(nxt)
        graph.done(nxt)
    return order


def prerequisites(plans: Mapping[str, JobPlan], name: str) -> tuple[str, ...]:
    return plans[name].after
