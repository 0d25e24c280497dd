"""Repository replication: a parent and its child repositories keep one fleet's job data.

The repository is the state store itself (`syncd.ledger.schema`): run records, holds, notes
and job definitions, each versioned by a hybrid logical clock and its origin, with a change
log in commit order. `store` serves and applies batches under per-peer cursors; `cycle` runs
SynchronizeJobData (pull, consolidate, push) over any `Peer`; `bundle` carries the same
batches as files for disconnected children.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from syncd._exports import public_names

if TYPE_CHECKING:
    from syncd.replication.hlc import Hlc
    from syncd.replication.model import Change, ChangePage, RepoInfo, Version
    from syncd.replication.store import SqlRepository

__all__ = ["Change", "ChangePage", "Hlc", "RepoInfo", "SqlRepository", "Version"]

__getattr__ = public_names(
    __name__,
    {
        "hlc": ("Hlc",),
        "model": ("Change", "ChangePage", "RepoInfo", "Version"),
        "store": ("SqlRepository",),
    },
)
