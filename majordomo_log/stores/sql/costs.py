"""Repricing's reads, the same SQL in every dialect (``base.Repriceable``), and the
values of a cost update in the order each store's UPDATE takes them.

Rows are read a page at a time in ``(started_at, request_id)`` order, each page
starting after the last row of the one before (keyset pagination: no OFFSET, so a page
costs the same at the end of a large log as at its start). ``started_at >= ?`` comes
first so that every dialect reads the ``started_at`` index from the key on: SQLite
sorts only rows of equal ``started_at`` ("USE TEMP B-TREE FOR RIGHT PART OF ORDER
BY"), PostgreSQL does an incremental sort, and InnoDB's index already ends with the
primary key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ...schema import REPRICE_COLUMNS, CostUpdate, CostWindow, RowKey

_SELECT = f"SELECT {', '.join(REPRICE_COLUMNS)} FROM llm_requests"
# The columns an update sets, in CostUpdate order after its request id.
UPDATED_COLUMNS: tuple[str, ...] = CostUpdate._fields[1:]


class _Fetches(Protocol):
    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...


def window_where(window: CostWindow, after: RowKey | None = None) -> tuple[str, list[Any]]:
    """The WHERE clause (with ``?`` placeholders) of a window, from a key on."""
    clauses: list[str] = []
    params: list[Any] = []
    if after is not None:
        started_at, request_id = after
        clauses.append("started_at >= ? AND (started_at > ? OR request_id > ?)")
        params += [started_at, started_at, request_id]
    if window.since is not None:
        clauses.append("started_at >= ?")
        params.append(window.since)
    if window.until is not None:
        clauses.append("started_at < ?")
        params.append(window.until)
    if window.model is not None:
        clauses.append("(model = ? OR served_model = ?)")
        params += [window.model, window.model]
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


async def cost_rows(
    store: _Fetches, window: CostWindow, after: RowKey | None, limit: int
) -> list[dict[str, Any]]:
    where, params = window_where(window, after)
    return await store.fetch(
        f"{_SELECT}{where} ORDER BY started_at, request_id LIMIT ?", [*params, int(limit)]
    )


async def count_cost_rows(store: _Fetches, window: CostWindow) -> int:
    where, params = window_where(window)
    rows = await store.fetch(f"SELECT COUNT(*) AS n FROM llm_requests{where}", params)
    return int(rows[0]["n"])
