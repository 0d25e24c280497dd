"""`syncd` / `python -m syncd`: the daemon's command line.

Exit status: 0 clean stop, 1 unexpected failure, 2 bad usage or configuration, 3 another daemon
holds the state directory.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import structlog

from syncd import __version__
from syncd.config import Config, load_config, with_overrides
from syncd.daemon import Daemon
from syncd.errors import ConfigError, InstanceLockedError, PackLoadError, SyncdError
from syncd.job import JobPack
from syncd.loghub import LogHub
from syncd.logs import LEVELS, configure_logging
from syncd.packs import build_jobs, discover, pack_context, seed_demo_data

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG, EXIT_LOCKED = 0, 1, 2, 3


def _global_parser(add_help: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="syncd",
        description="The syncd management daemon. Without a command it serves.",
        add_help=add_help,
    )
    parser.add_argument("--config", type=Path, help="TOML configuration file")
    parser.add_argument("--state-dir", type=Path, help="state directory (env SYNCD_STATE_DIR)")
    parser.add_argument("--address", help="listen address, e.g. unix:/path (env SYNCD_ADDRESS)")
    parser.add_argument("--log-level", choices=sorted(LEVELS), help="log level")
    parser.add_argument("--version", action="version", version=f"syncd {__version__}")
    return parser


def _full_parser(packs: list[JobPack]) -> argparse.ArgumentParser:
    parser = _global_parser(add_help=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = sub.add_parser("serve", help="run the daemon in the foreground (the default)")
    serve.add_argument(
        "--seed-demo",
        action="store_true",
        help="first create each job pack's demo data, where it has none yet",
    )
    sub.add_parser("check-config", help="validate the configuration and job packs, then exit")
    for pack in packs:
        if pack.commands is not None:
            pack.commands(sub)
    return parser


def _load(args: argparse.Namespace) -> Config:
    config = load_config(args.config)
    return with_overrides(
        config,
        state_dir=args.state_dir.expanduser() if args.state_dir else None,
        address=args.address,
        log_level=args.log_level,
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    early, _ = _global_parser(add_help=False).parse_known_args(argv)
    try:
        config = _load(early)
        packs = discover(config)
    except (ConfigError, PackLoadError) as exc:
        print(f"syncd: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    args = _full_parser(packs).parse_args(argv)
    command = args.command or "serve"
    hub = LogHub()
    fmt = config.logging.format
    writer = configure_logging(
        config.daemon.log_level,
        json_output=None if fmt == "auto" else fmt == "json",
        file=config.log_file if command == "serve" else None,
        max_bytes=config.logging.max_bytes,
        backups=config.logging.backups,
        hub=hub,
    )
    log = structlog.get_logger("syncd.main")
    try:
        if hasattr(args, "func"):
            owner = next(p for p in packs if p.commands is not None and _owns(p, args))
            result: int = args.func(args, pack_context(owner, config, config.daemon.state_dir))
            return result
        built = build_jobs(packs, config, config.daemon.state_dir)
        if command == "check-config":
            jobs = [spec.name for _, _, specs in built for spec in specs]
            print(f"configuration ok: {len(packs)} pack(s), jobs: {', '.join(jobs) or 'none'}")
            return EXIT_OK
        if getattr(args, "seed_demo", False):
            seed_demo_data(built, log.info)
        daemon = Daemon(
            config,
            [spec for _, _, specs in built for spec in specs],
            log_hub=hub,
            reload_config=lambda: _load(early),
        )
        return asyncio.run(daemon.serve())
    except InstanceLockedError as exc:
        print(f"syncd: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    except (ConfigError, PackLoadError) as exc:
        print(f"syncd: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except SyncdError as exc:
        log.error("daemon.failed", error=str(exc))
        print(f"syncd: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        if writer is not None:
            writer.close()


def _owns(pack: JobPack, args: Any) -> bool:
    """Whether `args.func` came from `pack`'s commands (its module belongs to the pack's)."""
    func_module = getattr(args.func, "__module__", "") or ""
    pack_module = getattr(pack.build, "__module__", "") or ""
    return func_module.split(".")[:2] == pack_module.split(".")[:2]


if __name__ == "__main__":
    raise SystemExit(main())
