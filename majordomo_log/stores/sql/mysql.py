"""MySQL / MariaDB metadata store (aiomysql).

aiomysql escapes parameters on the event loop (about 24 ms per 1,000 rows here),
so a batch's multi-row INSERT text is built in a worker thread and only sent
from the loop; the event loop never escapes a value. ``ON DUPLICATE KEY UPDATE``
with a no-op makes a re-written batch add nothing while, unlike ``INSERT IGNORE``,
still failing loudly on a value the server rejects.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import aiomysql
import pymysql
from pymysql.converters import escape_item

from ..._exceptions import ConfigError, MigrationError, StoreError
from ..._loop_turns import LoopTurns
from ...schema import COLUMNS, CostUpdate, OutcomeUpdate, Row
from ..fork import ForkGuard
from ..urls import check_url
from .budget_table import encode_definitions
from .common import PooledStoreBase, check_identifier, classify, format_placeholders, scrubber
from .costs import UPDATED_COLUMNS
from .migrate import MIGRATIONS_TABLE, migrations_for, split_statements
from .outcomes import id_chunks, unmatched

ROWS_PER_STATEMENT = 500
BYTES_PER_STATEMENT = 4_000_000  # far below max_allowed_packet (16 MB by default)
_INSERT_HEAD = f"INSERT INTO llm_requests ({', '.join(COLUMNS)}) VALUES "
_INSERT_TAIL = " ON DUPLICATE KEY UPDATE request_id = request_id"
_TAGS = COLUMNS.index("tags")
# Cost updates: one UPDATE per ROWS_PER_STATEMENT rows, joined to their new values as a
# derived table of SELECT ... UNION ALL (MySQL 8 and MariaDB both take it; their VALUES
# table constructors differ).
_UPDATE_COSTS_HEAD = "UPDATE llm_requests AS t JOIN ("
_UPDATE_COSTS_TAIL = ") AS u ON t.request_id = u.request_id SET " + ", ".join(
    f"t.{c} = u.{c}" for c in UPDATED_COLUMNS
)
# Error codes worth retrying unchanged. Server: disk full (1021), too many connections
# (1040, 1203), shutdown in progress (1053), network read/write errors and timeouts
# (1152, 1158-1161), lock wait timeout (1205), deadlock (1213), query interrupted or
# connection killed (1317, 1927), statement timeouts (1969 MariaDB, 3024 MySQL),
# read-only during a failover (1792, 1836), disconnected for inactivity (4031).
# Client: cannot connect (2002, 2003), server gone away (2006), lost connection
# (2013, 2055). Bad credentials (1045), unknown database (1049), missing table or
# column (1146, 1054) and data errors are permanent.
_TRANSIENT_CODES = frozenset(
    {1021, 1040, 1053, 1152, 1158, 1159, 1160, 1161, 1203, 1205, 1213, 1317, 1792, 1836}
    | {1927, 1969, 3024, 4031, 2002, 2003, 2006, 2013, 2055}
)
# Table exists, duplicate column, duplicate index name.
_ALREADY_DONE = {1050, 1060, 1061}


class MySQLAdapter(PooledStoreBase):
    """``await MySQLAdapter.create("mysql://user:pass@host:3306/db")`` (or keyword
    arguments). Works with MySQL 8 and MariaDB 10.11."""

    dialect = "mysql"
    server = "MySQL"

    def __init__(
        self,
        pool: aiomysql.Pool,
        url: str,
        command_timeout: float = 60.0,
        open_pool: Callable[[], Awaitable[aiomysql.Pool]] | None = None,
        scrub: Callable[[str], str] = str,
        tls: bool = False,
        read_only: bool = False,
    ) -> None:
        self._pool = pool
        self.url = url
        self.command_timeout = command_timeout
        self._closed = False
        # The connection arguments (password included) live only in this closure.
        self._open_pool = open_pool
        self._scrub = scrub
        self._tls = tls
        self._fork = ForkGuard()
        self.read_only = read_only

    async def _require_tls(self) -> None:
        """aiomysql falls back to plain text when the server offers no TLS: refuse."""
        rows = await self.fetch("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        if not rows or not rows[0].get("Value"):
            await self.close()
            raise StoreError(f"MySQL {self.url}: TLS was asked for, but the server did not use it")

    @classmethod
    async def create(
        cls,
        dsn: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 3306,
        database: str | None = None,
        user: str = "root",
        password: str = "",
        ssl: Any = None,
        minsize: int = 1,
        maxsize: int = 4,
        connect_timeout: float = 10.0,
        command_timeout: float = 60.0,
        migrate: bool = True,
        read_only: bool = False,
    ) -> MySQLAdapter:
        """``read_only=True``: for reading an existing log. Nothing is created, every
        query runs in a read-only transaction, and a database without ``llm_requests``
        is a ``StoreError``."""
        if dsn is not None:
            check_url(dsn)
            parts = urlsplit(dsn)
            if parts.scheme not in ("mysql", "mariadb"):
                raise ConfigError("a MySQL URL starts with mysql:// or mariadb://")
            host = parts.hostname or host
            port = parts.port or port
            user = unquote(parts.username) if parts.username else user
            password = unquote(parts.password) if parts.password else password
            database = parts.path.lstrip("/") or database
            if dict(parse_qsl(parts.query)).get("ssl") in ("1", "true", "required"):
                ssl = ssl or True
        if not database:
            raise ConfigError("MySQLAdapter needs a database: mysql://user@host/<database>")
        check_identifier(database, "database")
        shown = f"mysql://{user}@{host}:{port}/{database}"
        scrub = scrubber(password)

        async def open_pool() -> aiomysql.Pool:
            return await aiomysql.create_pool(
                host=host,
                port=port,
                user=user,
                password=password,
                db=database,
                minsize=minsize,
                maxsize=maxsize,
                charset="utf8mb4",
                autocommit=False,
                connect_timeout=connect_timeout,
                ssl=ssl,
                # UTC for DATETIME, and backslash escaping on: the INSERT text is escaped
                # that way, so a server default of NO_BACKSLASH_ESCAPES must not apply.
                init_command=(
                    "SET time_zone = '+00:00', "
                    "sql_mode = REPLACE(@@SESSION.sql_mode, 'NO_BACKSLASH_ESCAPES', '')"
                ),
                pool_recycle=3600,
            )

        try:
            pool = await open_pool()
        except Exception as exc:
            raise _error(f"cannot connect to MySQL {shown}", exc, scrub) from exc
        adapter = cls(
            pool, shown, command_timeout, open_pool, scrub, tls=bool(ssl), read_only=read_only
        )
        if ssl:
            await adapter._require_tls()
        return await adapter._opened(migrate, read_only)

    async def reopen(self) -> None:
        """Fresh connections (see ``PooledStoreBase.reopen``), still over TLS if asked."""
        await super().reopen()
        if self._tls:
            await self._require_tls()

    async def migrate(self) -> list[str]:
        """MySQL commits each DDL statement at once, so a migration cannot be one
        transaction: each file is written to be safe to run again (IF NOT EXISTS), and
        a named lock keeps two processes from migrating at the same time."""
        self._check_writable()
        applied = []
        try:
            async with self._pool.acquire() as conn, conn.cursor() as cur:
                await cur.execute("SELECT GET_LOCK('majordomo_log_migrate', 60)")
                (locked,) = await cur.fetchone()
                if locked != 1:
                    raise MigrationError(
                        f"MySQL {self.url}: another process holds the migration lock"
                    )
                try:
                    await cur.execute("SHOW TABLES LIKE %s", (MIGRATIONS_TABLE,))
                    if not await cur.fetchall():
                        await cur.execute(
                            f"CREATE TABLE {MIGRATIONS_TABLE} (name VARCHAR(255) NOT NULL "
                            "PRIMARY KEY, applied_at DATETIME(6) NOT NULL)"
                        )
                    await cur.execute(f"SELECT name FROM {MIGRATIONS_TABLE}")
                    done = {row[0] for row in await cur.fetchall()}
                    for migration in migrations_for(self.dialect):
                        if migration.name in done:
                            continue
                        for statement in split_statements(migration.sql):
                            try:
                                await cur.execute(statement)
                            except pymysql.MySQLError as exc:
                                # DDL commits as it goes: after a failure halfway, what
                                # already exists is done, and the re-run goes on.
                                if not exc.args or exc.args[0] not in _ALREADY_DONE:
                                    raise
                        await cur.execute(
                            f"INSERT INTO {MIGRATIONS_TABLE} (name, applied_at) "
                            "VALUES (%s, UTC_TIMESTAMP(6))",
                            (migration.name,),
                        )
                        await conn.commit()
                        applied.append(migration.name)
                finally:
                    await cur.execute("SELECT RELEASE_LOCK('majordomo_log_migrate')")
        except pymysql.MySQLError as exc:
            if _transient(exc):
                raise _error(f"MySQL {self.url}: migration failed", exc, self._scrub) from exc
            raise MigrationError(self._scrub(f"MySQL {self.url}: migration failed: {exc}")) from exc
        except Exception as exc:
            raise _error(f"MySQL {self.url}: migration failed", exc, self._scrub) from exc
        return applied

    async def write_batch(
        self, rows: Sequence[Row], outcomes: Sequence[OutcomeUpdate]
    ) -> list[str]:
        self._check_open()
        self._check_writable()
        present: list[str] = []
        try:
            # Escaped and encoded off the event loop: aiomysql's escaping of parameters
            # cost 23.6 ms of event-loop time per 1000 rows (REFERENCE.md §3).
            statements = await asyncio.to_thread(_insert_statements, rows) if rows else []
            await self._in_transaction(statements, outcomes, present)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise _error(f"MySQL {self.url}: write failed", exc, self._scrub) from exc
        return unmatched(outcomes, present)

    async def update_costs(self, updates: Sequence[CostUpdate]) -> int:
        """``base.Repriceable``: UPDATE ... JOIN a derived table of the new values, built
        and escaped in a worker thread like the INSERTs. Returns the rows MySQL counts as
        changed (it counts a row set to the values it had as not affected)."""
        self._check_open()
        self._check_writable()
        try:
            statements = await asyncio.to_thread(_cost_statements, updates) if updates else []
            return await self._in_transaction(statements, ())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise _error(f"MySQL {self.url}: update failed", exc, self._scrub) from exc

    async def save_budgets(self, definitions: Sequence[Mapping[str, Any]]) -> None:
        """``base.BudgetRegistry``: one upsert per budget, in one transaction. Each names its
        new definition twice rather than through VALUES(), which MySQL 8.0.20+ deprecates
        and MariaDB has no alias syntax for. A wrapper has a few budgets: escaped here, not
        in a worker thread as a batch of rows is."""
        encoded = encode_definitions(definitions)
        self._check_open()
        self._check_writable()
        statements = [
            (
                "INSERT INTO llm_budgets (name, definition, updated_at) VALUES"
                f" ({_literal(name)}, {_literal(text)}, UTC_TIMESTAMP(6))"
                f" ON DUPLICATE KEY UPDATE definition = {_literal(text)},"
                " updated_at = UTC_TIMESTAMP(6)"
            ).encode()
            for name, text in encoded
        ]
        if not statements:
            return
        try:
            await self._in_transaction(statements, ())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise _error(f"MySQL {self.url}: budgets not saved", exc, self._scrub) from exc

    async def _in_transaction(
        self,
        statements: Sequence[bytes],
        outcomes: Sequence[OutcomeUpdate],
        present: list[str] | None = None,
    ) -> int:
        """Run the statements, then the outcome updates, in one transaction; the rows
        they affected (``present`` gets the outcomes' ids that are in the table). aiomysql
        has no read timeout, and its connect timeout stops at the TCP open: a frozen
        server would hold the writer in the handshake or the statement."""
        conn = await asyncio.wait_for(self._pool.acquire(), self.command_timeout)
        try:
            return await asyncio.wait_for(
                self._write(conn, statements, outcomes, [] if present is None else present),
                self.command_timeout,
            )
        except (asyncio.TimeoutError, asyncio.CancelledError):
            conn.close()  # mid-statement: the connection cannot be reused
            raise
        except BaseException:
            await _rollback(conn)
            raise
        finally:
            self._pool.release(conn)

    async def _write(
        self,
        conn: Any,
        statements: Sequence[bytes],
        outcomes: Sequence[OutcomeUpdate],
        present: list[str],
    ) -> int:
        affected = 0
        async with conn.cursor() as cur:
            await conn.begin()
            for statement in statements:
                await cur.execute(statement)
                affected += max(cur.rowcount, 0)
            for request_id, outcome, when in outcomes:
                await cur.execute(
                    "UPDATE llm_requests SET outcome = %s, outcome_at = %s WHERE request_id = %s",
                    (outcome, _utc_naive(when), request_id),
                )
            # Which ids are there: MySQL counts an update to the values a row already had
            # (a replayed outcome) as affecting nothing, so rowcount cannot tell.
            for ids in id_chunks(outcomes):
                marks = ", ".join(["%s"] * len(ids))
                await cur.execute(
                    f"SELECT request_id FROM llm_requests WHERE request_id IN ({marks})", ids
                )
                present.extend(found for (found,) in await cur.fetchall())
        await conn.commit()
        return affected

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        self._check_open()
        try:
            async with self._pool.acquire() as conn, conn.cursor(aiomysql.DictCursor) as cur:
                if self.read_only:  # the session's next transaction only: set per query
                    await cur.execute("START TRANSACTION READ ONLY")
                if params:  # PyMySQL only %-formats (and so only unescapes %%) with params
                    await cur.execute(format_placeholders(sql), tuple(_param(p) for p in params))
                else:
                    await cur.execute(sql)
                rows = await cur.fetchall()
                await conn.commit()  # end the read snapshot: the next query sees new rows
        except Exception as exc:
            raise _error(f"MySQL {self.url}: query failed", exc, self._scrub) from exc
        return [{k: _decode(v) for k, v in row.items()} for row in rows]

    def _check_writable(self) -> None:
        # PostgreSQL and SQLite refuse writes on a read-only session themselves; a
        # MySQL session here is read-only one query at a time (see fetch).
        if self.read_only:
            raise StoreError(f"MySQL {self.url}: the store was opened read-only")

    def _pool_transports(self) -> Iterator[Any]:
        return _transports(self._pool)

    def _pool_error(self, context: str, exc: BaseException) -> StoreError:
        return _error(context, exc, self._scrub)

    async def _close_pool(self) -> None:
        self._pool.close()
        try:
            # wait_closed() waits for connections in use: a write stuck on a dead
            # server must not hold the application's shutdown forever.
            await asyncio.wait_for(self._pool.wait_closed(), 10.0)
        except Exception:
            self._pool.terminate()


def _utc_naive(value: dt.datetime) -> dt.datetime:
    """DATETIME has no zone: store UTC, as the session's time zone says."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value


def _param(value: Any) -> Any:
    return _utc_naive(value) if isinstance(value, dt.datetime) else value


def _literal(value: Any) -> str:
    if value is None:  # a third of a typical row's values
        return "NULL"
    if isinstance(value, dt.datetime):
        value = _utc_naive(value)
    elif isinstance(value, Decimal):
        return format(value, "f")
    elif isinstance(value, bool):
        return "1" if value else "0"
    return str(escape_item(value, "utf8mb4"))


def _insert_statements(rows: Sequence[Row]) -> list[bytes]:
    """Worker thread: the batch as multi-row INSERT statements, every value escaped
    (each row converted once), each under ROWS_PER_STATEMENT rows and
    BYTES_PER_STATEMENT characters, encoded as aiomysql would encode them: the event
    loop only sends the bytes."""
    statements: list[bytes] = []
    values: list[str] = []
    size = 0
    turns = LoopTurns()

    def flush() -> None:
        text = _INSERT_HEAD + ", ".join(values) + _INSERT_TAIL
        statements.append(text.encode("utf-8", "surrogateescape"))

    for row in rows:
        turns.maybe_yield()
        cells = list(row)
        if not isinstance(cells[_TAGS], str):
            cells[_TAGS] = json.dumps(cells[_TAGS])
        value = "(" + ", ".join([_literal(v) for v in cells]) + ")"
        if values and (
            len(values) >= ROWS_PER_STATEMENT or size + len(value) > BYTES_PER_STATEMENT
        ):
            flush()
            values, size = [], 0
        values.append(value)
        size += len(value) + 2
    if values:
        flush()
    return statements


def _cost_statements(updates: Sequence[CostUpdate]) -> list[bytes]:
    """Worker thread: the updates as UPDATE statements of up to ROWS_PER_STATEMENT rows,
    every value escaped; the first SELECT of each names the columns."""
    statements: list[bytes] = []
    names = CostUpdate._fields
    for start in range(0, len(updates), ROWS_PER_STATEMENT):
        chunk = updates[start : start + ROWS_PER_STATEMENT]
        first = ", ".join(f"{_literal(v)} AS {n}" for v, n in zip(chunk[0], names, strict=True))
        rest = ("SELECT " + ", ".join([_literal(v) for v in update]) for update in chunk[1:])
        text = _UPDATE_COSTS_HEAD + " UNION ALL ".join(["SELECT " + first, *rest])
        statements.append((text + _UPDATE_COSTS_TAIL).encode("utf-8", "surrogateescape"))
    return statements


def _decode(value: Any) -> Any:
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value


async def _rollback(conn: Any) -> None:
    try:
        await conn.rollback()
    except Exception:
        conn.close()  # a connection in an unknown state is not returned to the pool


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, pymysql.err.InterfaceError):
        return True  # the connection is closed or was lost: a fresh one is opened next time
    if isinstance(exc, pymysql.MySQLError):
        return bool(exc.args) and exc.args[0] in _TRANSIENT_CODES
    if isinstance(exc, ssl_module.SSLCertVerificationError):
        return False  # a certificate that does not verify will not verify next time
    return isinstance(exc, (OSError, TimeoutError, asyncio.TimeoutError))


def _error(context: str, exc: BaseException, scrub: Callable[[str], str] = str) -> StoreError:
    return classify(context, exc, _transient, scrub)


def _transports(pool: Any) -> Iterator[Any]:
    """The transports of a pool's connections (aiomysql internals; see ``stores/fork.py``)."""
    for conn in (*pool._free, *pool._used):
        writer = getattr(conn, "_writer", None)
        if writer is not None:
            yield writer.transport
