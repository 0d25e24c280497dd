"""Real local servers for tests: reachable, or skipped visibly, or (under
SYNCD_REQUIRE_SERVICES=1, as in CI) a failure.

Each test database is created fresh with a unique name and dropped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

POSTGRES_URL = os.environ.get(
    "SYNCD_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MARIADB_URL = os.environ.get("SYNCD_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
RABBITMQ_URL = os.environ.get("SYNCD_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
REDIS_ADDRESS = ("127.0.0.1", 6379)


def services_required() -> bool:
    return os.environ.get("SYNCD_REQUIRE_SERVICES") == "1"


def require_tcp(name: str, host: str, port: int) -> None:
    """Skip (or, when services are required, fail) unless host:port accepts connections."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as exc:
        reason = f"{name} not reachable at {host}:{port} ({exc})"
    if services_required():
        pytest.fail(f"SYNCD_REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


@contextmanager
def _fresh_database(name: str, admin_url: str, port: int, create: str, drop: str) -> Iterator[str]:
    """A new, empty database on the server at `admin_url`; yields its SQLAlchemy URL."""
    import sqlalchemy as sa

    require_tcp(name, "127.0.0.1", port)
    database = f"syncd_test_{secrets.token_hex(4)}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(create.format(database)))
    url = sa.make_url(admin_url).set(database=database)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(drop.format(database)))
        admin.dispose()


def fresh_postgres_database() -> contextlib.AbstractContextManager[str]:
    """A new, empty PostgreSQL database; yields its SQLAlchemy URL."""
    return _fresh_database(
        "PostgreSQL",
        POSTGRES_URL,
        5432,
        'CREATE DATABASE "{}"',
        'DROP DATABASE IF EXISTS "{}" WITH (FORCE)',
    )


def fresh_mariadb_database() -> contextlib.AbstractContextManager[str]:
    """A new, empty MariaDB database; yields its SQLAlchemy URL."""
    return _fresh_database(
        "MariaDB",
        MARIADB_URL,
        3306,
        "CREATE DATABASE `{}` CHARACTER SET utf8mb4",
        "DROP DATABASE IF EXISTS `{}`",
    )
