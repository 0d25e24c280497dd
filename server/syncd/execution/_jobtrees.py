"""The durable record of every job's process tree, and the start-up sweep that uses it.

While a run executes in a child process, that process keeps `<state_dir>/job-processes/<run>.json`
up to date with every process of its tree (pid and start time). A run that ends normally removes
its record once its tree is gone. A record still there when a daemon starts belongs to a run of a
killed predecessor: whatever in it still runs — the same pid *and* start time, in the same boot —
and whatever carries the run's marker in its environment is killed before any job starts, and
the interrupted run says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from syncd.enums import RunOutcome
from syncd.execution import _proctree
from syncd.execution._proctree import ProcessId

if TYPE_CHECKING:  # the job processes' fork server imports this: no ledger (nor SQLAlchemy) there
    from syncd.ledger.recorder import LedgerRecorder

log = structlog.get_logger("syncd.processes")

RECORD_DIR = "job-processes"
WATCH_INTERVAL = 0.5  # how often a job's process re-reads its tree; one /proc scan, ~ms
_LISTED = 10  # processes named in a run's error message; the log line has them all


@dataclass(frozen=True, slots=True)
class TreeRecord:
    run_id: str
    bean: str
    boot_id: str
    processes: tuple[ProcessId, ...]


def record_path(directory: Path, run_id: str) -> Path:
    return directory / f"{run_id}.json"


def write_record(path: Path, record: TreeRecord) -> None:
    """Replace the record atomically: a reader sees the old tree or the new one, never half."""
    document = {
        "run_id": record.run_id,
        "bean": record.bean,
        "boot_id": record.boot_id,
        "processes": [[p.pid, p.start] for p in record.processes],
    }
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps(document))
    os.replace(scratch, path)


def read_record(path: Path) -> TreeRecord | None:
    try:
        document = json.loads(path.read_text())
        return TreeRecord(
            run_id=str(document["run_id"]),
            bean=str(document["bean"]),
            boot_id=str(document["boot_id"]),
            processes=tuple(ProcessId(int(p), int(s)) for p, s in document["processes"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


class TreeWatch:
    """Runs in the job's process: records its tree at `start`, then whenever a `snapshot`
    (every WATCH_INTERVAL, from the thread that listens to the daemon) finds it changed."""

    def __init__(
        self,
        path: Path,
        run_id: str,
        bean: str,
        on_change: Callable[[tuple[ProcessId, ...]], None] = lambda _tree: None,
    ) -> None:
        self._path = path
        self._on_change = on_change
        self._template = TreeRecord(run_id, bean, _proctree.boot_id(), ())
        self._stop = threading.Event()
        self._seen: tuple[ProcessId, ...] | None = None
        me = _proctree.identify(os.getpid())
        self._me = () if me is None else (me,)

    def start(self) -> None:
        # Before the body runs: the job's own process is on record at once. It has started
        # nothing yet, so it alone is its tree (no scan of /proc on every run's start).
        self._record(self._me)

    def snapshot(self) -> None:
        self._record(tuple(sorted(set(self._me) | set(_proctree.descendants(os.getpid())))))

    def _record(self, tree: tuple[ProcessId, ...]) -> None:
        if tree != self._seen:
            try:
                write_record(self._path, replace(self._template, processes=tree))
            except OSError:  # a full disk must not fail the job itself; retried next time
                return
            self._seen = tree
            self._on_change(tree)

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()


def end_recorded(path: Path) -> tuple[TreeRecord | None, dict[ProcessId, str]]:
    """Kill what is left of a recorded tree (and the run's marked processes), then forget it."""
    record = read_record(path)
    killed: dict[ProcessId, str] = {}
    if record is not None and record.boot_id == _proctree.boot_id():
        extra = [*record.processes, *_proctree.marked(record.run_id)]
        killed = _proctree.end_tree(None, include_root=False, extra=extra)
    forget(path)
    return record, killed


def forget(path: Path) -> None:
    """Remove a run's record (and a half-written one)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    path.with_suffix(".tmp").unlink(missing_ok=True)


@dataclass(frozen=True, slots=True)
class Survivors:
    """Processes a killed predecessor's run left running, and ended at start-up."""

    run_id: str
    bean: str
    processes: tuple[tuple[ProcessId, str], ...]  # with each one's name

    def describe(self) -> str:
        names = [f"{p.pid} ({name})" for p, name in self.processes[:_LISTED]]
        more = len(self.processes) - _LISTED
        listed = ", ".join(names) + (f" and {more} more" if more > 0 else "")
        return f"ended {len(self.processes)} process(es) the run had left running: {listed}"


def end_survivors(directory: Path) -> list[Survivors]:
    """Start-up: end every process left by the runs of a killed predecessor."""
    found: list[Survivors] = []
    if not directory.is_dir():
        return found
    for path in sorted(directory.glob("*.json")):
        record, killed = end_recorded(path)
        if record is not None and killed:
            found.append(Survivors(record.run_id, record.bean, tuple(sorted(killed.items()))))
    for stale in directory.glob("*.tmp"):
        stale.unlink(missing_ok=True)
    return found


async def note_survivors(recorder: LedgerRecorder, found: list[Survivors]) -> None:
    """Log each run's survivors, and add them to the run's record once it is interrupted."""
    for survivors in found:
        log.warning(
            "run.survivors_ended",
            job=survivors.bean,
            run_id=survivors.run_id,
            pids=[p.pid for p, _ in survivors.processes],
            names=[name for _, name in survivors.processes],
        )
        record = await recorder.get(survivors.run_id)
        if record is None or record.outcome is not RunOutcome.INTERRUPTED:
            continue
        if survivors.describe() in record.error_message:
            continue
        message = f"{record.error_message}; {survivors.describe()}".lstrip("; ")
        await recorder.end(replace(record, error_message=message))
