"""A job for cluster tests: it notes in PostgreSQL when it ran, on which process, with which
fencing token, and publishes fenced, so a test can prove from the database itself that no two
runs overlapped and that a late run could not publish over a newer one.

The body waits at a gate: a shared advisory lock the test may hold exclusively (a real wait on
a lock, not a sleep). A test that does not hold it gets a job that ends at once. A run keeps
its share of the gate until it has noted its end, so once a test holds the gate every run
under way is waiting at it (none that passed just before is still going).
"""

from __future__ import annotations

import os
import threading

import psycopg

from syncd.config import Settings
from syncd.job import JobPack, JobSpec, PackContext, RunCancelled, RunContext

GATE_KEY = 0x5C1D_7E57
STUBBORN_GATE_KEY = GATE_KEY + 1  # where a stubborn run waits: the test opens it separately
NOTIFY_CHANNEL = "cluster_probe"  # each probe run notifies its run id here when it ends
BOUND_MS = 60_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS cluster_probe (
    run_id text PRIMARY KEY,
    token bigint,
    pid integer NOT NULL,
    began timestamptz NOT NULL,
    passed_gate timestamptz,
    ended timestamptz,
    published boolean NOT NULL DEFAULT false,
    refused_by bigint
);
CREATE TABLE IF NOT EXISTS cluster_fence (
    bean text PRIMARY KEY,
    token bigint NOT NULL,
    run_id text NOT NULL
);
"""


class ProbeSettings(Settings, frozen=True):
    """`[packs.cluster]`: the database the probe writes to (a libpq URL)."""

    url: str = ""
    # Ignore cancellation while waiting at the gate (a run that goes on after losing its
    # lease, to show that its fencing token stops its publish).
    stubborn: bool = False


def probe_body(ctx: RunContext) -> None:
    settings: ProbeSettings = ctx.settings
    with psycopg.connect(settings.url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO cluster_probe (run_id, token, pid, began)"
            " VALUES (%s, %s, %s, clock_timestamp())",
            (ctx.run_id, ctx.fencing_token, os.getpid()),
        )
        try:
            _pass_gate(conn, ctx, settings.stubborn)
            conn.execute(
                "UPDATE cluster_probe SET passed_gate = clock_timestamp() WHERE run_id = %s",
                (ctx.run_id,),
            )
            if not settings.stubborn:
                ctx.raise_if_cancelled()
            _publish(conn, ctx)
        except BaseException as exc:
            ctx.log.info("probe.ended", error=repr(exc)[:200])
            raise
        finally:  # however it ends, the probe notes when, lets go of the gate, and says so
            conn.execute(
                "UPDATE cluster_probe SET ended = coalesce(ended, clock_timestamp())"
                " WHERE run_id = %s",
                (ctx.run_id,),
            )
            conn.execute("SELECT pg_advisory_unlock_all()")
            conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, ctx.run_id))


def _pass_gate(conn: psycopg.Connection, ctx: RunContext, stubborn: bool) -> None:
    """Wait while the test holds the gate; a cancellation interrupts the wait."""
    done = threading.Event()

    def interrupt() -> None:
        if ctx.wait_cancelled(BOUND_MS / 1000) and not done.is_set() and not stubborn:
            conn.cancel_safe()

    watcher = threading.Thread(target=interrupt, daemon=True)
    watcher.start()
    gate = STUBBORN_GATE_KEY if stubborn else GATE_KEY
    ctx.log.info("probe.at_gate", token=ctx.fencing_token)
    try:
        conn.execute(f"SET statement_timeout = {BOUND_MS}")
        conn.execute("SELECT pg_advisory_lock_shared(%s)", (gate,))  # held until the end
    except psycopg.errors.QueryCanceled:
        raise RunCancelled from None
    finally:
        done.set()


def _publish(conn: psycopg.Connection, ctx: RunContext) -> None:
    """Publish as the tis jobs do: record the token in the publishing transaction, and refuse
    when a newer one is recorded already."""
    token = ctx.fencing_token
    newer = None
    with conn.transaction():
        row = conn.execute(
            "SELECT token FROM cluster_fence WHERE bean = %s FOR UPDATE", (ctx.bean,)
        ).fetchone()
        if row is not None and token is not None and row[0] > token:
            newer = row[0]  # nothing published: the transaction ends without a write
        else:
            conn.execute(
                "INSERT INTO cluster_fence (bean, token, run_id) VALUES (%s, %s, %s)"
                " ON CONFLICT (bean) DO UPDATE SET token = excluded.token,"
                " run_id = excluded.run_id",
                (ctx.bean, token or 0, ctx.run_id),
            )
            conn.execute(
                "UPDATE cluster_probe SET published = true, ended = clock_timestamp()"
                " WHERE run_id = %s",
                (ctx.run_id,),
            )
    if newer is not None:
        conn.execute(
            "UPDATE cluster_probe SET refused_by = %s, ended = clock_timestamp() WHERE run_id = %s",
            (newer, ctx.run_id),
        )
        raise RuntimeError(f"fenced off: token {token} < recorded {newer}")


def _build(context: PackContext) -> list[JobSpec]:
    return [
        JobSpec(
            name="ProbeJob",
            trigger_operation="probeJob",
            body=probe_body,
            description="Notes its run in PostgreSQL and publishes fenced.",
            settings=context.settings,
        )
    ]


CLUSTER = JobPack(name="cluster", build=_build, settings_type=ProbeSettings)
