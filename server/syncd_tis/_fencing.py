"""Fencing: a run publishes its result only if no newer run of its job has.

In cluster mode each run carries a fencing token (`ctx.fencing_token`), larger than every
earlier claim's of the same job on any replica. The jobs record it in the source database in
the very transaction that publishes their result (a derived table's switch, a page of status
updates) and refuse to publish when a larger one is recorded already: a run that lost its
lease — its replica cut off, stalled or presumed dead while it went on — cannot overwrite the
result of the run that replaced it. A single daemon has no token, and nothing is recorded.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Connection, Engine, MetaData, String, Table, select

from syncd.job import RunContext
from syncd_tis._db import TisError

_metadata = MetaData()
fencing = Table(
    "syncd_fencing",
    _metadata,
    Column("job", String(200), primary_key=True),
    Column("token", BigInteger, nullable=False),
    Column("run_id", String(64), nullable=False),
)


class FencedOffError(TisError):
    """A newer run of the job has published already; this run's result is discarded."""

    def __init__(self, job: str, token: int, recorded: int, run_id: str) -> None:
        super().__init__(
            f"{job}: a newer run (fencing token {recorded}, run {run_id}) has published"
            f" already; this run's result (token {token}) is discarded. It lost its cluster"
            " lease while it ran."
        )


def prepare(engine: Engine, ctx: RunContext) -> None:
    """Create the fencing table if needed, before any publishing transaction (MySQL commits
    a transaction on DDL, so it cannot be created inside one)."""
    if ctx.fencing_token is not None:
        _metadata.create_all(engine, checkfirst=True)


def hold(conn: Connection, ctx: RunContext) -> None:
    """Inside the publishing transaction: refuse when a newer token is recorded, else record
    this run's (the row stays locked until the transaction ends)."""
    token = ctx.fencing_token
    if token is None:
        return
    row = conn.execute(
        select(fencing.c.token, fencing.c.run_id).where(fencing.c.job == ctx.bean).with_for_update()
    ).first()
    if row is None:
        conn.execute(fencing.insert().values(job=ctx.bean, token=token, run_id=ctx.run_id))
    elif row.token > token:
        raise FencedOffError(ctx.bean, token, row.token, row.run_id)
    elif row.token < token:
        conn.execute(
            fencing.update().where(fencing.c.job == ctx.bean).values(token=token, run_id=ctx.run_id)
        )
