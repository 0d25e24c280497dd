"""The one retry helper: backoff bounds, what is retried, attempts, cancellation (sync and async)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.errors import RunCancelled
from syncd.retry import Backoff, RetryNote, retrying, retrying_async

BOUND = 10.0


class Flaky(Exception):
    """A transient fault for these tests."""


def _transient(exc: BaseException) -> str | None:
    return "flaky" if isinstance(exc, Flaky) else None


class Script:
    """Work that fails `failures` times with Flaky, then returns "done"; counts calls."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise Flaky(f"fault {self.calls}")
        return "done"


def _recording(waits: list[float]) -> Callable[[float], bool]:
    """A `wait` that records each back-off instead of sleeping; never cancelled."""

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        return False

    return wait


@given(
    initial=st.floats(min_value=0.001, max_value=10),
    maximum=st.floats(min_value=0.001, max_value=100),
    attempt=st.integers(min_value=1, max_value=200),
    seed=st.integers(),
)
def test_each_delay_is_the_capped_exponential_step_times_the_jitter(
    initial: float, maximum: float, attempt: int, seed: int
) -> None:
    """delay(n) lies in [0.5, 1] * min(maximum, initial * 2^(n-1)), never above the cap."""
    backoff = Backoff(initial=initial, maximum=maximum)
    step = min(maximum, initial * 2.0 ** min(attempt - 1, 64))
    delay = backoff.delay(attempt, random.Random(seed))
    assert 0.5 * step <= delay <= step <= maximum


class TestRetrying:
    def test_transient_errors_are_retried_with_notes(self) -> None:
        """Two faults then success: two notes (attempt, reason, delay), two waits, the result."""
        waits: list[float] = []
        notes: list[RetryNote] = []
        work = Script(failures=2)
        result = retrying(
            work,
            backoff=Backoff(initial=0.5, maximum=1.5, attempts=4),
            transient=_transient,
            on_retry=notes.append,
            wait=_recording(waits),
            rng=random.Random(3),
        )
        assert (result, work.calls) == ("done", 3)
        assert [(n.attempt, n.of, n.reason) for n in notes] == [(1, 4, "flaky"), (2, 4, "flaky")]
        assert [n.delay for n in notes] == waits
        assert 0.25 <= waits[0] <= 0.5 and 0.5 <= waits[1] <= 1.0
        assert notes[0].fields()["error"] == "fault 1"

    def test_other_errors_are_raised_at_once(self) -> None:
        """An error `transient` does not name is raised on the first attempt, unwrapped."""
        waits: list[float] = []

        def work() -> None:
            raise KeyError("permanent")

        with pytest.raises(KeyError, match="permanent"):
            retrying(
                work,
                backoff=Backoff(initial=0.1, maximum=1, attempts=5),
                transient=_transient,
                wait=_recording(waits),
            )
        assert waits == []

    def test_the_last_error_is_raised_after_the_attempts(self) -> None:
        """attempts = 3: three calls, two waits, then the third fault itself."""
        waits: list[float] = []
        work = Script(failures=10)
        with pytest.raises(Flaky, match="fault 3"):
            retrying(
                work,
                backoff=Backoff(initial=0.1, maximum=1, attempts=3),
                transient=_transient,
                wait=_recording(waits),
            )
        assert work.calls == 3 and len(waits) == 2

    def test_a_cancelled_wait_raises_run_cancelled(self) -> None:
        """`wait` says the run was cancelled: RunCancelled, caused by the fault; no new try."""
        work = Script(failures=10)
        with pytest.raises(RunCancelled) as caught:
            retrying(
                work,
                backoff=Backoff(initial=0.1, maximum=1, attempts=5),
                transient=_transient,
                wait=lambda _s: True,
            )
        assert work.calls == 1
        assert isinstance(caught.value.__cause__, Flaky)

    def test_before_attempt_runs_before_every_try(self) -> None:
        """The hook a job uses for `raise_if_cancelled` runs once per attempt, first included."""
        seen: list[int] = []
        work = Script(failures=2)
        retrying(
            work,
            backoff=Backoff(initial=0.1, maximum=1, attempts=5),
            transient=_transient,
            before_attempt=lambda: seen.append(work.calls),
            wait=lambda _s: False,
        )
        assert seen == [0, 1, 2]


class TestRetryingAsync:
    def test_first_wait_and_growing_waits_through_the_given_sleep(self) -> None:
        """With first_wait the loop waits before trying; each wait is the next step's."""

        async def main() -> None:
            sleeps: list[float] = []
            work = Script(failures=2)

            async def call() -> str:
                return work()

            async def sleep(seconds: float) -> None:
                sleeps.append(seconds)

            result = await retrying_async(
                call,
                backoff=Backoff(initial=1, maximum=3, jitter=(1.0, 1.0)),
                transient=_transient,
                sleep=sleep,
                first_wait=True,
            )
            assert (result, work.calls) == ("done", 3)
            assert sleeps == [1.0, 2.0, 3.0]  # before try 1, after fault 1 (step 2), capped

        asyncio.run(main())

    def test_cancelling_the_task_ends_an_asyncio_wait(self) -> None:
        """The default sleep is asyncio's: a task cancelled during an hour-long back-off ends
        at once, and no further attempt is made."""

        async def main() -> None:
            waiting = asyncio.Event()
            work = Script(failures=10)

            async def call() -> str:
                return work()

            task = asyncio.create_task(
                retrying_async(
                    call,
                    backoff=Backoff(initial=3600, maximum=3600),
                    transient=_transient,
                    on_retry=lambda _note: waiting.set(),
                )
            )
            async with asyncio.timeout(BOUND):
                await waiting.wait()
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            assert work.calls == 1

        asyncio.run(main())

    def test_within_bounds_the_whole_loop(self) -> None:
        """`within`: no attempt starts after the deadline, and the last fault is raised."""

        async def main() -> None:
            work = Script(failures=1000)

            async def call() -> str:
                return work()

            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(Flaky):
                await retrying_async(
                    call,
                    backoff=Backoff(initial=0.01, maximum=0.02, within=0.1),
                    transient=_transient,
                )
            assert work.calls >= 2
            assert loop.time() - started < BOUND

        asyncio.run(main())

    def test_a_lambda_returning_a_coroutine_is_awaited_and_retried(self) -> None:
        """Work given as a lambda (not a coroutine function) is awaited like any other: each
        attempt's coroutine runs, and its errors are retried."""

        async def main() -> None:
            work = Script(failures=2)

            async def call(label: str) -> str:
                return f"{label}:{work()}"

            async def no_wait(_seconds: float) -> None:
                return None

            result = await retrying_async(
                lambda: call("post"),
                backoff=Backoff(initial=1, maximum=1),
                transient=_transient,
                sleep=no_wait,
            )
            assert (result, work.calls) == ("post:done", 3)

        asyncio.run(main())
