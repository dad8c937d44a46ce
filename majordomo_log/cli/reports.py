"""Read side: the queries behind ``majordomo-log report|tail|show|prices``.

Plain SQL over ``llm_requests``, written once with ``?`` placeholders; the per-dialect
pieces are how a timestamp becomes a day and, on MySQL, comparing and grouping text as
bytes (its collations pad: 'u-1 ' would be 'u-1', where the other dialects keep them
apart). Column names come from allow-lists (``GROUPINGS``, ``CallFilter``'s fields),
never from the user's text; values are always parameters. The CLI formats what these
return, so the same functions serve code that wants the numbers.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .._exceptions import ConfigError
from ..record.pricing import PriceTable, plain_decimal
from ..schema import MONEY_COLUMNS, RowKey
from ..stores.base import MetadataStore
from ..stores.sql.text import as_text, one_of, one_of_params, text_sql

GROUPINGS = (
    "model",
    "served_model",
    "provider",
    "operation",
    "feature",
    "workflow",
    "user_id",
    "api_key_alias",
    "environment",
    "service_tier",
    "session_id",
    "trace_id",
    "prompt_version",
    "status",
    "day",
)
_DAY_SQL = {
    "sqlite": "substr(started_at, 1, 10)",
    "postgresql": "to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    "mysql": "DATE_FORMAT(started_at, '%Y-%m-%d')",
}
# Attempts a hard budget refused are rows (status 'blocked'), never calls: counted apart.
CALLS = "SUM(CASE WHEN status <> 'blocked' THEN 1 ELSE 0 END)"
BLOCKED = "SUM(CASE WHEN status = 'blocked' THEN 1 ELSE 0 END)"
TAIL_COLUMNS = (
    "request_id",
    "started_at",
    "provider",
    "model",
    "operation",
    "status",
    "total_tokens",
    "total_cost",
    "cost_status",
    "latency_ms",
    "feature",
    "user_id",
)


_COST_QUANTUM = Decimal("1e-10")  # the scale of the cost columns on PostgreSQL and MySQL
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def as_decimal(value: Any) -> Decimal | None:
    """A cost as read from any dialect: SQLite returns floats, servers Decimals.
    repr() of a float is its shortest round-trip form, so one row's cost comes back
    exactly; a float SUM() is rounded to the 10 places every cost column holds."""
    if value is None:
        return None
    if not isinstance(value, Decimal):
        value = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -10:
        value = value.quantize(_COST_QUANTUM)
    return plain_decimal(value)


def as_timestamp(value: Any) -> str | None:
    """A timestamp as read from any dialect, as UTC ISO 8601 text with 'Z'."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return str(value.isoformat(timespec="microseconds")) + "Z"
    return str(value)


def normalize_row(row: dict[str, Any]) -> dict[str, Any]:
    """One llm_requests row with the same Python values whichever store it came from."""
    out = dict(row)
    for name, value in row.items():
        if name in MONEY_COLUMNS:
            out[name] = as_decimal(value)
        elif name in ("started_at", "ended_at", "outcome_at"):
            out[name] = as_timestamp(value)
        elif name == "stream" and value is not None:
            out[name] = bool(value)
        elif name == "request_id" and value is not None:
            out[name] = str(value)
    return out


Grouping = str | Sequence[str]  # "model", "model,feature" or ("model", "feature")


def group_columns(by: Grouping) -> tuple[str, ...]:
    """The columns of a grouping, each checked against ``GROUPINGS`` (they go into the
    SQL text), in order, each once. ``ConfigError`` names the first unknown one."""
    names = by.split(",") if isinstance(by, str) else [n for part in by for n in part.split(",")]
    out: list[str] = []
    for name in (n.strip() for n in names):
        if name not in GROUPINGS:
            raise ConfigError(f"cannot group by {name!r:.60}: choose from {', '.join(GROUPINGS)}")
        if name not in out:
            out.append(name)
    return tuple(out)


def group_key(row: dict[str, Any], columns: Sequence[str]) -> tuple[Any, ...]:
    """A report row's group: its values of the grouping columns, in order."""
    return tuple(row[c] for c in columns)


