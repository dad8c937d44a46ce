"""PostgreSQL metadata store (asyncpg): many application instances, one shared log.

Batches go in with one COPY straight into the table, its CSV built in a worker thread
(``postgres_copy.py``); when some rows are already there (a retry after an ambiguous
failure), into a per-connection temporary table, then one ``INSERT ... SELECT ... ON
CONFLICT (request_id) DO NOTHING``: COPY's speed, and a batch written twice adds no
row. The pool
replaces connections that die, so the writer's retry succeeds once the server
is back, without restarting the application.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl as ssl_module
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import asyncpg

from ..._exceptions import MigrationError, StoreError
from ...schema import COLUMNS, CostUpdate, OutcomeUpdate, Row
from ..fork import ForkGuard
from ..urls import check_url, redact_url, url_secrets
from .budget_table import encode_definitions
from .common import PooledStoreBase, check_identifier, classify, numbered_placeholders, scrubber
from .costs import UPDATED_COLUMNS
from .migrate import MIGRATIONS_TABLE, migrations_for, split_statements
from .outcomes import unmatched
from .postgres_copy import CopyBatch, copy_batch

_COLUMN_LIST = ", ".join(COLUMNS)
_STAGE = "majordomo_llm_requests_stage"
# A batch of cost updates is one statement: one array per column, unnested into rows.
_COST_TYPES = (
    "uuid",
    *("numeric" if c.endswith(("_cost", "_savings")) else "text" for c in UPDATED_COLUMNS),
)
_UPDATE_COSTS = (
    "UPDATE llm_requests AS t SET "
    + ", ".join(f"{c} = u.{c}" for c in UPDATED_COLUMNS)
    + " FROM unnest("
    + ", ".join(f"${i}::{kind}[]" for i, kind in enumerate(_COST_TYPES, 1))
    + f") AS u(request_id, {', '.join(UPDATED_COLUMNS)}) WHERE t.request_id = u.request_id"
)
_UPSERT_BUDGET = (
    "INSERT INTO llm_budgets (name, definition, updated_at) VALUES ($1, $2::jsonb, now())"
    " ON CONFLICT (name) DO UPDATE SET definition = excluded.definition,"
    " updated_at = excluded.updated_at"
)
_MIGRATE_LOCK = 0x6D646C6F67  # pg_advisory_xact_lock key: "mdlog"
# Worth retrying unchanged (SQLSTATE): serialization failure, deadlock, statement
# completion unknown, lock not available, statement timeout / cancel, admin or crash
# shutdown, cannot connect now (starting up, shutting down, in recovery), idle
# session timeout; and whole classes: 08 connection exception, 53 insufficient
# resources (too many connections, disk full, out of memory), 58 system error (I/O).
_TRANSIENT_STATES = frozenset(
    {"40001", "40P01", "40003", "55P03", "57014", "57P01", "57P02", "57P03", "57P05"}
)
_TRANSIENT_CLASSES = frozenset({"08", "53", "58"})


class PostgresAdapter(PooledStoreBase):
    """``await PostgresAdapter.create("postgresql://user@host/db")`` (or keyword
    arguments); ``schema=`` puts the tables in their own schema (created if missing)."""

    dialect = "postgresql"
    server = "PostgreSQL"

    def __init__(
        self,
        pool: asyncpg.Pool,
        url: str,
        schema: str | None,
        open_pool: Callable[[], Awaitable[asyncpg.Pool]] | None = None,
        scrub: Callable[[str], str] = str,
        read_only: bool = False,
    ) -> None:
        self._pool = pool
        self.url = url
        self.schema = schema
        self.read_only = read_only  # every transaction too: default_transaction_read_only
        self._closed = False
        # The connection arguments (password included) live only in this closure.
        self._open_pool = open_pool
        self._scrub = scrub
        self._fork = ForkGuard()

    @classmethod
    async def create(
        cls,
        dsn: str | None = None,
        *,
        host: str | None = None,
        port: int | None = None,
        database: str | None = None,
        user: str | None = None,
        password: str | None = None,
        schema: str | None = None,
        ssl: Any = None,
        min_size: int = 1,
        max_size: int = 4,
        command_timeout: float = 60.0,
        connect_timeout: float = 10.0,
        migrate: bool = True,
        read_only: bool = False,
    ) -> PostgresAdapter:
        """``read_only=True``: for reading an existing log. Nothing is created (not the
        schema, not the tables), every transaction is read-only, and a database without
        ``llm_requests`` is a ``StoreError``."""
        secrets = url_secrets(dsn) if dsn is not None else []
        if dsn is not None:
            check_url(dsn)
            dsn, url_schema = _split_schema(dsn)
            schema = schema or url_schema
        if schema is not None:
            check_identifier(schema, "schema")
        shown = (
            redact_url(dsn) if dsn else f"postgresql://{user or ''}@{host or ''}/{database or ''}"
        )
        connect: dict[str, Any] = dict(
            dsn=dsn, host=host, port=port, database=database, user=user, password=password, ssl=ssl
        )
        scrub = scrubber(password, *secrets)

        settings = {"search_path": f'"{schema}"'} if schema else {}
        if read_only:
            settings["default_transaction_read_only"] = "on"

        async def open_pool() -> asyncpg.Pool:
            return await asyncpg.create_pool(
                **connect,
                min_size=min_size,
                max_size=max_size,
                command_timeout=command_timeout,
                # asyncpg waits 60 s for a server that accepts TCP and never answers: a
                # retry series would take minutes before the writer spools.
                timeout=connect_timeout,
                server_settings=settings or None,
            )

        try:
            if schema is not None and not read_only:
                conn = await asyncpg.connect(**connect, timeout=connect_timeout)
                try:
                    await _ensure_schema(conn, schema)
                finally:
                    await conn.close()
            pool = await open_pool()
        except Exception as exc:
            raise _error(f"cannot connect to PostgreSQL {shown}", exc, scrub) from exc
        adapter = cls(
            pool,
            shown + (f" (schema {schema})" if schema else ""),
            schema,
            open_pool,
            scrub,
            read_only=read_only,
        )
        return await adapter._opened(migrate, read_only)

    async def migrate(self) -> list[str]:
        if self.read_only:
            raise StoreError(f"PostgreSQL {self.url}: the store was opened read-only")
        applied = []
        try:
            async with self._pool.acquire() as conn:
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATE_LOCK)
                    await conn.execute(
                        f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} "
                        "(name text PRIMARY KEY, applied_at timestamptz NOT NULL)"
                    )
                for migration in migrations_for(self.dialect):
                    async with conn.transaction():
                        # One migrator at a time across every process sharing the database.
                        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATE_LOCK)
                        done = await conn.fetchval(
                            f"SELECT 1 FROM {MIGRATIONS_TABLE} WHERE name = $1", migration.name
                        )
                        if done:
                            continue
                        for statement in split_statements(migration.sql):
                            await conn.execute(statement)
                        await conn.execute(
                            f"INSERT INTO {MIGRATIONS_TABLE} (name, applied_at) VALUES ($1, now())",
                            migration.name,
                        )
                    applied.append(migration.name)
        except asyncpg.PostgresError as exc:
            if _transient(exc):
                raise _error(f"PostgreSQL {self.url}: migration failed", exc, self._scrub) from exc
            raise MigrationError(
                self._scrub(f"PostgreSQL {self.url}: migration failed: {exc}")
            ) from exc
        except Exception as exc:
            raise _error(f"PostgreSQL {self.url}: migration failed", exc, self._scrub) from exc
        return applied

    async def write_batch(
        self, rows: Sequence[Row], outcomes: Sequence[OutcomeUpdate]
    ) -> list[str]:
        self._check_open()
        try:
            # Each row converted once, off the event loop: asyncpg gets finished bytes.
            batch = await asyncio.to_thread(copy_batch, rows) if rows else None
            async with self._pool.acquire() as conn:
                try:
                    return await _write(conn, batch, outcomes)
                except Exception as exc:
                    _discard_if_broken(conn, exc)
                    raise
        except Exception as exc:
            raise _error(f"PostgreSQL {self.url}: write failed", exc, self._scrub) from exc

    async def update_costs(self, updates: Sequence[CostUpdate]) -> int:
        """``base.Repriceable``: the whole batch as one UPDATE ... FROM unnest(arrays)."""
        self._check_open()
        # An id that is no UUID matches nothing, as in the text-keyed stores.
        kept = []
        for update in updates:
            request_id = _uuid(update.request_id)
            if request_id is not None:
                kept.append((request_id, *update[1:]))
        if not kept:
            return 0
        arrays = [list(column) for column in zip(*kept, strict=True)]
        try:
            async with self._pool.acquire() as conn:
                try:
                    async with conn.transaction():
                        status = await conn.execute(_UPDATE_COSTS, *arrays)
                except Exception as exc:
                    _discard_if_broken(conn, exc)
                    raise
        except Exception as exc:
            raise _error(f"PostgreSQL {self.url}: update failed", exc, self._scrub) from exc
        return int(str(status).rsplit(" ", 1)[-1])

    async def save_budgets(self, definitions: Sequence[Mapping[str, Any]]) -> None:
        """``base.BudgetRegistry``: every definition upserted in one transaction."""
        encoded = encode_definitions(definitions)
        self._check_open()
        if not encoded:
            return
        try:
            async with self._pool.acquire() as conn:
                try:
                    async with conn.transaction():
                        await conn.executemany(_UPSERT_BUDGET, encoded)
                except Exception as exc:
                    _discard_if_broken(conn, exc)
                    raise
        except Exception as exc:
            raise _error(f"PostgreSQL {self.url}: budgets not saved", exc, self._scrub) from exc

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        self._check_open()
        try:
            async with self._pool.acquire() as conn:
                try:
                    records = await conn.fetch(numbered_placeholders(sql), *map(_param, params))
                except Exception as exc:
                    _discard_if_broken(conn, exc)
                    raise
        except Exception as exc:
            raise _error(f"PostgreSQL {self.url}: query failed", exc, self._scrub) from exc
        return [{k: _decode(v) for k, v in record.items()} for record in records]

    def _pool_transports(self) -> Iterator[Any]:
        return _transports(self._pool)

    def _pool_error(self, context: str, exc: BaseException) -> StoreError:
        return _error(context, exc, self._scrub)

    async def _close_pool(self) -> None:
        try:
            # close() waits for connections in use; a write stuck on a dead server
            # must not hold the application's shutdown forever.
            await asyncio.wait_for(self._pool.close(), 10.0)
        except Exception:
            self._pool.terminate()


async def _write(
    conn: Any, batch: CopyBatch | None, outcomes: Sequence[OutcomeUpdate]
) -> list[str]:
    """Insert the rows, then apply the outcomes; the ids of outcomes that matched no row."""
    try:
        # Fast path: COPY straight into the table, in one transaction.
        async with conn.transaction():
            if batch is not None:
                await _copy(conn, "llm_requests", batch)
            return await _apply_outcomes(conn, outcomes)
    except asyncpg.exceptions.UniqueViolationError:
        # Some rows are already there (a retry after an ambiguous failure):
        # COPY into a staging table and keep only the new ones.
        async with conn.transaction():
            await conn.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} "
                "(LIKE llm_requests INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
            if batch is not None:
                await _copy(conn, _STAGE, batch)
            await conn.execute(
                f"INSERT INTO llm_requests ({_COLUMN_LIST}) "
                f"SELECT {_COLUMN_LIST} FROM {_STAGE} "
                "ON CONFLICT (request_id) DO NOTHING"
            )
            return await _apply_outcomes(conn, outcomes)


async def _copy(conn: Any, table: str, batch: CopyBatch) -> None:
    # One buffer, not an async iterable of pieces: asyncpg waits for the transport to
    # resume writing before each piece, and a connection killed while writing is paused
    # never resumes, so the COPY would hang until the command timeout. A memoryview:
    # asyncpg would take bytes for a file name (os.fspath).
    await conn.copy_to_table(
        table, source=memoryview(batch.data), columns=batch.columns, format="csv"
    )


def _discard_if_broken(conn: Any, exc: BaseException) -> None:
    """A connection that failed other than by the server refusing a statement (lost,
    timed out, its protocol state confused: a server that terminated an idle session
    makes asyncpg's next operation fail with InternalClientError) is not given back
    to the pool as it is: terminated, the pool opens a fresh one for the retry."""
    state = str(getattr(exc, "sqlstate", "") or "")
    if not isinstance(exc, asyncpg.PostgresError) or state[:2] == "08" or state[:3] == "57P":
        try:
            conn.terminate()
        except asyncpg.InterfaceError:
            pass  # closed already, and handed back to the pool by asyncpg itself


async def _ensure_schema(conn: Any, schema: str) -> None:
    """Create the schema unless it exists. Checked first: CREATE SCHEMA IF NOT EXISTS
    needs the CREATE right on the database even when the schema is already there, and
    a least-privilege role often has only its own schema. Locked: processes starting
    together must not race to create it."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATE_LOCK)
        exists = await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema)
        if not exists:
            await conn.execute(f'CREATE SCHEMA "{schema}"')


