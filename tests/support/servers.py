"""Where the test suite finds PostgreSQL, MySQL/MariaDB and Redis, and how each test gets
a namespace of its own.

``MAJORDOMO_TEST_POSTGRES_URL`` / ``MAJORDOMO_TEST_MYSQL_URL`` name the SQL servers (a
database the test user may create schemas/databases from), ``MAJORDOMO_TEST_REDIS_URL``
the Redis server of the budget tests (each test uses keys of its own under a unique
prefix, and deletes them; see tests/budgets/). Unset, the local defaults
below are tried; a server that does not answer makes its tests skip with the reason,
unless ``MAJORDOMO_TEST_REQUIRE_SERVERS=1`` (set by .ci/run), which turns the skip
into a failure.

Every test that needs a server carries the ``servers`` mark, so that ``-m "not servers"``
runs without any: ``DIALECTS`` marks its server dialects, tests/conftest.py marks the tests
that request a server fixture, the others are marked by hand; ``require`` fails a test that
is not marked.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from secret_scan import scan_mysql_database, scan_postgres_schema

import majordomo_log as ml
from majordomo_log.stores.urls import redact_url

POSTGRES_URL = os.environ.get(
    "MAJORDOMO_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("MAJORDOMO_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("MAJORDOMO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
URL_VARIABLES = {
    "postgresql": "MAJORDOMO_TEST_POSTGRES_URL",
    "mysql": "MAJORDOMO_TEST_MYSQL_URL",
    "redis": "MAJORDOMO_TEST_REDIS_URL",
}
REQUIRED = os.environ.get("MAJORDOMO_TEST_REQUIRE_SERVERS") == "1"
SERVER_MARK = pytest.mark.servers
DIALECTS = (
    "sqlite",
    pytest.param("postgresql", marks=SERVER_MARK),
    pytest.param("mysql", marks=SERVER_MARK),
)

# The running test, when it is not marked ``servers`` (kept by tests/conftest.py).
unmarked_test: str | None = None


def answers(url: str) -> bool:
    if url.startswith(("redis://", "rediss://", "unix://")):
        return redis_answers(url)
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=1):
            return True
    except OSError:
        return False


def redis_answers(url: str) -> bool:
    """A PING answered (a port that accepts a connection may not be Redis's)."""
    try:
        import redis
    except ImportError:  # the [redis] extra is not installed
        return False

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return False


def require(dialect: str) -> str:
    """The server URL for a dialect (``postgresql``, ``mysql`` or ``redis``), or skip
    (fail in CI) when it does not answer.

    Fails a test that is not marked ``servers``, server or not: ``-m "not servers"`` would
    select it."""
    if unmarked_test is not None:
        pytest.fail(
            f"{unmarked_test} needs a {dialect} server but is not marked servers: "
            "add @pytest.mark.servers (or pytest.param(..., marks=pytest.mark.servers))"
        )
    url = {"postgresql": POSTGRES_URL, "mysql": MYSQL_URL, "redis": REDIS_URL}[dialect]
    if not answers(url):
        variable = URL_VARIABLES[dialect]
        reason = f"no {dialect} server answers at {redact_url(url)}; set {variable}"
        if REQUIRED:
            pytest.fail(reason + " (MAJORDOMO_TEST_REQUIRE_SERVERS=1: servers are required)")
        pytest.skip(reason)
    return url


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@asynccontextmanager
async def isolated_db(
    dialect: str, tmp_path: Path, *, scan: bool = True
) -> AsyncIterator[ml.MetadataStore]:
    """A migrated, empty store in a namespace no other test uses; dropped afterwards,
    after the secret scan has read it (``scan=False``: the benchmarks, whose rows are
    made up, skip that)."""
    if dialect == "sqlite":
        db: ml.MetadataStore = await ml.SqliteAdapter.create(tmp_path / f"{_unique('t')}.db")
        try:
            yield db
        finally:
            await db.close()
        return
    url = require(dialect)
    if dialect == "postgresql":
        import asyncpg

        schema = _unique("mdl_test")
        db = await ml.PostgresAdapter.create(url, schema=schema)
        try:
            yield db
        finally:
            await db.close()
            conn = await asyncpg.connect(url)
            try:
                if scan:
                    await scan_postgres_schema(conn, schema)  # before it is gone
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await conn.close()
        return
    database = _unique("mdl_test")
    await mysql_admin(url, f"CREATE DATABASE {database} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    parts = urlsplit(url)
    db = await ml.MySQLAdapter.create(parts._replace(path=f"/{database}").geturl())
    try:
        yield db
    finally:
        await db.close()
        if scan:
            await scan_mysql_database(url, database)  # before it is gone
        await mysql_admin(url, f"DROP DATABASE IF EXISTS {database}")


async def mysql_admin(url: str, statement: str) -> None:
    import aiomysql

    parts = urlsplit(url)
    conn = await aiomysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        autocommit=True,
    )
    try:
        async with conn.cursor() as cur:
            await cur.execute(statement)
    finally:
        conn.close()
