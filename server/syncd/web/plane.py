"""What the HTTP edge reaches of the daemon: the run service and the objects the gRPC edge uses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from syncd.clock import Clock
from syncd.config import HttpConfig
from syncd.events import EventHub
from syncd.jobbeans import JobBeans
from syncd.ledger import RunLedger
from syncd.loghub import LogHub
from syncd.registry import BeanRegistry
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
