"""A clock the test moves by hand. The scheduler waits on it exactly as on the real one."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta


class ManualClock:
    """Wall and monotonic time that only advance when the test says so."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._mono = 1000.0
        self._moved = asyncio.Event()
        self.parked = asyncio.Event()  # set while someone waits on this clock

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, delta: timedelta) -> None:
        """Time passes normally: wall and monotonic move together."""
        self._now += delta
        self._mono += delta.total_seconds()
        self._moved.set()

    def jump_wall(self, delta: timedelta) -> None:
        """The wall clock is set (NTP step, operator): monotonic time does not move."""
        self._now += delta
        self._moved.set()

    async def wait(self, event: asyncio.Event, timeout: float | None) -> bool:
        deadline = None if timeout is None else self._mono + timeout
        while True:
            if event.is_set():
                return True
            if deadline is not None and self._mono >= deadline:
                return False
            self._moved.clear()
            self.parked.set()
            waits = {asyncio.ensure_future(event.wait()), asyncio.ensure_future(self._moved.wait())}
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                self.parked.clear()
                for w in waits:
                    w.cancel()

    async def until_parked(self, timeout: float = 5.0) -> None:
        """Return once a waiter is parked on this clock (the loop has done its work)."""
        async with asyncio.timeout(timeout):
            await self.parked.wait()
