"""Process trees on Linux: who descends from whom, and how to end a whole tree for certain.

A process-group kill misses any descendant that made its own group or session (`setsid`, a
double-forked daemon). So a tree is walked through /proc by parent pid, frozen with SIGSTOP until
no new member appears (a stopped process cannot fork), then killed. A process is named by its pid
*and* its start time (field 22 of /proc/<pid>/stat), so a recycled pid is never mistaken for it.

Elsewhere (no /proc, no prctl) every function degrades to what the platform has: the tree is
the root's process group, and a subreaper is simply not available.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import select
import signal
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
# Exported to every process a job starts, so that its descendants can be found by run id even
# after they have been re-parented away from the job's tree (see `marked`).
RUN_MARKER = "SYNCD_RUN_ID"

_PR_SET_CHILD_SUBREAPER = 36
_KILL_WAIT = 5.0  # a killed process is gone within milliseconds; this only bounds a stuck kernel
_FREEZE_ROUNDS = 50  # a tree that still grows after this many passes is killed as it stands


@dataclass(frozen=True, slots=True, order=True)
class ProcessId:
    """A process as it can be named for certain: pid plus start time (clock ticks since boot)."""

    pid: int
    start: int


@dataclass(frozen=True, slots=True)
class Stat:
    """The fields of /proc/<pid>/stat that tree walking needs."""

    name: str
    state: str
    ppid: int
    pgid: int
    start: int


def parse_stat(raw: bytes) -> Stat:
    """Parse /proc/<pid>/stat. The name is in parentheses and may itself hold spaces or `)`,
    so the fields are read after the *last* `)`."""
    head, _, tail = raw.rpartition(b")")
    fields = tail.split()
    if not head or len(fields) < 20:
        raise ValueError(f"not a /proc stat line: {raw[:80]!r}")
    name = head.partition(b"(")[2].decode(errors="replace")
    # After the name: state(0) ppid(1) pgrp(2) ... starttime(19), numbered as in proc(5) - 3.
    return Stat(
        name=name,
        state=fields[0].decode(),
        ppid=int(fields[1]),
        pgid=int(fields[2]),
        start=int(fields[19]),
    )


def _read_whole(path: str) -> bytes | None:
    """A /proc file's bytes with plain system calls, or None when it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def read_stat(pid: int) -> Stat | None:
    """The process's stat, or None when it does not exist (or /proc is not there)."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError:
        return None
    try:
        raw = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        return parse_stat(raw)
    except ValueError:
        return None


def identify(pid: int) -> ProcessId | None:
    stat = read_stat(pid)
    return None if stat is None else ProcessId(pid, stat.start)


def living(proc: ProcessId) -> Stat | None:
    """This very process's stat while it runs; None once it has ended (a zombie has ended) or
    when its pid now names another process."""
    stat = read_stat(proc.pid)
    if stat is None or stat.start != proc.start or stat.state in ("Z", "X"):
        return None
    return stat


def is_alive(proc: ProcessId) -> bool:
    return living(proc) is not None


def has_proc() -> bool:
    return (PROC / "self" / "stat").exists()


def _all_stats() -> dict[int, Stat]:
    stats: dict[int, Stat] = {}
    with contextlib.suppress(OSError), os.scandir(PROC) as entries:
        for entry in entries:
            if entry.name.isdigit():
                stat = read_stat(int(entry.name))
                if stat is not None:
                    stats[int(entry.name)] = stat
    return stats


def descendants(root: int) -> list[ProcessId]:
    """Every living process below `root`, however deep (one scan of /proc)."""
    children: dict[int, list[int]] = {}
    stats = _all_stats()
    for pid, stat in stats.items():
        children.setdefault(stat.ppid, []).append(pid)
    found: list[ProcessId] = []
    todo = list(children.get(root, ()))
    while todo:
        pid = todo.pop()
        stat = stats[pid]
        if stat.state not in ("Z", "X"):
            found.append(ProcessId(pid, stat.start))
        todo.extend(children.get(pid, ()))
    return found


def marked(run_id: str) -> list[ProcessId]:
    """Living processes of this user whose environment carries the run's marker.

    Only processes started by `exec` show the marker (/proc/<pid>/environ is the environment a
    program started with); plain forks of the job's process are found through the tree instead.
    """
    # One whole NUL-separated entry, found by a byte search: this runs at the end of every
    # run, over every process on the machine.
    needle = f"\0{RUN_MARKER}={run_id}\0".encode()
    found: list[ProcessId] = []
    me = str(os.getpid())
    with contextlib.suppress(OSError), os.scandir(PROC) as entries:
        for entry in entries:
            if not entry.name.isdigit() or entry.name == me:
                continue
            environ = _read_whole(f"{entry.path}/environ")
            if environ is None:  # gone, or not ours to read
                continue
            if needle in b"\0" + environ + b"\0":
                proc = identify(int(entry.name))
                if proc is not None and is_alive(proc):
                    found.append(proc)
    return found


def _signal(proc: ProcessId, signum: int) -> str | None:
    """Signal `proc` if it is still the process we mean; its name if the signal was sent."""
    stat = living(proc)
    if stat is None:
        return None
    try:
        os.kill(proc.pid, signum)
    except (ProcessLookupError, PermissionError):
        return None
    return stat.name


def end_tree(
    root: ProcessId | None, *, include_root: bool, extra: Iterable[ProcessId] = ()
) -> dict[ProcessId, str]:
    """Freeze, then kill, every process below `root` (and `root` itself if asked), plus
    `extra` processes (found by record or marker) and what descends from them.

    Returns the processes killed, with their names. The root is frozen first, so while it is a
    subreaper the orphans of its killed descendants stay in its tree instead of escaping to init.
    """
    if not has_proc():
        if root is not None and include_root:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(root.pid, signal.SIGKILL)
        return {}
    if root is not None and include_root:
        _signal(root, signal.SIGSTOP)
    frozen: dict[ProcessId, str] = {}
    seen: set[ProcessId] = set()
    tops = [p for p in extra if is_alive(p)]
    if root is not None:
        tops.append(root)
    for _ in range(_FREEZE_ROUNDS):
        members = {p for top in tops for p in descendants(top.pid)}
        members.update(p for p in tops if p != root)
        new = members - seen
        if not new:
            break
        seen |= new
        for proc in new:
            name = _signal(proc, signal.SIGSTOP)
            if name is not None:
                frozen[proc] = name
    killed = {p: name for p, name in frozen.items() if _signal(p, signal.SIGKILL) is not None}
    if root is not None and include_root:
        name = _signal(root, signal.SIGKILL)
        if name is not None:
            killed[root] = name
    wait_ended(killed, _KILL_WAIT)  # SIGKILL is delivered asynchronously: "ended" means ended
    return killed


def wait_ended(procs: Iterable[ProcessId], timeout: float) -> list[ProcessId]:
    """Wait (on pidfds, no polling) until each process has ended; returns those still alive."""
    deadline = time.monotonic() + timeout
    alive: list[ProcessId] = []
    for proc in procs:
        try:
            fd = os.pidfd_open(proc.pid)
        except ProcessLookupError:
            continue
        except (AttributeError, OSError):  # no pidfds here: report, do not wait
            if is_alive(proc):
                alive.append(proc)
            continue
        try:
            if not is_alive(proc):  # checked after opening: the pidfd is of this very process
                continue
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready and is_alive(proc):
                alive.append(proc)
        finally:
            os.close(fd)
    return alive


def become_subreaper() -> bool:
    """Make orphaned descendants re-parent to this process instead of init (Linux ≥ 3.4)."""
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    # The interpreter's own symbols include libc's. Searching for the library by name
    # (ctypes.util.find_library) runs `ldconfig -p` in a subprocess: once in every job process.
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _prctl(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    libc = _libc()
    if libc is None or not hasattr(libc, "prctl"):
        return False
    prctl = libc.prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return bool(prctl(option, value, 0, 0, 0) == 0)


def boot_id() -> str:
    """This boot's id: start times from another boot name nothing that lives now."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""
