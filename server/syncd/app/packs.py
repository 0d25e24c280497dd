"""Finding job packs: the `syncd.jobs` entry-point group and `module:attr` references."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from syncd.config import Config, Settings, load_table
from syncd.errors import ConfigError, PackLoadError
from syncd.job import JobPack, JobSpec, PackContext

ENTRY_POINT_GROUP = "syncd.jobs"


def resolve(ref: str) -> JobPack:
    """The JobPack named by `module:attr` (the attribute may also be a function returning one)."""
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise PackLoadError(ref, "expected 'module:attr'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PackLoadError(ref, f"cannot import {module_name}: {exc}") from exc
    try:
        obj: Any = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise PackLoadError(ref, f"{module_name} has no attribute {attr!r}") from None
    return _as_pack(ref, obj)


def _as_pack(ref: str, obj: Any) -> JobPack:
    if isinstance(obj, JobPack):
        return obj
    if callable(obj):
        made = obj()
        if isinstance(made, JobPack):
            return made
    raise PackLoadError(ref, f"expected a syncd.job.JobPack, got {type(obj).__name__}")


def discover(config: Config) -> list[JobPack]:
    """Every pack to load: installed entry points (unless disabled), then `daemon.packs`."""
    packs: list[JobPack] = []
    if config.daemon.entry_points:
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            try:
                packs.append(_as_pack(ep.value, ep.load()))
            except ImportError as exc:
                raise PackLoadError(ep.value, f"entry point {ep.name!r}: {exc}") from exc
    packs.extend(resolve(ref) for ref in config.daemon.packs)
    if config.replication.name:
        from syncd.app.replication import replication_pack  # only a cluster member loads it

        packs.append(replication_pack(config))
    seen: set[str] = set()
    for pack in packs:
        if pack.name in seen:
            raise PackLoadError(pack.name, "two packs share this name")
        seen.add(pack.name)
    return packs


def pack_context(pack: JobPack, config: Config, state_dir: Path) -> PackContext:
    """The pack's context, its settings validated from `[packs.<name>]`."""
    table = config.packs.get(pack.name, {})
    settings = None
    if pack.settings_type is not None:
        if not (isinstance(pack.settings_type, type) and issubclass(pack.settings_type, Settings)):
            raise PackLoadError(pack.name, "settings_type must subclass syncd.config.Settings")
        settings = load_table(pack.settings_type, table, f"packs.{pack.name}")
    elif table:
        raise ConfigError(f"packs.{pack.name}", "this pack takes no settings")
    return PackContext(state_dir=state_dir, settings=settings)


def build_jobs(
    packs: list[JobPack], config: Config, state_dir: Path
) -> list[tuple[JobPack, PackContext, list[JobSpec]]]:
    """Each pack with its context and job specs; settings for unknown packs are an error."""
    names = {p.name for p in packs}
    for name in config.packs:
        if name not in names:
            loaded = ", ".join(sorted(names)) or "none"
            raise ConfigError(f"packs.{name}", f"no job pack named {name!r} is loaded ({loaded})")
    built = []
    for pack in packs:
        ctx = pack_context(pack, config, state_dir)
        built.append((pack, ctx, list(pack.build(ctx))))
    return built


def seed_demo_data(
    built: list[tuple[JobPack, PackContext, list[JobSpec]]],
    log: Callable[..., Any],
) -> None:
    """Run every pack's demo seeding (each pack makes it idempotent)."""
    for pack, ctx, _ in built:
        if pack.seed_demo is not None:
            log("pack.seed_demo", pack=pack.name)
            pack.seed_demo(ctx)
