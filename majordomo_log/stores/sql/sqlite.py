"""SQLite metadata store: the embedded default.

Writes are batched (one transaction per batch) and run in threads, off the event
loop: the rows are converted in a worker thread (``sqlite_rows.py``), then inserted in
aiosqlite's thread. WAL mode lets the CLI read while an
application writes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiosqlite

from ..._exceptions import MigrationError, StoreError, StoreUnavailable
from ...schema import CostUpdate, OutcomeUpdate, Row
from ..fork import ForkGuard, keep_forever
from .budget_table import encode_definitions
from .common import SqlStoreBase
from .costs import UPDATED_COLUMNS
from .migrate import MIGRATIONS_TABLE, migrations_for, split_statements
from .outcomes import id_chunks, unmatched
from .sqlite_rows import CHUNK_ROWS, EncodedBatch, encode_batch, sqlite_timestamp

_UPDATE_OUTCOME = "UPDATE llm_requests SET outcome = ?, outcome_at = ? WHERE request_id = ?"
_UPDATE_COSTS = (
    f"UPDATE llm_requests SET {', '.join(f'{c} = ?' for c in UPDATED_COLUMNS)} WHERE request_id = ?"
)
_UPSERT_BUDGET = (
    "INSERT INTO llm_budgets (name, definition, updated_at) VALUES (?, ?, ?)"
    " ON CONFLICT (name) DO UPDATE SET definition = excluded.definition,"
    " updated_at = excluded.updated_at"
)


def _encode(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return sqlite_timestamp(value)
    if isinstance(value, Decimal):
        return str(value)
    return value


_TRANSIENT_NAMES = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_FULL", "SQLITE_IOERR")


def _busy(exc: sqlite3.Error) -> bool:
    """Another process holds the file, the disk is full or failing: try again later.
    A missing table or column, a constraint or a bad value is permanent."""
    name = getattr(exc, "sqlite_errorname", None)  # Python 3.11+
    if isinstance(name, str):
        return name.startswith(_TRANSIENT_NAMES)
    text = str(exc).lower()
    return any(word in text for word in ("locked", "busy", "disk is full", "disk i/o error"))


async def _connect(path: str, read_only: bool = False) -> aiosqlite.Connection:
    # check_same_thread=False: a forked child closes the inherited connection from its
    # own thread (reopen()); aiosqlite otherwise uses it from its worker thread only.
    # Read-only is SQLite's own mode=ro: nothing can write the file, not even by mistake.
    target = f"file:{quote(path)}?mode=ro" if read_only else path
    connector = aiosqlite.connect(
        target, isolation_level=None, check_same_thread=False, uri=read_only
    )
    # aiosqlite's worker thread is not a daemon: a program that never closed the
    # connection would hang at exit. The writer drains before the loop closes, and
    # an interrupted SQLite transaction rolls back, so a daemon thread loses nothing.
    thread = getattr(connector, "_thread", None)
    if thread is not None:
        thread.daemon = True
    conn = await connector
    try:
        await conn.execute("PRAGMA busy_timeout=5000")
        if not read_only:  # both are settings of a writer; journal_mode writes the file
            await _enable_wal(conn)
            await conn.execute("PRAGMA synchronous=NORMAL")
    except BaseException:
        await conn.close()
        raise
    return conn


def _close_inherited(conn: aiosqlite.Connection) -> bool:
    """In a forked child: close the parent's sqlite3 connection here, synchronously,
    and forget the aiosqlite wrapper (its worker thread does not exist in the child).

    Closing, not leaking, is what keeps the child's own connection safe: SQLite keeps
    one lock table per file per process, and the child inherited the parent's. Left
    open, the inherited connection makes SQLite believe the child already holds the
    file's shared locks, so the child's new connection takes none, and the parent,
    closing last as far as the locks say, checkpoints and deletes the WAL the child
    is still writing to (rows lost; tests/stores/test_fork.py shows it). Closing it in the
    child sends nothing and releases no lock of the parent's: POSIX locks belong to
    the process that took them, and SQLite sees the parent's shared lock and skips
    the checkpoint. Returns False if it could not be closed in time (a thread of the
    parent's was inside SQLite at the fork and its mutex stays held)."""
    raw = getattr(conn, "_connection", None)
    keep_forever(conn)
    if raw is None:
        return True
    conn._connection = None  # the wrapper's __del__ would queue work for a dead thread
    closer = threading.Thread(target=_quietly_close, args=(raw,), daemon=True)
    closer.start()
    closer.join(5.0)
    return not closer.is_alive()


def _quietly_close(raw: sqlite3.Connection) -> None:
    try:
        raw.close()
    except sqlite3.Error:
        pass


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
    """``await SqliteAdapter.create("llm_logs.db")`` creates the file and migrates it;
    ``read_only=True`` opens an existing log for reading and creates nothing."""

    dialect = "sqlite"

    def __init__(
        self, connection: aiosqlite.Connection, path: str, *, read_only: bool = False
    ) -> None:
        self._conn = connection
        self.path = path
        self.read_only = read_only
        self.url = f"sqlite:///{path}"
        self._closed = False
        self._fork = ForkGuard()
        # One connection holds one transaction: two writers sharing this store (wrappers
        # with different body stores) must take turns. Bound to the loop it serves.
        self._write_lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    async def create(
        cls, path: str | Path = "llm_logs.db", *, migrate: bool = True, read_only: bool = False
    ) -> SqliteAdapter:
        """``read_only=True``: the file must exist and hold ``llm_requests``; it is
        opened read-only (SQLite's ``mode=ro``) and never migrated."""
        path = str(path)
        if read_only:
            if path == ":memory:" or not Path(path).is_file():
                raise StoreError(f"no SQLite database at {path}")
        elif path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = await _connect(path, read_only)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite database {path}: {exc}") from exc
        adapter = cls(conn, path, read_only=read_only)
        return await adapter._opened(migrate, read_only)

    async def reopen(self) -> None:
        """A fresh connection to the same file (see ``base.Reopenable``): in a forked
        child the inherited one is closed directly (``_close_inherited``); in the
        process that opened it, closed through aiosqlite."""
        if self.path == ":memory:":
            raise StoreError("an in-memory SQLite database cannot be reopened")
        if self._fork.inherited():
            if not _close_inherited(self._conn):
                raise StoreError(
                    f"SQLite {self.path}: the connection inherited across fork() is stuck "
                    "(the parent was inside SQLite when it forked); not opening another"
                )
        elif not self._closed:
            await self._conn.close()
        try:
            self._conn = await _connect(self.path, self.read_only)
        except sqlite3.Error as exc:
            kind = StoreUnavailable if _busy(exc) else StoreError
            raise kind(f"cannot reopen SQLite database {self.path}: {exc}") from exc
        self._fork.reset()
        self._closed = False

    async def migrate(self) -> list[str]:
        if self.read_only:
            raise StoreError(f"SQLite {self.path}: the store was opened read-only")
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

    async def write_batch(
        self, rows: Sequence[Row], outcomes: Sequence[OutcomeUpdate]
    ) -> list[str]:
        async with self._writing():
            return await self._write_batch(rows, outcomes)

    def _writing(self) -> asyncio.Lock:
        """The lock a write holds (see ``__init__``), once the store is known to be open."""
        if self._closed:
            raise StoreError(f"SQLite {self.path}: the store is closed")
        loop = asyncio.get_running_loop()
        if self._lock_loop is not loop or self._write_lock is None:
            self._write_lock, self._lock_loop = asyncio.Lock(), loop
        return self._write_lock

    async def update_costs(self, updates: Sequence[CostUpdate]) -> int:
        """``base.Repriceable``: one transaction, ``CHUNK_ROWS`` updates per executemany."""
        params = [
            (
                *(None if v is None else format(v, "f") for v in u[1:8]),  # money as text
                u.cost_status,
                u.price_version,
                u.request_id,
            )
            for u in updates
        ]
        matched = 0
        async with self._writing():
            try:
                await self._conn.execute("BEGIN")
                for start in range(0, len(params), CHUNK_ROWS):
                    cursor = await self._conn.executemany(
                        _UPDATE_COSTS, params[start : start + CHUNK_ROWS]
                    )
                    matched += max(cursor.rowcount, 0)
                await self._conn.execute("COMMIT")
            except BaseException as exc:
                await self._rollback()
                if isinstance(exc, sqlite3.OperationalError) and _busy(exc):
                    raise StoreUnavailable(f"SQLite update failed: {exc}") from exc
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"SQLite update failed: {exc}") from exc
                raise
        return matched

    async def save_budgets(self, definitions: Sequence[Mapping[str, Any]]) -> None:
        """``base.BudgetRegistry``: every definition upserted in one transaction."""
        encoded = encode_definitions(definitions)
        if not encoded:
            return
        now = sqlite_timestamp(dt.datetime.now(dt.timezone.utc))
        async with self._writing():
            try:
                await self._conn.execute("BEGIN")
                await self._conn.executemany(_UPSERT_BUDGET, [(n, d, now) for n, d in encoded])
                await self._conn.execute("COMMIT")
            except BaseException as exc:
                await self._rollback()
                if isinstance(exc, sqlite3.OperationalError) and _busy(exc):
                    raise StoreUnavailable(f"SQLite budgets not saved: {exc}") from exc
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"SQLite budgets not saved: {exc}") from exc
                raise

    async def _write_batch(
        self, rows: Sequence[Row], outcomes: Sequence[OutcomeUpdate]
    ) -> list[str]:
        # Each row converted once, in a worker thread; sqlite3 binds the result as it is.
        batch = await asyncio.to_thread(encode_batch, rows) if rows else None
        present: list[str] = []
        try:
            await self._conn.execute("BEGIN")
            if batch is not None:
                await self._insert(batch)
            if outcomes:
                await self._conn.executemany(
                    _UPDATE_OUTCOME,
                    [(outcome, sqlite_timestamp(when), rid) for rid, outcome, when in outcomes],
                )
                for ids in id_chunks(outcomes):
                    marks = ", ".join("?" * len(ids))
                    sql = f"SELECT request_id FROM llm_requests WHERE request_id IN ({marks})"
                    async with self._conn.execute(sql, ids) as cursor:
                        present += [found for (found,) in await cursor.fetchall()]
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
        return unmatched(outcomes, present)

    async def _insert(self, batch: EncodedBatch) -> None:
        # In pieces: binding holds the GIL in aiosqlite's thread, and the event loop
        # waits for it (up to 5 ms a time); a turn between pieces bounds that.
        for start in range(0, len(batch.params), CHUNK_ROWS):
            await self._conn.executemany(batch.sql, batch.params[start : start + CHUNK_ROWS])

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
        if self._fork.inherited():  # the parent's connection: see reopen()
            _close_inherited(self._conn)
            return
        await self._conn.close()
