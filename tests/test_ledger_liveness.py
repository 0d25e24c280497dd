"""A pooled ledger connection is checked without a round trip, and one the server ended is
replaced before use (the PostgreSQL ledger's replacement for `pool_pre_ping`)."""

from __future__ import annotations

import select
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from syncd.ledger._liveness import check_on_checkout, server_spoke
from tests.harness import BOUND
from tests.pings import count_pings
from tests.services import fresh_postgres_database


@pytest.fixture
def engine() -> Iterator[sa.engine.Engine]:
    with fresh_postgres_database() as url:
        engine = sa.create_engine(url, pool_size=1, max_overflow=0)
        check_on_checkout(engine)
        try:
            yield engine
        finally:
            engine.dispose()


def _backend_pid(engine: sa.engine.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def test_a_live_idle_connection_is_handed_out_without_asking_the_server(
    engine: sa.engine.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _backend_pid(engine)
    pings = count_pings(engine, monkeypatch)
    assert [_backend_pid(engine) for _ in range(5)] == [first] * 5
    assert pings == []


def test_a_connection_the_server_ended_is_replaced_before_it_is_used(
    engine: sa.engine.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    ended = _backend_pid(engine)
    pooled = engine.pool.connect()  # the same (only) pooled connection, to watch its socket
    fd = pooled.dbapi_connection.fileno()  # type: ignore[union-attr]
    pooled.close()
    admin = sa.create_engine(engine.url)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": ended})
    finally:
        admin.dispose()
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    assert poller.poll(BOUND * 1000), "the server did not close the session"
    pings = count_pings(engine, monkeypatch)
    assert _backend_pid(engine) != ended
    assert len(pings) == 1


def test_a_closed_connection_counts_as_spoken() -> None:
    class Closed:
        closed = True

    class NoSocket:
        closed = False

        def fileno(self) -> int:
            raise OSError("no socket")

    assert server_spoke(Closed())
    assert server_spoke(NoSocket())
