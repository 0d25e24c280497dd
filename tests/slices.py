"""The kernel's per-thread CPU time slice as the slice tests need it: asked for in a fresh
thread (so that what it asks for ends with that thread), and the kernel's default, or a skip
where the kernel gives no per-thread slices."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import pytest

from syncd.cpuslice import set_thread_slice, thread_slice_ns
from tests.executions import BOUND

T = TypeVar("T")


def in_thread(work: Callable[[], T]) -> T:
    """Run `work` in a fresh thread and return what it returned."""
    out: list[T] = []
    thread = threading.Thread(target=lambda: out.append(work()))
    thread.start()
    thread.join(BOUND)
    (result,) = out
    return result


def kernel_default_slice() -> int:
    """A new thread's slice in ns; skips the test on a kernel without per-thread slices."""
    default = in_thread(thread_slice_ns)
    if default is None or not in_thread(lambda: set_thread_slice(300)):
        pytest.skip("this kernel gives no per-thread time slices (Linux before 6.12)")
    return default
