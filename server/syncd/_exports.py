"""Package faces that import on first use.

The concept packages depend on each other in both directions at module level (a run reports
events; the metrics read the runs), so a package's `__init__` cannot import its modules eagerly
without making import order matter. Each `__init__` names its public surface in `__all__` (and
under TYPE_CHECKING, for the type checker) and resolves a name from its module when first asked.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def public_names(package: str, modules: Mapping[str, tuple[str, ...]]) -> Callable[[str], object]:
    """A module `__getattr__` for `package`: each name of `modules[m]` comes from `package.m`."""
    where = {name: f"{package}.{module}" for module, names in modules.items() for name in names}

    def lookup(name: str) -> object:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(where[name]), name)

    return lookup
