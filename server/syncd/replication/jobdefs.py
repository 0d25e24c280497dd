"""Job definitions as replicated records: the parent decides when and whether each job runs.

A parent (a repository whose `[replication]` table lists `children`) publishes the
`[jobs.<Name>]` tables of its configuration as `job` records — the timetable entry (at /
every / cron), `enabled`, `after`, `timeout` and `on_missed` — at start and on each reload,
writing only what changed and a tombstone for a table it no longer has. How a host runs a job
(`execution`, `cancel_grace`) stays each repository's own, and so do the replication beans'
tables: every repository schedules its own SynchronizeJobData, Export and Import.

A child's plan is its own configuration with each received definition replacing the same
keys of its table. A definition that does not validate, names a job the child does not have
or makes the plan invalid (a dependency cycle) is refused: the job keeps the definition
accepted before (or the child's own table), and the refusal is reported. Pure functions over
the configuration; the repository is read and written by the caller.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import msgspec

from syncd.config import Config, JobConfig
from syncd.configvalues import load_table
from syncd.errors import ConfigError
from syncd.job import JobSpec
from syncd.replication.model import JOB, Change, Version
from syncd.scheduling.plan import JobPlan, plan_jobs

# The keys of a `[jobs.<Name>]` table a parent decides.
DEFINED = ("at", "every", "cron", "enabled", "after", "timeout", "on_missed")
# The timetable keys: a definition giving none of them still replaces the child's.
TIMETABLE = ("at", "every", "cron")


class JobStore(Protocol):
    """What publishing needs of the repository (`SqlRepository` is one)."""

    def records_of(self, type_: str) -> list[Change]: ...
    def write(
        self, type_: str, id_: str, body: dict[str, Any], *, deleted: bool = False
    ) -> Version: ...


def is_parent(config: Config) -> bool:
    """The rule for who publishes: a named repository that lists children."""
    return bool(config.replication.name and config.replication.children)


def definition(cfg: JobConfig) -> dict[str, Any]:
    """The published part of one job's table (JSON-able; absent timetable keys left out)."""
    out: dict[str, Any] = {k: getattr(cfg, k) for k in TIMETABLE if getattr(cfg, k) is not None}
    out.update(enabled=cfg.enabled, timeout=cfg.timeout, on_missed=cfg.on_missed)
    if cfg.after is not None:
        out["after"] = list(cfg.after)
    return out


def _canonical(specs: Sequence[JobSpec]) -> dict[str, str]:
    return {alias: s.name for s in specs for alias in s.aliases} | {s.name: s.name for s in specs}


def published(config: Config, specs: Sequence[JobSpec], own: Collection[str]) -> dict[str, str]:
    """Job name -> the definition text a parent publishes: one per `[jobs.<Name>]` table,
    under the job's canonical name, except the jobs in `own` (each repository's own)."""
    canonical = _canonical(specs)
    out: dict[str, str] = {}
    for key, cfg in config.jobs.items():
        name = canonical.get(key, key)
        if name not in own:
            out[name] = json.dumps(definition(cfg), sort_keys=True)
    return out


def publish(store: JobStore, wanted: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """Write the definitions that differ from the stored ones and a tombstone for each stored
    one no longer wanted; returns (written, removed). Runs on the repository's writer."""
    stored = {c.id: c for c in store.records_of(JOB)}
    written: list[str] = []
    removed: list[str] = []
    for name, text in sorted(wanted.items()):
        have = stored.get(name)
        if have is None or have.deleted or have.body.get("body") != text:
            store.write(JOB, name, {"body": text})
            written.append(name)
    for name, have in sorted(stored.items()):
        if name not in wanted and not have.deleted:
            store.write(JOB, name, {}, deleted=True)
            removed.append(name)
    return written, removed


def received(records: Sequence[Change]) -> dict[str, str]:
    """The live definitions among the stored `job` records: name -> definition text."""
    return {c.id: str(c.body.get("body", "")) for c in records if c.type == JOB and not c.deleted}


@dataclass(frozen=True, slots=True)
class Overlay:
    """A child's plan under its parent's definitions, and what was refused on the way."""

    config: Config
    plans: dict[str, JobPlan]
    accepted: dict[str, str]  # name -> definition text in force
    refused: dict[str, str] = field(default_factory=dict)  # name -> why


def _decode(name: str, text: str) -> dict[str, Any]:
    """The definition's keys, validated as a `[jobs.<Name>]` table would be."""
    where = f"jobs.{name} (from the parent)"
    try:
        raw = json.loads(text)
    except ValueError:
        raise ConfigError(where, "not a JSON object") from None
    if not isinstance(raw, dict):
        raise ConfigError(where, "not a JSON object")
    unknown = sorted(set(raw) - set(DEFINED))
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}", "not a key a parent decides")
    load_table(JobConfig, raw, where)  # types, bounds, one of at / every / cron
    return {k: raw.get(k) for k in TIMETABLE} | {k: raw[k] for k in DEFINED[3:] if k in raw}


def _with_definition(config: Config, key: str, fields: Mapping[str, Any]) -> Config:
    mine = config.jobs.get(key, JobConfig())
    table = {k: v for k, v in msgspec.structs.asdict(mine).items() if v is not None}
    table = {k: list(v) if isinstance(v, tuple) else v for k, v in table.items()}
    table.update({k: v for k, v in fields.items()})
    table = {k: v for k, v in table.items() if v is not None}
    cfg = load_table(JobConfig, table, f"jobs.{key} (from the parent)")
    return msgspec.structs.replace(config, jobs={**config.jobs, key: cfg})


def overlay(
    config: Config,
    specs: Sequence[JobSpec],
    definitions: Mapping[str, str],
    *,
    previous: Mapping[str, str] | None = None,
    own: Collection[str] = (),
    env: Mapping[str, str] | None = None,
) -> Overlay:
    """`config` with each definition applied in name order; one that is refused leaves the job
    with its `previous` accepted definition, if any. ConfigError only if `config` itself is
    bad (as plan_jobs raises it)."""
    env = os.environ if env is None else env
    canonical = _canonical(specs)
    key_of = {canonical[k]: k for k in config.jobs if k in canonical}
    current = config
    plans = plan_jobs(specs, current, env)
    accepted: dict[str, str] = {}
    refused: dict[str, str] = {}
    for name, text in sorted(definitions.items()):
        if name not in plans:
            refused[name] = f"no job named {name!r} here"
            continue
        if name in own:
            refused[name] = f"{name} is scheduled by each repository itself"
            continue
        tries = [text]
        if previous and previous.get(name) not in (None, text):
            tries.append(previous[name])
        for i, attempt in enumerate(tries):
            try:
                fields = _decode(name, attempt)
                candidate = _with_definition(current, key_of.get(name, name), fields)
                candidate_plans = plan_jobs(specs, candidate, env)
            except ConfigError as exc:
                if i == 0:
                    refused[name] = f"{exc.key_path}: {exc.problem}"
                continue
            current, plans = candidate, candidate_plans
            accepted[name] = attempt
            break
    return Overlay(current, _sourced(plans, accepted), accepted, refused)


def _sourced(plans: dict[str, JobPlan], accepted: Mapping[str, str]) -> dict[str, JobPlan]:
    """Plans whose timetable came from the parent say so (`syncctl status`, the console)."""
    return {
        n: replace(p, schedule_source=f"parent: {p.schedule_source}")
        if n in accepted and p.schedule_source.startswith("jobs.")
        else p
        for n, p in plans.items()
    }
