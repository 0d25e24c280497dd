"""`syncctl audit`: the daemon's audit trail, newest first."""

from __future__ import annotations

from typing import IO

from syncctl._output import Mode, write_json, write_rows
from syncctl._render import when, when_json
from syncd_api.v1 import management_pb2 as pb


def render_audit(out: IO[str], mode: Mode, reply: pb.ListAuditResponse, now: float) -> None:
    """TSV columns: at, actor, role, address, action, target, outcome, detail."""
    if mode is Mode.JSON:
        write_json(
            out,
            {
                "entries": [
                    {
                        "at": when_json(e, "at"),
                        "actor": e.actor,
                        "role": e.role,
                        "address": e.address,
                        "action": e.action,
                        "target": e.target,
                        "outcome": e.outcome,
                        "detail": e.detail,
                    }
                    for e in reply.entries
                ]
            },
        )
        return
    rows = [
        (
            when(e, "at", mode=mode, now=now),
            e.actor,
            e.role,
            e.address,
            e.action,
            e.target,
            e.outcome,
            e.detail,
        )
        for e in reply.entries
    ]
    if mode is Mode.TABLE and not rows:
        out.write("No audit entries.\n")
        return
    headers = ("AT", "ACTOR", "ROLE", "ADDRESS", "ACTION", "TARGET", "OUTCOME", "DETAIL")
    write_rows(out, mode, headers, rows)
