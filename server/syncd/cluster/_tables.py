"""The cluster's tables, beside the ledger's in the cluster database.

- `syncd_cluster_claims`: one row per bean, created on its first claim and never deleted. It
  is the bean's run claim (the holder's run id, replica and lease) and its fencing-token
  counter: the token is raised in the same transaction that grants the claim.
- `syncd_cluster_slots`: one row per (bean, nominal slot time) ever claimed, so a scheduled
  slot runs once whichever replica fires it, whatever their clocks say.
- `syncd_cluster_replicas`: the members, with each one's last heartbeat.
- `syncd_cluster_runs`: every claim granted — which replica ran each run, with its token.

Every time stored here is the database's `clock_timestamp()`, never a replica's clock.
"""

from __future__ import annotations

import sqlalchemy as sa

from syncd.ledger.schema import UTCDateTime

metadata = sa.MetaData()

claims_table = sa.Table(
    "syncd_cluster_claims",
    metadata,
    sa.Column("bean", sa.String(200), primary_key=True),
    sa.Column("token", sa.BigInteger, nullable=False),
    sa.Column("run_id", sa.String(64)),  # NULL: nobody holds the bean
    sa.Column("replica", sa.String(64)),
    sa.Column("acquired_at", UTCDateTime),
    sa.Column("lease_until", UTCDateTime),
    # Who asked, on another replica, for the holder's run to stop (the holder's heartbeat
    # passes it on to the run).
    sa.Column("cancel_requested_by", sa.String(255)),
)

slots_table = sa.Table(
    "syncd_cluster_slots",
    metadata,
    sa.Column("bean", sa.String(200), primary_key=True),
    sa.Column("slot_time", UTCDateTime, primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("replica", sa.String(64), nullable=False),
    sa.Column("claimed_at", UTCDateTime, nullable=False),
)

runs_claimed_table = sa.Table(
    "syncd_cluster_runs",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("bean", sa.String(200), nullable=False),
    sa.Column("replica", sa.String(64), nullable=False),
    sa.Column("token", sa.BigInteger, nullable=False),
    sa.Column("claimed_at", UTCDateTime, nullable=False),
)

replicas_table = sa.Table(
    "syncd_cluster_replicas",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("incarnation", sa.String(32), nullable=False),  # one per process start
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("version", sa.String(40), nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("heartbeat_at", UTCDateTime, nullable=False),
    sa.Column("left_at", UTCDateTime),  # NULL while it is a member
)
