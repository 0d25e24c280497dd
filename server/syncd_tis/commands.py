"""The pack's `syncd` subcommands: `db init` and `demo-data`.

`register_commands(subparsers)` adds them to the daemon's argument parser; each subcommand
sets `func(args, ctx) -> int`, called with the tis pack's PackContext.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from sqlalchemy import Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from syncd.job import PackContext
from syncd_tis._db import TisError, make_engine
from syncd_tis._schema import create_schema
from syncd_tis._settings import TisSettings


def register_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add `db init` and `demo-data` to the `syncd` command line."""
    db = subparsers.add_parser("db", help="the TIS database", description="The TIS database.")
    db_commands = db.add_subparsers(dest="db_command", metavar="COMMAND", required=True)
    init = db_commands.add_parser(
        "init",
        help="create the TCS tables that do not exist yet",
        description=(
            "Create the TCS tables the jobs need, for the embedded demo database or a test"
            " database. Existing tables are left exactly as they are."
        ),
    )
    _url_option(init)
    init.set_defaults(func=db_init)

    demo = subparsers.add_parser(
        "demo-data",
        help="fill an empty TIS database with a synthetic dataset",
        description=(
            "Generate a deterministic synthetic dataset (same persons and seed, same day: same"
            " rows) into an empty database; creates the tables first."
        ),
    )
    demo.add_argument("--persons", type=_positive_int, required=True, help="how many persons")
    demo.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    _url_option(demo)
    demo.set_defaults(func=demo_data)


def _url_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        help="SQLAlchemy database URL (default: the pack's source_url, else the embedded file)",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _engine(args: argparse.Namespace, ctx: PackContext) -> Engine:
    # Not through _pack.settings_from: the pack module imports this one to declare its commands.
    settings = TisSettings() if ctx.settings is None else ctx.settings
    if not isinstance(settings, TisSettings):
        raise TypeError(f"the tis pack expects TisSettings, got {type(settings).__name__}")
    settings = settings.resolved(ctx.state_dir)
    url = args.url or settings.url
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise TisError(f"not a database URL: {url!r}") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        ctx.state_dir.mkdir(parents=True, exist_ok=True)
    return make_engine(url, settings)


def _where(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _fail(message: str) -> int:
    sys.stderr.write(f"error: {message}\n")
    return 1


def db_init(args: argparse.Namespace, ctx: PackContext) -> int:
    """`syncd db init [--url URL]`."""
    try:
        engine = _engine(args, ctx)
    except TisError as exc:
        return _fail(str(exc))
    try:
        created, kept = create_schema(engine)
    except SQLAlchemyError as exc:
        return _fail(f"cannot create tables in {_where(engine)}: {exc}")
    finally:
        engine.dispose()
    sys.stdout.write(
        f"{_where(engine)}: created {len(created)} table(s)"
        + (f" ({', '.join(created)})" if created else "")
        + f"; {len(kept)} existed already\n"
    )
    return 0


def demo_data(args: argparse.Namespace, ctx: PackContext) -> int:
    """`syncd demo-data --persons N [--seed S] [--url URL]`."""
    try:
        engine = _engine(args, ctx)
    except TisError as exc:
        return _fail(str(exc))
    started = time.monotonic()
    try:
        from syncd_tis._demo import generate  # only here: the daemon registers these commands

        create_schema(engine)
        summary = generate(engine, persons=args.persons, seed=args.seed)
    except TisError as exc:
        return _fail(f"{_where(engine)}: {exc}")
    except SQLAlchemyError as exc:
        return _fail(f"cannot write demo data to {_where(engine)}: {exc}")
    finally:
        engine.dispose()
    counts = ", ".join(f"{name} {count:,}" for name, count in summary.rows.items())
    sys.stdout.write(
        f"{_where(engine)}: {summary.persons:,} persons (seed {args.seed}) in"
        f" {time.monotonic() - started:.1f} s: {counts}\n"
    )
    return 0
