"""How much job processes defer for CPU (`daemon.job_nice`): set in each job's process, and in
the fork server that forks them, so that a job's process is niced from its first instruction.

The fork server is multiprocessing's, one per daemon process. Deferring it makes the forking
itself and the start of multiprocessing in each child (its unpickling, the copy-on-write faults
of a new process) batch work too, not only what follows the child's own `defer`: at 20 short
runs a second, that is CPU the control plane no longer contends with at equal terms.
"""

from __future__ import annotations

import contextlib
import os

from syncd.execution import _proctree

MOST_NICE = 19  # the highest niceness Linux gives


def absolute(increment: int) -> int:
    """The niceness `increment` above this thread's own (a daemon started niced keeps its
    jobs below itself)."""
    return min(os.getpriority(os.PRIO_PROCESS, 0) + increment, MOST_NICE)


def defer(pid: int, nice: int) -> None:
    """Raise process `pid`'s niceness (0: this one's) to `nice`; never lower it (that needs
    privilege)."""
    if os.getpriority(os.PRIO_PROCESS, pid) < nice:
        os.setpriority(os.PRIO_PROCESS, pid, nice)


class ForkServerDeferral:
    """Gives the fork server the jobs' niceness once it is known, and again if it is started
    anew; it is only ever raised."""

    def __init__(self, nice: int) -> None:
        self._nice = nice
        self._done = 0  # the pid of the fork server deferred so far

    def job_started(self, job: _proctree.Stat) -> None:
        """A job's process has started: its parent is the fork server."""
        if job.ppid == self._done:
            # Known: no /proc read at every run's start. (A new fork server given a dead
            # one's pid would go undeferred; its jobs still defer themselves in their child.)
            return
        parent = _proctree.read_stat(job.ppid)
        # Only our own child: never the daemon, nor whoever adopted an orphaned job process.
        if parent is None or parent.ppid != os.getpid():
            return
        with contextlib.suppress(OSError):  # it ended meanwhile: its successor is deferred then
            defer(job.ppid, self._nice)
            self._done = job.ppid
