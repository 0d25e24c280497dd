"""CPU time of a daemon and of the job processes it forked, from /proc (Linux; None elsewhere).

Wall-clock latency on a shared machine moves with whatever else runs there; CPU time spent per
run does not, so the control-plane benchmark prints both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True, slots=True)
class TreeCpu:
    """Seconds of CPU so far: the daemon itself (every thread, ended ones too), its fork server,
    and the job processes the fork server has reaped (their whole lives)."""

    daemon: float
    fork_server: float
    reaped_jobs: float

    def __sub__(self, other: TreeCpu) -> TreeCpu:
        return TreeCpu(
            self.daemon - other.daemon,
            self.fork_server - other.fork_server,
            self.reaped_jobs - other.reaped_jobs,
        )


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return raw.rpartition(b")")[2].decode().split()  # after the name, which may hold spaces


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of process `pid` so far; None when /proc cannot tell."""
    fields = _stat_fields(pid)
    # Fields after the name: utime(11) stime(12), numbered as proc(5) - 3.
    return None if fields is None else (int(fields[11]) + int(fields[12])) / _TICK


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _fork_server(daemon_pid: int) -> int | None:
    """The daemon's multiprocessing fork server: its child running forkserver's main."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields and int(fields[1]) == daemon_pid and b"forkserver" in _cmdline(int(entry.name)):
            return int(entry.name)
    return None


def tree_cpu(daemon_pid: int) -> TreeCpu | None:
    """The CPU seconds so far, or None where /proc cannot tell."""
    own = process_cpu(daemon_pid)
    if own is None:
        return None
    server = _fork_server(daemon_pid)
    fields = _stat_fields(server) if server is not None else None
    if fields is None:
        return TreeCpu(own, 0.0, 0.0)
    return TreeCpu(
        own,
        (int(fields[11]) + int(fields[12])) / _TICK,
        (int(fields[13]) + int(fields[14])) / _TICK,  # cutime, cstime: the reaped jobs
    )
