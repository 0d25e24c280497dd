"""Compute a derived table aside, then switch it in one transaction.

Readers of the derived table see the previous complete result until the switch commits, and
the complete new one after; a failure or a cancellation before the commit changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Executable, Table, func, select

from syncd.job import RunContext
from syncd.tis._db import id_chunks, staging_table, switch_transaction


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
    stage: Table,
    key: Any,
    fill: Callable[[int | None, int | None], Executable],
    apply: Callable[[Connection, RunContext], Applied],
    lock_name: str,
    chunk_size: int,
    lock_timeout: float,
) -> Applied:
    """Fill `stage` chunk by chunk over the ids of `key`, then `apply` it in one transaction.

    `fill(lo, hi)` is the INSERT … SELECT for the ids in (lo, hi]; each chunk commits on its
    own (only the TEMPORARY staging table is written), which bounds the work per statement and
    gives the points where progress is reported and cancellation honoured.
    """
    with staging_table(engine, stage) as conn:
        total = conn.execute(select(func.count()).select_from(key.table)).scalar_one()
        ctx.report_progress(0, total)
        done = staged = 0
        for lo, hi in id_chunks(conn, key, chunk_size):
            ctx.raise_if_cancelled()
            rows = conn.execute(fill(lo, hi)).rowcount
            conn.commit()
            staged += rows
            done = total if hi is None else min(total, done + chunk_size)
            ctx.add_rows(read=rows)
            ctx.report_progress(done, total)
        conn.rollback()  # the last boundary probe opened a read transaction
        ctx.raise_if_cancelled()  # the last point where stopping is free
        ctx.log.info(f"{event}.staged", rows=staged, keys=total)
        with switch_transaction(conn, lock_name, lock_timeout):
            ctx.log.info(f"{event}.applying")
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
