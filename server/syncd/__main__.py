"""`syncd` / `python -m syncd`: the daemon's command line.

Exit status (one table, `EXIT_CODES`): 0 clean stop, 1 unexpected failure, 2 bad usage or
configuration, 3 the environment cannot host the daemon (an unusable path, a port in use, an
unusable ledger, another daemon holding the state directory). Every failure is one line on
stderr naming the key or path; never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from syncd import __version__
from syncd.app.packs import discover, pack_context, seed_demo_data
from syncd.app.startup import one_line, starting, validate
from syncd.config import Config, load_config, with_overrides
from syncd.cpuslice import set_thread_slice
from syncd.errors import (
    ConfigError,
    InstanceLockedError,
    PackLoadError,
    StartupEnvironmentError,
    SyncdError,
)
from syncd.job import JobPack
from syncd.observability.loghub import LogHub
from syncd.observability.logs import LEVELS, RotatingWriter, configure_logging

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG, EXIT_ENVIRONMENT = 0, 1, 2, 3
EXIT_LOCKED = EXIT_ENVIRONMENT  # another daemon holds the state directory

# First match wins: errors the daemon raises on purpose, by what the operator must fix.
EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (ConfigError, EXIT_CONFIG),
    (PackLoadError, EXIT_CONFIG),
    (InstanceLockedError, EXIT_ENVIRONMENT),
    (StartupEnvironmentError, EXIT_ENVIRONMENT),
    (SyncdError, EXIT_FAILURE),
)

# The argparse attribute naming the pack whose subcommand was chosen.
_PACK_ATTR = "syncd_pack"


def exit_code(exc: BaseException) -> int:
    return next((code for kind, code in EXIT_CODES if isinstance(exc, kind)), EXIT_FAILURE)


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
    _add_token_commands(sub)
    for pack in packs:
        if pack.commands is not None:
            _add_pack_commands(sub, pack, pack.commands)
    return parser


def _add_token_commands(sub: argparse._SubParsersAction[Any]) -> None:
    token = sub.add_parser("token", help="make a bearer token, or hash one, for [[auth.tokens]]")
    actions = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    for name, text in (
        ("new", "generate a token into --token-file (0600) and print its [[auth.tokens]] entry"),
        ("hash", "read a token on stdin and print its [[auth.tokens]] entry"),
    ):
        action = actions.add_parser(name, help=text, description=text)
        action.add_argument("--name", required=True, help="the token's name, as audited")
        action.add_argument(
            "--role", required=True, choices=("viewer", "operator", "admin"), help="its role"
        )
        if name == "new":
            action.add_argument(
                "--token-file", required=True, type=Path, help="new file to write the token to"
            )


def _token_command(args: argparse.Namespace) -> int:
    """`syncd token new|hash`: only the hash goes to stdout (and so into a config file)."""
    from syncd.config import TokenConfig
    from syncd.security import hash_token, new_token

    if args.token_command == "new":
        token = new_token()
        try:
            fd = os.open(args.token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise StartupEnvironmentError(str(args.token_file), exc.strerror or str(exc)) from None
        with os.fdopen(fd, "w") as fh:
            fh.write(token + "\n")
    else:
        token = sys.stdin.readline().strip()
        if not token:
            raise ConfigError("(stdin)", "expected the token on the first line")
    entry = TokenConfig(name=args.name, role=args.role, sha256=hash_token(token))
    print(f'[[auth.tokens]]\nname = "{entry.name}"\nrole = "{entry.role}"')
    print(f'sha256 = "{entry.sha256}"')
    return EXIT_OK


def _add_pack_commands(
    sub: argparse._SubParsersAction[Any], pack: JobPack, commands: Callable[[Any], None]
) -> None:
    """Let `pack` add its subcommands, and remember which pack each one belongs to."""
    before = set(sub.choices)
    try:
        commands(sub)
    except argparse.ArgumentError as exc:  # a command name another pack (or syncd) has
        raise PackLoadError(pack.name, f"its commands clash: {exc}") from None
    for name in set(sub.choices) - before:
        sub.choices[name].set_defaults(**{_PACK_ATTR: pack.name})


def _load(args: argparse.Namespace) -> Config:
    config = load_config(args.config)
    return with_overrides(
        config,
        state_dir=args.state_dir.expanduser() if args.state_dir else None,
        address=args.address,
        log_level=args.log_level,
    )


DAEMON_SWITCH_INTERVAL = 0.0005  # seconds


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    early, _ = _global_parser(add_help=False).parse_known_args(argv)
    try:
        config = _load(early)
        packs = discover(config)
        parser = _full_parser(packs)
    except SyncdError as exc:
        return _fail(exc)
    args = parser.parse_args(argv)
    command = args.command or "serve"
    if command == "token":
        try:
            return _token_command(args)
        except SyncdError as exc:
            return _fail(exc)
    try:
        return _run(command, args, early, config, packs)
    except Exception as exc:  # a bug or a pack's own failure too: one line on stderr
        return _fail(exc)


def _name_the_module_main() -> None:
    """Started by the `syncd` console script, this process's `__main__` is that script, and
    multiprocessing runs it again (as `__mp_main__`) in every job process the fork server
    starts, importing the daemon's command line there: 50-65 ms of CPU a job process, six
    times a short job's own. Given the spec of the module it runs, as `python -m syncd` gives
    it, the job processes leave it alone (multiprocessing skips a main named `*.__main__`)."""
    script = sys.modules.get("__main__")
    if script is None or getattr(script, "__spec__", None) is not None:
        return  # `python -m syncd`, or another program's main
    # The console script is `from syncd.__main__ import main` and a call of it.
    if getattr(script, "main", None) is main:
        script.__spec__ = importlib.util.find_spec(__name__)


def _fail(exc: BaseException) -> int:
    print(f"syncd: {one_line(exc)}", file=sys.stderr)
    return exit_code(exc)


def _run(
    command: str,
    args: argparse.Namespace,
    early: argparse.Namespace,
    config: Config,
    packs: list[JobPack],
) -> int:
    pack_name = getattr(args, _PACK_ATTR, None)
    hub = LogHub()
    fmt = config.logging.format

    def log_to(file: Path | None, *, cache: bool) -> RotatingWriter | None:
        return configure_logging(
            config.daemon.log_level,
            json_output=None if fmt == "auto" else fmt == "json",
            file=file,
            max_bytes=config.logging.max_bytes,
            backups=config.logging.backups,
            hub=hub,
            cache=cache,
        )

    # stdout only, and uncached so the serving configuration below reaches every logger:
    # nothing is created (not even the log file) until the configuration has passed.
    writer = log_to(None, cache=False)
    try:
        if pack_name is not None:
            owner = next(p for p in packs if p.name == pack_name)
            result: int = args.func(args, pack_context(owner, config, config.daemon.state_dir))
            return result
        validated = validate(config, packs, os.environ)
        if command == "check-config":
            jobs = ", ".join(spec.name for spec in validated.specs) or "none"
            print(f"configuration ok: {len(packs)} pack(s), jobs: {jobs}")
            return EXIT_OK
        # Owner-only files (ledger, log, job trees): the state directory may be made
        # traversable for other users' socket access ([auth] unix_roles).
        os.umask(0o077)
        with starting(f"logging.file: {config.log_file}"):
            writer = log_to(config.log_file, cache=True)
        # Only serving needs the servers (grpc, aiohttp): check-config and pack commands start
        # half a second sooner without them.
        from syncd.app.daemon import Daemon

        if getattr(args, "seed_demo", False):
            seed_demo_data(validated.built, structlog.get_logger("syncd.main").info)
        daemon = Daemon(
            config,
            validated.specs,
            log_hub=hub,
            reload_config=lambda: _load(early),
        )
        daemon.announce_login = True
        daemon.freeze_startup_heap = True
        _name_the_module_main()
        # The event loop shares the interpreter lock with the daemon's threads (the ledger's
        # writer, each run's relay): a thread busy in Python keeps it up to the switch
        # interval, 5 ms by default, which showed as the control plane's tail latency under
        # run load. Job processes come from the fork server, a fresh interpreter: theirs stays.
        sys.setswitchinterval(DAEMON_SWITCH_INTERVAL)
        # Before the daemon's threads start, so that they inherit it; the fork server (and so
        # every job process) and job threads go back to the kernel's default (see cpuslice).
        slice_us = config.daemon.cpu_slice_us
        structlog.get_logger("syncd.main").debug(
            "daemon.cpu_slice", asked_us=slice_us, taken=set_thread_slice(slice_us)
        )
        return asyncio.run(daemon.serve())
    except SyncdError as exc:
        if exit_code(exc) != EXIT_CONFIG:  # the log (file) keeps why a daemon did not start
            structlog.get_logger("syncd.main").error("daemon.failed", error=one_line(exc))
        raise
    except Exception:
        # Not one of ours: a bug. Its traceback goes to the log, never to the operator's stderr.
        structlog.get_logger("syncd.main").error("daemon.failed", exc_info=True)
        raise
    finally:
        if writer is not None:
            writer.close()


if __name__ == "__main__":
    raise SystemExit(main())