def _param(value: Any) -> Any:
    """A naive datetime means UTC here, as in the other stores (asyncpg would read it
    in the client's local time zone)."""
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value


async def _apply_outcomes(conn: Any, outcomes: Sequence[OutcomeUpdate]) -> list[str]:
    updates = [(o, when, _uuid(rid)) for rid, o, when in outcomes]
    updates = [u for u in updates if u[2] is not None]  # an id that is no UUID matches nothing
    present: list[str] = []
    if updates:
        await conn.executemany(
            "UPDATE llm_requests SET outcome = $1, outcome_at = $2 WHERE request_id = $3", updates
        )
        ids = list({u[2] for u in updates})
        found = await conn.fetch(
            "SELECT request_id::text FROM llm_requests WHERE request_id = ANY($1::uuid[])", ids
        )
        present = [record[0] for record in found]
    return unmatched(outcomes, present)


def _split_schema(dsn: str) -> tuple[str, str | None]:
    """Take our ``schema`` query parameter out: asyncpg would send it as a server setting."""
    parts = urlsplit(dsn)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return parts._replace(query=rest).geturl(), schema


def _uuid(value: str) -> uuid.UUID | None:
    """The UUID of an id spelled as the log spells them (lower case, dashed): other
    spellings match nothing, as in the text-keyed stores."""
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return None
    return parsed if str(parsed) == value else None


def _decode(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.timezone.utc)
    return value


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, asyncpg.PostgresError):
        state = str(getattr(exc, "sqlstate", "") or "")
        return state in _TRANSIENT_STATES or state[:2] in _TRANSIENT_CLASSES
    if isinstance(exc, ssl_module.SSLCertVerificationError):
        return False  # a certificate that does not verify will not verify next time
    if isinstance(exc, asyncpg.exceptions.InternalClientError):
        return True  # the protocol lost track of a connection the server dropped
    if isinstance(exc, asyncpg.InterfaceError):
        # "connection is closed" (the pool hands out a fresh one next time); the other
        # interface errors are misuse, which retrying repeats.
        return "closed" in str(exc)
    return isinstance(exc, (OSError, TimeoutError, asyncio.TimeoutError))


def _error(context: str, exc: BaseException, scrub: Callable[[str], str] = str) -> StoreError:
    return classify(context, exc, _transient, scrub)


def _transports(pool: Any) -> Iterator[Any]:
    """The transports of a pool's connections (asyncpg internals; see ``stores/fork.py``)."""
    for holder in pool._holders:
        con = holder._con
        if con is not None:
            yield con._transport
