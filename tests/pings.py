"""The pings (`SELECT 1`) an engine's pool sends to check a connection, counted: what the
socket-based liveness check is there to save."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa


def count_pings(engine: sa.engine.Engine, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """From now on, every ping `engine` sends is appended (its DBAPI connection) to the list."""
    pings: list[Any] = []
    real = engine.dialect.do_ping

    def counted(dbapi_conn: Any) -> bool:
        pings.append(dbapi_conn)
        return bool(real(dbapi_conn))

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    return pings
