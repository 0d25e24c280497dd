"""Retries with exponential backoff for the network calls of the index and reval jobs.

The database side has `syncd_tis._db.retrying` (transient SQL errors); this is the same loop for
Elasticsearch and AMQP, where what counts as transient is the caller's `transient` function.
Back-offs go through `wait` (a run passes `ctx.wait_cancelled`), so a cancel cuts one short.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from syncd.job import RunCancelled
from syncd_tis._db import RetryPolicy

T = TypeVar("T")


def sleep_uncancelled(seconds: float) -> bool:
    """A `wait` for callers without a run (a `search` operation): sleeps, never cancelled."""
    time.sleep(seconds)
    return False


def with_retries(
    work: Callable[[], T],
    *,
    policy: RetryPolicy,
    transient: Callable[[BaseException], str | None],
    log: Any,
    event: str,
    what: str,
    wait: Callable[[float], bool] = sleep_uncancelled,
    rng: random.Random | None = None,
) -> T:
    """`work()`, tried up to `policy.attempts` times while it fails with an error `transient`
    names a reason for; any other error, or the last one, is raised.

    `wait(seconds)` returning True means the run was cancelled: RunCancelled is raised.
    """
    rng = rng or random.Random()
    attempt = 1
    while True:
        try:
            return work()
        except Exception as exc:
            reason = transient(exc)
            if reason is None or attempt >= policy.attempts:
                raise
            delay = policy.delay(attempt, rng)
            log.warning(
                event,
                what=what,
                attempt=attempt,
                of=policy.attempts,
                reason=reason,
                delay_s=round(delay, 3),
                error=str(exc)[:500],
            )
            if wait(delay):
                raise RunCancelled from exc
            attempt += 1
