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
        self.timeouts: list[float | None] = []  # every wait's timeout, to check for polling

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, delta: timedelta) -> None:
        """Time passes normally: wall and monotonic move together."""
        self._now += delta
        self._mono += delta.total_seconds()
        self.parked.clear()  # the waiter will wake; until_parked then waits for it to re-park
        self._moved.set()

    def jump_wall(self, delta: timedelta) -> None:
        """The wall clock is set (NTP step, operator): monotonic time does not move."""
        self._now += delta
        self.parked.clear()
        self._moved.set()

    async def wait(self, event: asyncio.Event, timeout: float | None) -> bool:
        self.timeouts.append(timeout)
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

    async def settle(self, timeout: float = 5.0) -> None:
        """After waking the waiter some other way (pause, resume): wait for it to re-park."""
        self.parked.clear()
        await self.until_parked(timeout)

    async def until_parked(self, timeout: float = 5.0) -> None:
        """Return once a waiter is parked on this clock (the loop has done its work)."""
        async with asyncio.timeout(timeout):
            await self.parked.wait()
