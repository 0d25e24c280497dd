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
from syncd.ledger.model import RunLedger
from syncd.observability.events import EventHub
from syncd.observability.loghub import LogHub
from syncd.service.runservice import RunService


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
    # The repository's replication state (None: the ledger is in memory, no repository).
    replication: Callable[[], Awaitable[dict[str, Any]]] | None = None
