"""The last SynchronizeJobData cycle's table, kept in the state directory for `syncctl sync
status`, the console and the metrics. Written atomically; a child that failed keeps the time
of its last successful sync from the previous table."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from syncd.replication.cycle import SyncReport

LAST_SYNC_FILE = "replication/last-sync.json"


def read_report(state_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((state_dir / LAST_SYNC_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def cycle_number(state_dir: Path) -> int:
    """How many cycles this repository ran before (as the last table counted them)."""
    value = (read_report(state_dir) or {}).get("cycle", 0)
    return value if isinstance(value, int) and value >= 0 else 0


def write_report(state_dir: Path, report: SyncReport, now: datetime, *, cycle: int = 0) -> None:
    previous = {
        row.get("child_repository"): row.get("last_sync_time", "")
        for row in (read_report(state_dir) or {}).get("rows", [])
        if isinstance(row, dict)
    }
    rows = []
    for result in report.rows:
        row = result.as_dict()
        if row["result"] != "ok":
            row["last_sync_time"] = previous.get(row["child_repository"], "")
        rows.append(row)
    body = {
        "finished_at": now.isoformat(timespec="seconds"),
        "status": report.status,
        "cycle": cycle,
        "rows": rows,
    }
    path = state_dir / LAST_SYNC_FILE
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with open(tmp, "w") as out:
        json.dump(body, out, indent=1, sort_keys=True)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
