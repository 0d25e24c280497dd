"""Compute a derived table aside, then switch it in one transaction.

Readers of the derived table see the previous complete result until the switch commits, and
the complete new one after; a failure or a cancellation before the commit changes nothing.

The computation is a few set-based statements ("steps") over whole tables, each writing a
TEMPORARY staging table: sequential scans and one pass per source table, which is what keeps a
300,000-person night in seconds even when the tables do not fit the database's cache.
Cancellation is honoured between steps; progress counts steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, Executable, Table, func, select
from sqlalchemy.exc import DBAPIError

from syncd.job import RunContext
from syncd_tis import _fencing
from syncd_tis._db import TisError, staging_full, staging_tables, switch_transaction
from syncd_tis._settings import TisSettings


@dataclass(frozen=True, slots=True)
class Step:
    """One statement filling a staging table; built per connection (dialects differ)."""

    name: str
    statement: Callable[[Connection], Executable]


@dataclass(frozen=True, slots=True, kw_only=True)
class Applied:
    """What switching a derived table changed."""

    staged: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0

    @property
    def written(self) -> int:
        return self.inserted + self.updated + self.deleted


def rebuild_aside(
    engine: Engine,
    ctx: RunContext,
    *,
    event: str,
    tables: list[Table],
    steps: list[Step],
    apply: Callable[[Connection, RunContext], Applied],
    lock_name: str,
    settings: TisSettings,
) -> Applied:
    """Run `steps` into the TEMPORARY `tables` (the last one holds the result), then `apply`
    the result to the derived table in one transaction."""
    total = len(steps) + 1
    _fencing.prepare(engine, ctx)
    with staging_tables(engine, tables, settings.mysql_staging_memory_mb) as conn:
        ctx.report_progress(0, total)
        for done, step in enumerate(steps, 1):
            ctx.raise_if_cancelled()
            started = time.monotonic()
            try:
                rows = conn.execute(step.statement(conn)).rowcount
            except DBAPIError as exc:
                if staging_full(exc):
                    raise TisError(
                        f"staging table {tables[-1].name} is full; raise [packs.tis]"
                        " mysql_staging_memory_mb, or set it to 0 to stage on disk"
                    ) from exc
                raise
            conn.commit()
            seconds = round(time.monotonic() - started, 3)
            ctx.log.info(f"{event}.step", step=step.name, rows=rows, seconds=seconds)
            ctx.report_progress(done, total)
        staged = conn.execute(select(func.count()).select_from(tables[-1])).scalar_one()
        conn.rollback()
        ctx.add_rows(read=staged)
        ctx.raise_if_cancelled()  # the last point where stopping is free
        with switch_transaction(conn, lock_name, settings.lock_timeout):
            _fencing.hold(conn, ctx)  # a run that lost its lease publishes nothing
            ctx.log.info(f"{event}.applying", staged=staged)
            applied = apply(conn, ctx)
        result = Applied(
            staged=staged,
            inserted=applied.inserted,
            updated=applied.updated,
            deleted=applied.deleted,
        )
        ctx.add_rows(written=result.written)
        ctx.report_progress(total, total)
        ctx.log.info(
            f"{event}.applied",
            staged=staged,
            inserted=result.inserted,
            updated=result.updated,
            deleted=result.deleted,
        )
        return result
