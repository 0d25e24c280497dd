"""What the HTTP edge reaches of the daemon: the run service and the objects the gRPC edge uses."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from syncd.beans.jobbeans import JobBeans
from syncd.beans.registry import BeanRegistry
from syncd.clock import Clock
from syncd.config import HttpConfig
from syncd.ledger.audit import AuditEntry
from syncd.ledger.model import RunLedger
from syncd.observability.events import EventHub
from syncd.observability.loghub import LogHub
from syncd.security import Guard
from syncd.service.runservice import RunService

Auditor = Callable[[AuditEntry], Awaitable[bool]]


@dataclass(frozen=True, slots=True, kw_only=True)
class WebPlane:
    config: HttpConfig
    registry: BeanRegistry
    jobs: JobBeans
    service: RunService
    ledger: RunLedger
    log_hub: LogHub
    events: EventHub
    clock: Clock
    started_at: datetime
    guard: Guard
    audit: Auditor | None = None  # where state changes and refusals are recorded
    # The repository's replication state (None: the ledger is in memory, no repository).
    replication: Callable[[], Awaitable[dict[str, Any]]] | None = None
