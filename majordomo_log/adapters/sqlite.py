"""SQLite metadata store: the embedded default.

Writes are batched (one executemany and one commit per batch) and run in
aiosqlite's thread, off the event loop. WAL mode lets the CLI read while an
application writes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiosqlite

from .._exceptions import MigrationError, StoreError, StoreUnavailable
from .._migrations import MIGRATIONS_TABLE, migrations_for, split_statements
from .._record import COLUMNS, MONEY_COLUMNS
from ._sql import SqlStoreBase
from .base import OutcomeUpdate, Row

_INSERT = (
    f"INSERT OR IGNORE INTO llm_requests ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(COLUMNS))})"
)
_UPDATE_OUTCOME = "UPDATE llm_requests SET outcome = ?, outcome_at = ? WHERE request_id = ?"


def sqlite_timestamp(value: dt.datetime) -> str:
    """UTC ISO 8601 with microseconds and 'Z': sorts in time order, date() understands it."""
    utc = value.astimezone(dt.timezone.utc) if value.utcoffset() else value
    return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _encode(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return sqlite_timestamp(value)
    if isinstance(value, Decimal):
        return str(value)
    return value


# Only these columns hold values sqlite3 cannot bind as they are.
_TIME_COLUMNS = tuple(COLUMNS.index(c) for c in ("started_at", "ended_at", "outcome_at"))
_COST_COLUMNS = tuple(i for i, c in enumerate(COLUMNS) if c in MONEY_COLUMNS)


def _encode_rows(rows: Sequence[Row]) -> Iterator[list[Any]]:
    # A generator: executemany consumes it in aiosqlite's thread, not on the event loop.
    for row in rows:
        values = list(row)
        for i in _TIME_COLUMNS:
            if values[i] is not None:
                values[i] = sqlite_timestamp(values[i])
        for i in _COST_COLUMNS:
            if values[i] is not None:
                values[i] = format(values[i], "f")
        yield values


def _busy(exc: sqlite3.Error) -> bool:
    """Another process holds the file, or the disk is momentarily full: try again later."""
    text = str(exc).lower()
    return "locked" in text or "busy" in text or "disk is full" in text


async def _enable_wal(conn: aiosqlite.Connection) -> None:
    """Switch to WAL. SQLite fails this at once (no busy wait) while another process
    holds the file, as happens when several workers start together: retry briefly."""
    for attempt in range(50):
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 49:
                raise
            await asyncio.sleep(0.02 + 0.01 * attempt)


class SqliteAdapter(SqlStoreBase):
    """``await SqliteAdapter.create("llm_logs.db")`` creates the file and migrates it."""

    dialect = "sqlite"

    def __init__(self, connection: aiosqlite.Connection, path: str) -> None:
        self._conn = connection
        self.path = path
        self.url = f"sqlite:///{path}"
        self._closed = False

    @classmethod
    async def create(
        cls, path: str | Path = "llm_logs.db", *, migrate: bool = True
    ) -> SqliteAdapter:
        path = str(path)
        if path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        try:
            connector = aiosqlite.connect(path, isolation_level=None)
            # aiosqlite's worker thread is not a daemon: a program that never closed the
            # connection would hang at exit. The writer drains before the loop closes, and
            # an interrupted SQLite transaction rolls back, so a daemon thread loses nothing.
            thread = getattr(connector, "_thread", None)
            if thread is not None:
                thread.daemon = True
            conn = await connector
            await conn.execute("PRAGMA busy_timeout=5000")
            await _enable_wal(conn)
            await conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite database {path}: {exc}") from exc
        adapter = cls(conn, path)
        return await adapter._opened(migrate)

    async def migrate(self) -> list[str]:
        await self._conn.execute(
            f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} "
            "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        applied = []
        for migration in migrations_for(self.dialect):
            try:
                # The write lock first, then the check: processes starting together on
                # one file must not both apply the same migration.
                await self._conn.execute("BEGIN IMMEDIATE")
                async with self._conn.execute(
                    f"SELECT 1 FROM {MIGRATIONS_TABLE} WHERE name = ?", (migration.name,)
                ) as cursor:
                    done = await cursor.fetchone() is not None
                if not done:
                    for statement in split_statements(migration.sql):
                        await self._conn.execute(statement)
                    await self._conn.execute(
                        f"INSERT INTO {MIGRATIONS_TABLE} (name, applied_at) VALUES (?, ?)",
                        (migration.name, sqlite_timestamp(dt.datetime.now(dt.timezone.utc))),
                    )
                await self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                await self._rollback()
                raise MigrationError(f"migration {migration.name} failed: {exc}") from exc
            if not done:
                applied.append(migration.name)
        return applied

    async def write_batch(self, rows: Sequence[Row], outcomes: Sequence[OutcomeUpdate]) -> None:
        try:
            await self._conn.execute("BEGIN")
            if rows:
                await self._conn.executemany(_INSERT, _encode_rows(rows))
            if outcomes:
                await self._conn.executemany(
                    _UPDATE_OUTCOME,
                    [(outcome, sqlite_timestamp(when), rid) for rid, outcome, when in outcomes],
                )
            await self._conn.execute("COMMIT")
        except BaseException as exc:
            # Also on cancellation: aiosqlite runs statements in order in its thread, so
            # this ROLLBACK follows the interrupted statement and the next batch starts clean.
            await self._rollback()
            if isinstance(exc, sqlite3.OperationalError) and _busy(exc):
                raise StoreUnavailable(f"SQLite write failed: {exc}") from exc
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"SQLite write failed: {exc}") from exc
            raise

    async def _rollback(self) -> None:
        try:
            await self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # no transaction open: the failure came before BEGIN or after COMMIT

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        try:
            async with self._conn.execute(sql, tuple(_encode(p) for p in params)) as cursor:
                names = [d[0] for d in cursor.description or ()]
                return [dict(zip(names, row, strict=True)) for row in await cursor.fetchall()]
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite query failed: {exc}") from exc

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._conn.close()
