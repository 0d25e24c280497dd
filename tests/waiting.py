"""The suite's one way to wait: on a signal (an awaitable, a stream's headers, an event), always
bounded, and a failure that says what never came. No polling of private state, no sleeps."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable
from typing import TypeVar

import grpc

BOUND = 10.0  # seconds; generous for a loaded machine, short enough to fail a hung test

T = TypeVar("T")

FOLLOWING = ("syncd-following", "1")


async def within(awaitable: Awaitable[T], what: str, timeout: float = BOUND) -> T:
    """`await awaitable`, or fail the test naming `what` after `timeout` seconds."""
    try:
        async with asyncio.timeout(timeout):
            return await awaitable
    except TimeoutError:
        raise AssertionError(f"waited {timeout:g}s for {what}; it never came") from None


async def following(call: grpc.aio.Call, timeout: float = BOUND) -> None:
    """Wait until the daemon has subscribed a TailLogs/WatchEvents stream: it says so with the
    `syncd-following` initial metadata, after which nothing logged or published is missed."""
    metadata = await within(call.initial_metadata(), "the syncd-following metadata", timeout)
    assert FOLLOWING in list(metadata or ()), metadata


def set_within(event: threading.Event, what: str, timeout: float = BOUND) -> None:
    """The same for code on threads: wait for `event`, or fail naming `what`."""
    if not event.wait(timeout):
        raise AssertionError(f"waited {timeout:g}s for {what}; it never came")
