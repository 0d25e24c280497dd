"""The ledger of a cluster: the SQL ledger in the cluster database, aware of other replicas.

Two things differ from a single daemon's ledger. At start-up only runs that no live lease
covers are recorded `interrupted` (the others run on other replicas right now). And the
latest outcome per bean, cached for status calls, is re-read on each heartbeat, so a replica
shows the runs the others ended.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from syncd.cluster._tables import claims_table
from syncd.cluster._tables import metadata as cluster_metadata
from syncd.enums import RunOutcome, RunState
from syncd.ledger.model import INTERRUPTED_MESSAGE, RunRecord
from syncd.ledger.sql import SqlLedger, runs_table
from syncd.replication.model import RUN

Latest = dict[str, RunRecord]


class ClusterLedger(SqlLedger):
    """A SqlLedger over the cluster's PostgreSQL database."""

    def _check_schema(self, conn: Connection) -> None:
        # Replicas starting together would race on the catalog: one at a time.
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(0x5C1D_C1A5)))
        super()._check_schema(conn)
        cluster_metadata.create_all(conn, checkfirst=True)

    def mark_interrupted(self, now: datetime) -> list[RunRecord]:
        live = sa.select(claims_table.c.run_id).where(
            claims_table.c.run_id.is_not(None),
            claims_table.c.lease_until > sa.func.clock_timestamp(),
        )
        with self._tx() as conn:
            open_ids = (
                conn.execute(
                    sa.select(runs_table.c.run_id).where(
                        runs_table.c.state != RunState.FINISHED.value,
                        runs_table.c.origin == self.repository.repo_id,
                        runs_table.c.run_id.not_in(live.scalar_subquery()),
                    )
                )
                .scalars()
                .all()
            )
            for run_id in open_ids:
                # Versioned like any local write, so replication carries the new outcome.
                version = self.repository.stamp(conn, RUN, run_id)
                conn.execute(
                    runs_table.update()
                    .where(runs_table.c.run_id == run_id)
                    .values(
                        state=RunState.FINISHED.value,
                        outcome=RunOutcome.INTERRUPTED.value,
                        ended_at=now,
                        error_type="Interrupted",
                        error_message=INTERRUPTED_MESSAGE,
                        hlc=version.hlc,
                        origin=version.origin,
                    )
                )
        done = [r for r in (self.get(run_id) for run_id in open_ids) if r is not None]
        for record in done:
            self._remember(record)
        return done

    def refresh_latest(self) -> tuple[Latest, Latest]:
        """Re-read each bean's last executed and last successful run (any replica's)."""
        with self._read():
            finished, success = self._load_latest(self._engine, self.repository.repo_id)
        self._last_finished, self._last_success = finished, success
        return finished, success
