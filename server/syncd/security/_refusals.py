"""How many refusals of one address the audit trail takes: a caller guessing tokens (or
posting writes it may not make) must not be able to fill the trail or the ledger's disk.

Each address (its host, not its port: a new connection is a new port) may have
`per_minute` refusals audited one by one in any minute; the rest of that minute are counted,
and the count rides on the next refusal audited from that address. Nothing is dropped
silently: the first refusal held back logs `security.refusals_throttled`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

log = structlog.get_logger("syncd.security")

AUDITED_PER_MINUTE = 30
_WINDOW = 60.0
_MAX_ADDRESSES = 10_000  # windows kept at once; older ones are forgotten first


@dataclass(slots=True)
class _Window:
    opened: float
    audited: int = 0
    held_back: int = 0


class RefusalBudget:
    """Whether a refusal from an address is audited one by one, per minute and address."""

    def __init__(
        self,
        per_minute: int = AUDITED_PER_MINUTE,  # at least 1
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._per_minute = per_minute
        self._monotonic = monotonic
        self._windows: dict[str, _Window] = {}

    def admit(self, address: str) -> tuple[bool, int]:
        """(audit this refusal, how many refusals of this address were held back before it)."""
        host = host_of(address)
        now = self._monotonic()
        window = self._windows.get(host)
        if window is None or now - window.opened >= _WINDOW:
            # A new minute's first refusal is audited, with the count the last one held back.
            held_back = window.held_back if window is not None else 0
            self._forget_old(now)
            self._windows[host] = _Window(now, audited=1)
            return True, held_back
        if window.audited < self._per_minute:
            window.audited += 1
            return True, 0
        if not window.held_back:
            log.warning(
                "security.refusals_throttled", address=host, audited_per_minute=self._per_minute
            )
        window.held_back += 1
        return False, 0

    def _forget_old(self, now: float) -> None:
        if len(self._windows) < _MAX_ADDRESSES:
            return
        for host, window in list(self._windows.items()):
            if now - window.opened >= _WINDOW and not window.held_back:
                del self._windows[host]
        while len(self._windows) >= _MAX_ADDRESSES:  # a flood from many addresses at once
            del self._windows[next(iter(self._windows))]


def held_back_note(detail: str, held_back: int) -> str:
    """The refusal's detail, with the count of the refusals held back before it."""
    if not held_back:
        return detail
    return f"{detail} (and {held_back} earlier refusals from this address, not audited one by one)"


def host_of(address: str) -> str:
    """`ipv4:10.0.0.7:51234` → `ipv4:10.0.0.7`, `ipv6:[::1]:5000` → `ipv6:[::1]`; an address
    without a port (the web listener's `request.remote`, a unix peer) is kept as it is."""
    if address.startswith(("ipv4:", "ipv6:")):
        head, sep, port = address.rpartition(":")
        if sep and port.isdigit() and head not in ("ipv4", "ipv6"):
            return head
    return address
