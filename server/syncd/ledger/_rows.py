"""Run records to rows and back, and the run statements of the write path, built once.

A statement rebuilt on every write (`insert().values(**row)`, `update().where(...)`) costs its
construction and its cache key each time; these are built at import with bound parameters, so
a write only binds values (SQLAlchemy compiles each once per dialect and caches it).
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from syncd.enums import RunOutcome, RunState, Trigger
from syncd.ledger.model import RunRecord
from syncd.ledger.schema import runs_table

INSERT_RUN = runs_table.insert()
# A run's row by its id, written whole (the key is bound as `b_run_id`: `run_id` is a column).
UPDATE_RUN = runs_table.update().where(runs_table.c.run_id == sa.bindparam("b_run_id"))
STORED_STATE = sa.select(runs_table.c.state, runs_table.c.outcome).where(
    runs_table.c.run_id == sa.bindparam("b_run_id")
)
GET_RUN = sa.select(runs_table).where(runs_table.c.run_id == sa.bindparam("b_run_id"))


def row(record: RunRecord) -> dict[str, Any]:
    return {
        "run_id": record.run_id,
        "bean": record.bean,
        "operation": record.operation,
        "arguments": json.dumps(dict(record.arguments), default=str, sort_keys=True),
        "trigger": record.trigger.value,
        "actor": record.actor,
        "slot_time": record.slot_time,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "state": record.state.value,
        "outcome": record.outcome.value if record.outcome else None,
        "error_type": record.error_type,
        "error_message": record.error_message,
        "rows_read": record.rows_read,
        "rows_written": record.rows_written,
        "progress_done": record.progress_done,
        "progress_total": record.progress_total,
    }


def record_of(found: sa.Row[Any]) -> RunRecord:
    m = found._mapping
    return RunRecord(
        run_id=m["run_id"],
        bean=m["bean"],
        operation=m["operation"],
        arguments=json.loads(m["arguments"]),
        trigger=Trigger(m["trigger"]),
        actor=m["actor"],
        slot_time=m["slot_time"],
        started_at=m["started_at"],
        ended_at=m["ended_at"],
        state=RunState(m["state"]),
        outcome=RunOutcome(m["outcome"]) if m["outcome"] else None,
        error_type=m["error_type"],
        error_message=m["error_message"],
        rows_read=m["rows_read"],
        rows_written=m["rows_written"],
        progress_done=m["progress_done"],
        progress_total=m["progress_total"],
        origin=m["origin"],
    )
