"""Output for `syncctl replicas`: the members of a cluster. Same conventions as `_render`: a
table on a TTY, fixed tab-separated columns when piped, one JSON document with `--json`.
"""

from __future__ import annotations

from typing import IO, Any

from syncctl._render import Mode, human_duration, iso, when_json, write_json, write_rows
from syncd_api.v1 import management_pb2 as pb


def _age(replica: pb.ReplicaInfo) -> float:
    return replica.heartbeat_age.ToTimedelta().total_seconds()


def _replica_dict(replica: pb.ReplicaInfo) -> dict[str, Any]:
    return {
        "name": replica.name,
        "host": replica.host,
        "pid": replica.pid,
        "version": replica.version,
        "state": replica.state,
        "started_at": when_json(replica, "started_at"),
        "heartbeat_at": when_json(replica, "heartbeat_at"),
        "heartbeat_age_s": round(_age(replica), 3),
        "running": [{"bean": r.bean, "run_id": r.run_id} for r in replica.running],
        "answering": replica.answering,
    }


def render_replicas(out: IO[str], mode: Mode, reply: pb.ListReplicasResponse) -> None:
    """The replicas, their last heartbeat and what each runs. Piped:
    `name<TAB>state<TAB>host<TAB>pid<TAB>heartbeat_age_s<TAB>running`."""
    if mode is Mode.JSON:
        write_json(
            out,
            {
                "cluster": reply.cluster,
                "replica": reply.replica or None,
                "replicas": [_replica_dict(r) for r in reply.replicas],
            },
        )
        return
    if not reply.cluster:
        if mode is Mode.TABLE:
            out.write("Not in cluster mode: a single daemon (no [cluster] url configured).\n")
        return
    rows: list[tuple[str, ...]] = []
    for r in reply.replicas:
        running = ", ".join(f"{run.bean} ({run.run_id})" for run in r.running)
        if mode is Mode.TSV:
            rows.append((r.name, r.state, r.host, str(r.pid), f"{_age(r):.3f}", running))
            continue
        name = f"{r.name} (this one)" if r.answering else r.name
        heartbeat = f"{iso(r.heartbeat_at)} ({human_duration(_age(r))} ago)"
        rows.append((name, r.state, f"{r.host} pid {r.pid}", heartbeat, running or "-"))
    if mode is Mode.TSV:
        write_rows(out, mode, ("NAME", "STATE", "HOST", "PID", "HEARTBEAT_AGE", "RUNNING"), rows)
        return
    write_rows(out, mode, ("REPLICA", "STATE", "WHERE", "LAST HEARTBEAT (UTC)", "RUNNING"), rows)
