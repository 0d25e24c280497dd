"""The ledger of a cluster: the SQL ledger in the cluster database, aware of other replicas.

Two things differ from a single daemon's ledger. At start-up only runs that no live lease
covers are recorded `interrupted` (the others run on other replicas right now). And the
latest outcome per bean, cached for status calls, is re-read on each heartbeat, so a replica
shows the runs the others ended.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from syncd.cluster._tables import claims_table
from syncd.cluster._tables import metadata as cluster_metadata
from syncd.ledger.model import RunRecord
from syncd.ledger.sql import SqlLedger, runs_table

Latest = dict[str, RunRecord]


class ClusterLedger(SqlLedger):
    """A SqlLedger over the cluster's PostgreSQL database."""

    def _check_schema(self, conn: Connection) -> None:
        # Replicas starting together would race on the catalog: one at a time.
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(0x5C1D_C1A5)))
        super()._check_schema(conn)
        cluster_metadata.create_all(conn, checkfirst=True)

    def _still_running_elsewhere(self) -> list[sa.ColumnElement[bool]]:
        # Runs a live lease covers run on other replicas right now: theirs to finish.
        live = sa.select(claims_table.c.run_id).where(
            claims_table.c.run_id.is_not(None),
            claims_table.c.lease_until > sa.func.clock_timestamp(),
        )
        return [runs_table.c.run_id.not_in(live.scalar_subquery())]

    def refresh_latest(self) -> tuple[Latest, Latest]:
        """Re-read each bean's last executed and last successful run (any replica's)."""
        with self._read():
            finished, success = self._load_latest(self._engine, self.repository.repo_id)
        self._last_finished, self._last_success = finished, success
        return finished, success
