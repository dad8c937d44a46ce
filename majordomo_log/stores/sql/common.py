"""Pieces shared by the SQL server stores (PostgreSQL, MySQL)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

if TYPE_CHECKING:
    from typing_extensions import Self

from ..._exceptions import ConfigError, StoreError, StoreUnavailable
from ...schema import CostUpdate, CostWindow, RowKey
from ..fork import ForkGuard, abandon
from . import costs
from .budget_table import BUDGETS_TABLE, SELECT_DEFINITIONS, decode_definitions

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def check_identifier(name: str, what: str) -> str:
    """Schema and database names are put into SQL text: only plain identifiers pass."""
    if not _IDENTIFIER.fullmatch(name):
        raise ConfigError(f"{what} {name!r} must be letters, digits and underscores")
    return name


def numbered_placeholders(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1, $2, ...``."""
    count = 0

    def number(_: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return f"${count}"

    return re.sub(r"\?", number, sql)


def format_placeholders(sql: str) -> str:
    """``?`` placeholders as the DB-API ``%s`` of PyMySQL (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


# A row when the table named by the parameter (or a view of that name) exists in the
# store's namespace.
_TABLE_EXISTS = {
    "sqlite": "SELECT 1 AS present FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?",
    "postgresql": "SELECT 1 AS present WHERE to_regclass(?) IS NOT NULL",
    "mysql": "SELECT 1 AS present FROM information_schema.tables"
    " WHERE table_schema = DATABASE() AND table_name = ?",
}


class SqlStoreBase:
    """What every SQL metadata store shares: its display URL (never a password),
    closed state, and opening as "connect, then migrate (or, read-only, check the
    table is there), or close again"."""

    dialect: str
    url: str
    _closed: bool = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url!r}{' closed' if self._closed else ''}>"

    @property
    def closed(self) -> bool:
        return self._closed

    async def migrate(self) -> list[str]:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        raise NotImplementedError

    # base.Repriceable: the reads are the same SQL everywhere, the update is per dialect.
    async def cost_rows(
        self, window: CostWindow, after: RowKey | None, limit: int
    ) -> list[dict[str, Any]]:
        return await costs.cost_rows(self, window, after, limit)

    async def count_cost_rows(self, window: CostWindow) -> int:
        return await costs.count_cost_rows(self, window)

    async def update_costs(self, updates: Sequence[CostUpdate]) -> int:
        raise NotImplementedError

    # base.BudgetRegistry: the read is the same SQL everywhere, the upsert is per dialect.
    async def save_budgets(self, definitions: Sequence[Mapping[str, Any]]) -> None:
        raise NotImplementedError

    async def budget_definitions(self) -> list[dict[str, Any]]:
        if not await self.has_table(BUDGETS_TABLE):  # a log migrated before 0005
            return []
        return decode_definitions(await self.fetch(SELECT_DEFINITIONS))

    async def has_table(self, name: str) -> bool:
        """Whether the store's namespace holds a table (or view) of this name."""
        return bool(await self.fetch(_TABLE_EXISTS[self.dialect], (name,)))

    async def _opened(self, migrate: bool, read_only: bool = False) -> Self:
        try:
            if read_only:
                await self._require_table()
            elif migrate:
                await self.migrate()
        except BaseException:
            await self.close()
            raise
        return self

    async def _require_table(self) -> None:
        """A reader opens a log, never makes one: no table is an error, not a migration."""
        if not await self.has_table("llm_requests"):
            raise StoreError(
                f"{self.url} has no llm_requests table: create it with `majordomo-log migrate`"
            )


class PooledStoreBase(SqlStoreBase):
    """A server store on a connection pool (PostgreSQL, MySQL): checking it is open,
    closing and reopening it. A subclass names its server and says how to close its
    pool, find the pool's transports and turn a driver error into ours."""

    server: ClassVar[str]  # the server's name in messages: "PostgreSQL", "MySQL"
    _pool: Any
    _open_pool: Callable[[], Awaitable[Any]] | None
    _scrub: Callable[[str], str]
    _fork: ForkGuard

    async def _close_pool(self) -> None:
        raise NotImplementedError

    def _pool_transports(self) -> Iterable[Any]:
        raise NotImplementedError

    def _pool_error(self, context: str, exc: BaseException) -> StoreError:
        raise NotImplementedError

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"{self.server} {self.url}: the store is closed")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._fork.inherited():  # the parent's pool: see reopen()
            abandon(self._pool, self._pool_transports)
            return
        await self._close_pool()

    async def reopen(self) -> None:
        """Fresh connections (see ``base.Reopenable``). In a forked child the inherited
        pool is abandoned (``fork.abandon``): closing it would send the protocol's goodbye
        on the parent's sockets and unregister them from the parent's epoll."""
        if self._open_pool is None:
            raise StoreError(f"{self.server} {self.url}: this store cannot reopen itself")
        if self._fork.inherited():
            abandon(self._pool, self._pool_transports)
        elif not self._closed:
            await self._close_pool()
        try:
            self._pool = await self._open_pool()
        except Exception as exc:
            raise self._pool_error(f"cannot reconnect to {self.server} {self.url}", exc) from exc
        self._fork.reset()
        self._closed = False


def scrubber(*secrets: str | None) -> Callable[[str], str]:
    """A function that blanks the given secrets (and their percent-encoded forms) out
    of a message: drivers sometimes echo a DSN or option back in their errors. A
    secret of one or two characters is not worth garbling every message for."""
    known = sorted(
        {form for s in secrets if s and len(s) >= 3 for form in (s, quote(s, safe=""))},
        key=len,
        reverse=True,
    )

    def scrub(text: str) -> str:
        for secret in known:
            text = text.replace(secret, "***")
        return text

    return scrub


def classify(
    context: str,
    exc: BaseException,
    transient: Callable[[BaseException], bool],
    scrub: Callable[[str], str] = str,
) -> StoreError:
    """The driver error as ours, secrets scrubbed: ``StoreUnavailable`` if it or one it
    was raised from or while handling is transient. The error that surfaces is often a
    cleanup's ("cannot call Transaction.__aexit__(): the connection is closed")."""
    kind = StoreUnavailable if any(map(transient, _chain(exc))) else StoreError
    return kind(scrub(f"{context}: {type(exc).__name__}: {exc}"))


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The error and the ones it was raised from or while handling (a few levels)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return
        yield seen
        seen = seen.__cause__ or seen.__context__
