"""A fresh PostgreSQL database for a benchmark, or the reason there is none."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager

ADMIN_URL = os.environ.get(
    "SYNCD_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def unreachable_reason(admin_url: str = ADMIN_URL) -> str | None:
    """Why PostgreSQL at `admin_url` cannot be used, or None when it accepts connections."""
    import sqlalchemy as sa

    url = sa.make_url(admin_url)
    host, port = url.host or "127.0.0.1", url.port or 5432
    try:
        with socket.create_connection((host, port), timeout=2):
            pass
    except OSError as exc:
        return f"PostgreSQL not reachable at {host}:{port} ({exc})"
    return None


@contextmanager
def fresh_database(admin_url: str = ADMIN_URL) -> Iterator[str]:
    """A new, empty database on the server at `admin_url`, dropped afterwards; yields its URL."""
    import sqlalchemy as sa

    database = f"syncd_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
        try:
            yield (
                sa.make_url(admin_url).set(database=database).render_as_string(hide_password=False)
            )
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    finally:
        admin.dispose()
