"""What the dashboard's tests share: seeded logs (tests/support/dashboard_log.py), one per
dialect and module (each test module's ``log`` fixture yields from :func:`logs`), read
back with SQL run directly on the database through its own driver
(sqlite3, asyncpg, aiomysql), not through the store the dashboard uses.

Not a conftest.py: the suite's tests import the top-level tests/conftest.py by name
(``from conftest import ...``), which a second conftest module would shadow."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from dashboard_log import SeededLog, seeded_log

UTC = dt.timezone.utc
# The seeded calls are before NOW, within two weeks; pages are asked with until=NOW_TEXT
# so that their windows are fixed whatever the clock says when the test runs.
NOW = dt.datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
NOW_TEXT = NOW.strftime("%Y-%m-%dT%H:%M")


@dataclass
class Log:
    dialect: str
    seeded: SeededLog

    @property
    def db_url(self) -> str:
        return self.seeded.db_url

    @property
    def storage_url(self) -> str:
        return self.seeded.storage_url


def logs(dialect: str, factory: pytest.TempPathFactory) -> Iterator[Log]:
    """The seeded log in ``dialect``, for a module-scoped fixture to yield from:
    ``yield from logs(request.param, tmp_path_factory)``."""
    with seeded_log(dialect, factory.mktemp(f"ui-{dialect}"), now=NOW) as seeded:
        yield Log(dialect, seeded)


def _param(dialect: str, value: Any) -> Any:
    if isinstance(value, dt.datetime):
        utc = value.astimezone(UTC)
        if dialect == "sqlite":  # as the SQLite store writes them: text, microseconds, Z
            return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
        if dialect == "mysql":  # DATETIME(6) holds UTC
            return utc.replace(tzinfo=None)
        return utc
    return value


async def direct_sql(log: Log, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` (``?`` placeholders) run on the log's database by its own driver."""
    values = [_param(log.dialect, p) for p in params]
    url = log.db_url
    if log.dialect == "sqlite":
        path = url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            return [tuple(r) for r in conn.execute(sql, values).fetchall()]
    parts = urlsplit(url)
    if log.dialect == "postgresql":
        import asyncpg

        schema = parse_qs(parts.query)["schema"][0]
        conn = await asyncpg.connect(parts._replace(query="").geturl())
        try:
            await conn.execute(f'SET search_path TO "{schema}"')
            counter = iter(range(1, 1000))
            numbered = re.sub(r"\?", lambda _: f"${next(counter)}", sql)
            return [tuple(r) for r in await conn.fetch(numbered, *values)]
        finally:
            await conn.close()
    import aiomysql

    conn = await aiomysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        db=parts.path.lstrip("/"),
    )
    try:
        async with conn.cursor() as cur:
            await cur.execute("SET time_zone = '+00:00'")
            await cur.execute(sql.replace("%", "%%").replace("?", "%s"), values)
            return [tuple(r) for r in await cur.fetchall()]
    finally:
        conn.close()
