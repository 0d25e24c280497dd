"""Retries with exponential backoff and jitter: the one helper every retry loop uses.

tenacity runs the loop (attempts, the retry predicate, the hooks, re-raising the last error);
this module fixes the policy the daemon and its packs share:

- attempt n waits `min(maximum, initial * 2**(n-1))`, scaled by a random factor in `jitter`, so
  two runs (or two replicas) that fail together drift apart;
- only errors `transient` names a reason for are retried; anything else, or the last one, is
  raised as it is;
- sleeps are the caller's: a job passes its cancel-aware wait (RunCancelled when it is
  cancelled), the ledger recorder an asyncio wait that a wake-up cuts short, and an asyncio
  sleep is cancelled with its task.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

from syncd.errors import RunCancelled

T = TypeVar("T")

ERROR_LIMIT = 500  # characters of an error kept in a retry note


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """How long to wait between attempts, and how many there are."""

    initial: float
    maximum: float
    attempts: int | None = None  # None: until it works, is cancelled or `within` runs out
    within: float | None = None  # seconds from the first attempt after which none starts
    jitter: tuple[float, float] = (0.5, 1.0)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """The wait after failed attempt number `attempt` (1-based)."""
        ceiling = min(self.maximum, self.initial * 2.0 ** min(attempt - 1, 64))
        return ceiling * (rng or random).uniform(*self.jitter)


@dataclass(frozen=True, slots=True)
class RetryNote:
    """What a caller logs before a wait: which attempt failed, why, and how long it waits."""

    attempt: int
    of: int | None
    reason: str
    delay: float
    error: BaseException

    def fields(self) -> dict[str, object]:
        """The note as log fields."""
        return {
            "attempt": self.attempt,
            "of": self.of,
            "reason": self.reason,
            "delay_s": round(self.delay, 3),
            "error": str(self.error)[:ERROR_LIMIT],
        }


def _any_error(_exc: BaseException) -> str | None:
    return "error"


def _no_note(_note: RetryNote) -> None:
    """The default: retry silently."""


def sleep_uncancelled(seconds: float) -> bool:
    """A `wait` for callers without a run (a `search` operation): sleeps, never cancelled."""
    time.sleep(seconds)
    return False


class _Policy:
    """The tenacity pieces both loops share, built from one Backoff."""

    def __init__(
        self,
        backoff: Backoff,
        transient: Callable[[BaseException], str | None],
        on_retry: Callable[[RetryNote], None],
        rng: random.Random | None,
        first_wait: bool,
    ) -> None:
        self.backoff = backoff
        self.transient = transient
        self.on_retry = on_retry
        self.rng = rng
        # Waiting before the first attempt too: attempt n then waits delay(n + 1).
        self.offset = 1 if first_wait else 0
        self.last_error: BaseException | None = None

    def retry(self, state: tenacity.RetryCallState) -> bool:
        error = state.outcome.exception() if state.outcome is not None else None
        return error is not None and self.transient(error) is not None

    def stop(self, state: tenacity.RetryCallState) -> bool:
        attempts, within = self.backoff.attempts, self.backoff.within
        if attempts is not None and state.attempt_number >= attempts:
            return True
        elapsed = state.seconds_since_start or 0.0
        return within is not None and elapsed >= within

    def wait(self, state: tenacity.RetryCallState) -> float:
        delay = self.backoff.delay(state.attempt_number + self.offset, self.rng)
        if self.backoff.within is not None:  # the last attempt comes at the deadline, not after
            elapsed = state.seconds_since_start or 0.0
            delay = max(0.0, min(delay, self.backoff.within - elapsed))
        return delay

    def before_sleep(self, state: tenacity.RetryCallState) -> None:
        assert state.outcome is not None and state.next_action is not None
        error = state.outcome.exception()
        assert error is not None
        self.last_error = error
        self.on_retry(
            RetryNote(
                attempt=state.attempt_number,
                of=self.backoff.attempts,
                reason=self.transient(error) or "error",
                delay=state.next_action.sleep,
                error=error,
            )
        )

    def first_delay(self) -> float:
        return self.backoff.delay(1, self.rng) if self.offset else 0.0


def retrying(
    work: Callable[[], T],
    *,
    backoff: Backoff,
    transient: Callable[[BaseException], str | None] = _any_error,
    on_retry: Callable[[RetryNote], None] = _no_note,
    before_attempt: Callable[[], None] | None = None,
    wait: Callable[[float], bool] = sleep_uncancelled,
    rng: random.Random | None = None,
) -> T:
    """`work()`, retried while it fails with an error `transient` names a reason for.

    `before_attempt` runs before each try (a job's `raise_if_cancelled`). `wait(seconds)` sleeps
    between tries and returns True when the run was cancelled meanwhile: RunCancelled is raised,
    caused by the last error.
    """
    policy = _Policy(backoff, transient, on_retry, rng, first_wait=False)

    def sleep(seconds: float) -> None:
        if wait(seconds):
            raise RunCancelled from policy.last_error

    retryer = tenacity.Retrying(
        sleep=sleep,
        stop=policy.stop,
        wait=policy.wait,
        retry=policy.retry,
        before=(lambda _state: before_attempt()) if before_attempt else tenacity.before_nothing,
        before_sleep=policy.before_sleep,
        reraise=True,
    )
    return retryer(work)


async def retrying_async(
    work: Callable[[], Awaitable[T]],
    *,
    backoff: Backoff,
    transient: Callable[[BaseException], str | None] = _any_error,
    on_retry: Callable[[RetryNote], None] = _no_note,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    first_wait: bool = False,
    rng: random.Random | None = None,
) -> T:
    """`await work()`, retried like `retrying`; waits are `await sleep(seconds)` (by default
    asyncio's, so cancelling the task ends the wait). With `first_wait`, it waits before the
    first attempt too (a loop started by a failure does not hit the same fault at once)."""
    policy = _Policy(backoff, transient, on_retry, rng, first_wait=first_wait)
    pause = sleep or asyncio.sleep
    if first_wait:
        await pause(policy.first_delay())
    retryer = tenacity.AsyncRetrying(
        sleep=pause,
        stop=policy.stop,
        wait=policy.wait,
        retry=policy.retry,
        before_sleep=policy.before_sleep,
        reraise=True,
    )

    async def attempt() -> T:
        # tenacity awaits only what a coroutine *function* returns; a lambda or partial
        # returning an awaitable would be treated as synchronous and never awaited.
        return await work()

    return await retryer(attempt)
