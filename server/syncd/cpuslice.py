"""The CPU time slice the kernel gives a thread (Linux 6.12 and later: the EEVDF scheduler).

A thread that wakes with a shorter slice than the one running may preempt it at once; with the
default slice it can wait until the running thread's slice is used up (1-3 ms, by the number of
CPUs), even when that thread is a niced job. The daemon asks for a short slice for its own
threads (the event loop, gRPC's, the ledger's writer), so a control-plane call that finds the
cores busy gets one sooner; its fork server, and so every job process, and the job threads go
back to the kernel's default. How much CPU each gets is unchanged: that is nice's
(`daemon.job_nice`). Elsewhere (another OS, an older kernel) asking changes nothing.
"""

from __future__ import annotations

import ctypes
import functools
import platform
import sys
from typing import Any

# sched_setattr and sched_getattr, by machine.
_SYSCALLS = {"x86_64": (314, 315), "aarch64": (274, 275)}
_FAIR_POLICIES = (0, 3)  # SCHED_OTHER, SCHED_BATCH: the ones a slice applies to


class _SchedAttr(ctypes.Structure):
    """struct sched_attr up to sched_period (SCHED_ATTR_SIZE_VER0, 48 bytes)."""

    _fields_ = (
        ("size", ctypes.c_uint32),
        ("sched_policy", ctypes.c_uint32),
        ("sched_flags", ctypes.c_uint64),
        ("sched_nice", ctypes.c_int32),
        ("sched_priority", ctypes.c_uint32),
        ("sched_runtime", ctypes.c_uint64),  # for a fair policy: the slice, in ns
        ("sched_deadline", ctypes.c_uint64),
        ("sched_period", ctypes.c_uint64),
    )


@functools.cache
def _syscall() -> Any:
    """libc's syscall(), or None; looked up once (a job thread asks at every run's start)."""
    if not sys.platform.startswith("linux") or platform.machine() not in _SYSCALLS:
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).syscall
    except (OSError, AttributeError):
        return None


def thread_slice_ns() -> int | None:
    """This thread's slice in ns as the kernel reports it (its default one too, on kernels that
    have slices; 0 on older ones), or None where it cannot tell or no slice applies."""
    call = _syscall()
    if call is None:
        return None
    attr = _SchedAttr()
    if call(_SYSCALLS[platform.machine()][1], 0, ctypes.byref(attr), ctypes.sizeof(attr), 0):
        return None
    return int(attr.sched_runtime) if attr.sched_policy in _FAIR_POLICIES else None


def set_thread_slice(microseconds: int) -> bool:
    """Ask for this thread's slice (0: the kernel's default); threads it starts later inherit
    it. True when the kernel took it (for a slice, reports it back); policy, nice and flags are
    kept."""
    call = _syscall()
    if call is None:
        return False
    setattr_nr, getattr_nr = _SYSCALLS[platform.machine()]
    attr = _SchedAttr()
    if call(getattr_nr, 0, ctypes.byref(attr), ctypes.sizeof(attr), 0):
        return False
    if attr.sched_policy not in _FAIR_POLICIES:
        return False  # real-time or idle: a slice means nothing there
    attr.size = ctypes.sizeof(attr)
    attr.sched_runtime = microseconds * 1000
    if call(setattr_nr, 0, ctypes.byref(attr), 0):
        return False
    return microseconds == 0 or thread_slice_ns() == microseconds * 1000
