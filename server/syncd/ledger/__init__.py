"""The run ledger: its protocol and in-memory form, the SQL ledger (SQLite, PostgreSQL) and
the recorder, the one writer every run start and end goes through.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from syncd._exports import public_names

if TYPE_CHECKING:
    from syncd.ledger._faults import problem_of
    from syncd.ledger._liveness import check_on_checkout
    from syncd.ledger.model import EXECUTED, LatestRuns, MemoryLedger, RunLedger, RunRecord
    from syncd.ledger.recorder import LedgerHealth, LedgerRecorder
    from syncd.ledger.sql import SqlLedger

__all__ = [
    "EXECUTED",
    "LatestRuns",
    "LedgerHealth",
    "LedgerRecorder",
    "MemoryLedger",
    "RunLedger",
    "RunRecord",
    "SqlLedger",
    "check_on_checkout",
    "problem_of",
]

__getattr__ = public_names(
    __name__,
    {
        "model": ("EXECUTED", "LatestRuns", "MemoryLedger", "RunLedger", "RunRecord"),
        "sql": ("SqlLedger",),
        "recorder": ("LedgerHealth", "LedgerRecorder"),
        "_faults": ("problem_of",),  # a driver's error as the short problem operators act on
        # A pooled PostgreSQL connection checked without a round trip (the cluster's store too).
        "_liveness": ("check_on_checkout",),
    },
)
