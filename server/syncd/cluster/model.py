"""What the cluster tells the rest of the daemon: replicas, and runs whose leases expired."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicaInfo:
    """One member of the cluster, as the database last heard of it."""

    name: str
    host: str
    pid: int
    version: str
    started_at: datetime
    heartbeat_at: datetime
    heartbeat_age: float  # seconds, on the database's clock
    left_at: datetime | None
    running: tuple[tuple[str, str], ...]  # (bean, run id) it holds claims for
    state: str  # "live", "left" (stopped cleanly) or "lost" (no heartbeat within a lease)


@dataclass(frozen=True, slots=True, kw_only=True)
class Reaped:
    """A claim whose lease expired (or whose replica restarted), taken back by this replica.

    `marked` is True when this replica's update recorded the run `interrupted` (only one
    replica's does; the run may also have been recorded ended already)."""

    bean: str
    run_id: str
    replica: str
    token: int
    marked: bool
