"""The composition root: configuration checks at start-up, job packs, the daemon that wires
the packages together, reload and the instance lock. Only `syncd.__main__` and tests use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from syncd._exports import public_names

if TYPE_CHECKING:
    from syncd.app.daemon import Daemon
    from syncd.app.packs import discover, pack_context, seed_demo_data
    from syncd.app.startup import one_line, starting, validate

__all__ = [
    "Daemon",
    "discover",
    "one_line",
    "pack_context",
    "seed_demo_data",
    "starting",
    "validate",
]

__getattr__ = public_names(
    __name__,
    {
        "daemon": ("Daemon",),
        "startup": ("one_line", "starting", "validate"),
        "packs": ("discover", "pack_context", "seed_demo_data"),
    },
)