async def spend_report(
    db: MetadataStore,
    by: Grouping = "model",
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """Calls, tokens and spend grouped by one column or several (``"model"``,
    ``"model,feature"`` or ``["model", "feature"]``; see ``GROUPINGS``), most expensive
    first. Each row starts with its grouping columns. ``calls`` are the calls sent;
    ``blocked`` counts the attempts a hard budget refused (logged as rows, without tokens
    or cost), ``unpriced`` the calls sent whose cost is unknown."""
    columns = group_columns(by)
    if not columns:
        raise ConfigError("group by at least one column")
    keys = [_DAY_SQL[db.dialect] if c == "day" else text_sql(db.dialect, c) for c in columns]
    selected = ", ".join(f"{key} AS {name}" for key, name in zip(keys, columns, strict=True))
    where, params = window_where(since, until)
    rows = await db.fetch(
        f"SELECT {selected}, {CALLS} AS calls,"
        " SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS errors,"
        f" {BLOCKED} AS blocked,"
        " SUM(input_tokens) AS input_tokens,"
        " SUM(cache_read_tokens) AS cache_read_tokens,"
        " SUM(cache_write_5m_tokens + cache_write_1h_tokens) AS cache_write_tokens,"
        " SUM(output_tokens) AS output_tokens,"
        " SUM(reasoning_tokens) AS reasoning_tokens,"
        " SUM(total_cost) AS total_cost,"
        " SUM(CASE WHEN total_cost IS NULL AND status NOT IN ('error', 'blocked')"
        " THEN 1 ELSE 0 END) AS unpriced"
        f" FROM llm_requests{where} GROUP BY {', '.join(keys)}",
        params,
    )
    for row in rows:
        for name in columns:
            row[name] = as_text(row[name])
        row["total_cost"] = as_decimal(row["total_cost"])
        counts = [k for k in row if k.endswith("_tokens")]
        for name in ("calls", "errors", "blocked", "unpriced", *counts):
            row[name] = int(row[name] or 0)
    # Most spent first, then by the groups' values (no value last), the same everywhere.
    rows.sort(
        key=lambda r: (
            -(r["total_cost"] or 0),
            [(v is None, str(v)) for v in group_key(r, columns)],
        )
    )
    return rows


async def total_spend(
    db: MetadataStore, *, since: dt.datetime | None = None, until: dt.datetime | None = None
) -> tuple[int, Decimal]:
    """(calls sent, their total cost): blocked attempts are not calls."""
    where, params = window_where(since, until)
    rows = await db.fetch(
        f"SELECT {CALLS} AS calls, SUM(total_cost) AS cost FROM llm_requests{where}", params
    )
    return int(rows[0]["calls"] or 0), as_decimal(rows[0]["cost"]) or Decimal(0)


@dataclass(frozen=True)
class CallFilter:
    """Which calls ``latest_calls`` returns: within each field, any of the values given;
    across fields, all of them. ``models`` matches the model asked for or the one served;
    values match exactly (case and spaces included, in every dialect)."""

    models: Sequence[str] = ()
    features: Sequence[str] = ()
    users: Sequence[str] = ()
    statuses: Sequence[str] = ()
    since: dt.datetime | None = None
    until: dt.datetime | None = None

    def where(self, dialect: str) -> tuple[str, list[Any]]:
        """The WHERE clause (``started_at`` first: its index) and its parameters."""
        clause, params = window_where(self.since, self.until)
        clauses = [clause.removeprefix(" WHERE ")] if clause else []
        for columns, values in (
            (("model", "served_model"), self.models),
            (("feature",), self.features),
            (("user_id",), self.users),
            (("status",), self.statuses),
        ):
            values = (values,) if isinstance(values, str) else tuple(values)  # not its letters
            if values:
                matches = [one_of(dialect, column, values) for column in columns]
                clauses.append(matches[0] if len(matches) == 1 else f"({' OR '.join(matches)})")
                params += [v for _ in columns for v in one_of_params(dialect, values)]
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


TAIL_PAGE = 1000  # rows per read of ``iter_latest_calls``


async def iter_latest_calls(
    db: MetadataStore,
    limit: int | None = 20,
    *,
    where: CallFilter | None = None,
    page_size: int | None = None,
) -> AsyncIterator[list[dict[str, Any]]]:
    """The latest calls (``limit`` None or 0: all of them) that ``where`` lets through,
    newest first, a page of at most ``page_size`` (``TAIL_PAGE``) rows at a time: each page is one
    ``fetch`` starting after the last row of the one before (keyset pagination on
    ``(started_at, request_id)``, no OFFSET), so memory holds one page whatever the
    size of the log (``stores/sql/costs.py`` reads the same key the other way)."""
    page_size = TAIL_PAGE if page_size is None else page_size
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    clause, params = (where or CallFilter()).where(db.dialect)
    left = int(limit) if limit else None
    after: RowKey | None = None
    while left is None or left > 0:
        sql_where, sql_params = clause, list(params)
        if after is not None:
            started_at, request_id = after
            key = "started_at <= ? AND (started_at < ? OR request_id < ?)"
            sql_where = f"{clause} AND {key}" if clause else f" WHERE {key}"
            sql_params += [started_at, started_at, request_id]
        size = page_size if left is None else min(page_size, left)
        rows = await db.fetch(
            f"SELECT {', '.join(TAIL_COLUMNS)} FROM llm_requests{sql_where}"
            " ORDER BY started_at DESC, request_id DESC LIMIT ?",
            [*sql_params, size],
        )
        if not rows:
            return
        after = (rows[-1]["started_at"], rows[-1]["request_id"])  # as the store returned them
        if left is not None:
            left -= len(rows)
        yield [normalize_row(row) for row in rows]
        if len(rows) < size:
            return


async def latest_calls(
    db: MetadataStore, limit: int | None = 20, *, where: CallFilter | None = None
) -> list[dict[str, Any]]:
    """The latest calls (``limit`` None or 0: all of them) that ``where`` lets through,
    newest first, in one list (``iter_latest_calls`` reads them a page at a time)."""
    return [row async for page in iter_latest_calls(db, limit, where=where) for row in page]


async def get_call(db: MetadataStore, request_id: str) -> dict[str, Any] | None:
    if not _UUID.fullmatch(request_id):
        return None  # every id the log holds is a lower-case UUID
    rows = await db.fetch("SELECT * FROM llm_requests WHERE request_id = ?", (request_id,))
    return normalize_row(rows[0]) if rows else None


async def unpriced_models(db: MetadataStore, prices: PriceTable) -> list[dict[str, Any]]:
    """Models seen in the log that the price table cannot price."""
    rows = await db.fetch(
        "SELECT provider, model, served_model, COUNT(*) AS calls FROM llm_requests"
        " WHERE status NOT IN ('error', 'blocked') GROUP BY provider, model, served_model"
    )
    return [
        {**row, "calls": int(row["calls"])}
        for row in rows
        if prices.resolve(row["served_model"]) is None and prices.resolve(row["model"]) is None
    ]


def window_where(since: dt.datetime | None, until: dt.datetime | None) -> tuple[str, list[Any]]:
    """The WHERE clause (``started_at`` first: its index) of a window, and its parameters."""
    clauses, params = [], []
    if since is not None:
        clauses.append("started_at >= ?")
        params.append(since)
    if until is not None:
        clauses.append("started_at < ?")
        params.append(until)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params
