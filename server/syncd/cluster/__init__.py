"""Cluster mode: replicas of one deployment sharing a PostgreSQL database.

The database holds the ledger, the holds and the coordination state: each bean's run claim (a
lease renewed by heartbeat, with a fencing token), each scheduled slot claimed once, and the
member replicas. PostgreSQL's transactions and row locks do the coordinating; nothing here
is home-made consensus.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from syncd._exports import public_names

if TYPE_CHECKING:
    from syncd.cluster._store import ClusterStore
    from syncd.cluster.claim import ClusterRunClaim
    from syncd.cluster.ledger import ClusterLedger
    from syncd.cluster.model import Reaped, ReplicaInfo

__all__ = ["ClusterLedger", "ClusterRunClaim", "ClusterStore", "Reaped", "ReplicaInfo"]

__getattr__ = public_names(
    __name__,
    {
        "_store": ("ClusterStore",),
        "claim": ("ClusterRunClaim",),
        "ledger": ("ClusterLedger",),
        "model": ("Reaped", "ReplicaInfo"),
    },
)
