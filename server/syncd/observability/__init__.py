"""What the daemon tells about itself: structured logs and the live tail, run events,
Prometheus metrics and the webhook notifier.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from syncd._exports import public_names

if TYPE_CHECKING:
    from syncd.observability.events import Event, EventHub, EventKind
    from syncd.observability.loghub import LogHub, LogLine, line_filter
    from syncd.observability.logs import configure_logging
    from syncd.observability.metrics import Metrics
    from syncd.observability.notify import WebhookNotifier

__all__ = [
    "Event",
    "EventHub",
    "EventKind",
    "LogHub",
    "LogLine",
    "Metrics",
    "WebhookNotifier",
    "configure_logging",
    "line_filter",
]

__getattr__ = public_names(
    __name__,
    {
        "logs": ("configure_logging",),
        "loghub": ("LogHub", "LogLine", "line_filter"),
        "events": ("Event", "EventHub", "EventKind"),
        "metrics": ("Metrics",),
        "notify": ("WebhookNotifier",),
    },
)
