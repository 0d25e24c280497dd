"""Whether a pooled PostgreSQL connection is still alive, told without a round trip.

SQLAlchemy's `pool_pre_ping` sends `SELECT 1` on every checkout: on the ledger's hot path that
was a network round trip (and a wake-up of the server) before each write and each read, three
a run. An idle connection has nothing to read unless the server spoke: it ended the session
(terminated, shut down, restarted) or sent a notice. So a checkout looks at the socket, and
only when something waits there does it ask the server; a dead connection is replaced before
use, as with the pre-ping. One lost without a word (a silent network) fails its statement,
which the recorder keeps and retries, as it did when the pre-ping itself hung on it.
"""

from __future__ import annotations

import select
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine


def check_on_checkout(engine: Engine) -> None:
    """Replace a pooled connection the server has ended before it is handed out."""

    @sa.event.listens_for(engine, "checkout")
    def _check(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        if not server_spoke(dbapi_conn):
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # any failure of the ping: the pool connects anew
            raise sa.exc.DisconnectionError(str(exc)[:200]) from exc


def server_spoke(dbapi_conn: Any) -> bool:
    """Something waits to be read on an idle connection (or it cannot be told)."""
    if getattr(dbapi_conn, "closed", False):
        return True
    try:
        fd = dbapi_conn.fileno()
    except Exception:  # a closed connection or a driver without a socket: ask the server
        return True
    poller = select.poll()  # not select(): no limit on the descriptor's number
    poller.register(fd, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))
