"""Packs that add `syncd` subcommands: one that works, one whose command clashes with serve."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from syncd.config import Settings
from syncd.job import JobPack, JobSpec, PackContext


class GreeterSettings(Settings, frozen=True):
    greeting: str = "hello"


def _no_jobs(ctx: PackContext) -> Sequence[JobSpec]:
    return ()


def greet(args: argparse.Namespace, ctx: PackContext) -> int:
    """Prints the pack's own setting, the state directory and its argument: the wiring's proof."""
    settings: GreeterSettings = ctx.settings
    sys.stdout.write(f"{settings.greeting} {args.name} from {ctx.state_dir}\n")
    return 7 if args.name == "seven" else 0


def _greeter_commands(subparsers: Any) -> None:
    parser = subparsers.add_parser("greet", help="say hello")
    parser.add_argument("name")
    parser.set_defaults(func=greet)


def _clashing_commands(subparsers: Any) -> None:
    subparsers.add_parser("serve", help="a second serve").set_defaults(func=greet)


GREETER = JobPack(
    name="greeter", build=_no_jobs, settings_type=GreeterSettings, commands=_greeter_commands
)
CLASHING = JobPack(name="clashing", build=_no_jobs, commands=_clashing_commands)
