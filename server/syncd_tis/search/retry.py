"""Retries for the network calls of the index and reval jobs, on the daemon's retry helper.

The database side has `syncd_tis._db.retrying` (transient SQL errors); this is the same helper
for Elasticsearch and AMQP, where what counts as transient is the caller's `transient` function.
Back-offs go through `wait` (a run passes `ctx.wait_cancelled`), so a cancel cuts one short.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, TypeVar

from syncd.job import RetryNote, retrying, sleep_uncancelled
from syncd_tis._db import RetryPolicy

T = TypeVar("T")

__all__ = ["sleep_uncancelled", "with_retries"]


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

    def note(retry: RetryNote) -> None:
        log.warning(event, what=what, **retry.fields())

    return retrying(
        work,
        backoff=policy.backoff,
        transient=transient,
        on_retry=note,
        wait=wait,
        rng=rng,
    )
