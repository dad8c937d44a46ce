"""The figures behind the dashboard's pages, read through the store's own ``fetch``.

Plain SQL over ``llm_requests`` with ``?`` placeholders, the same in SQLite, PostgreSQL
and MySQL but for the one expression that turns a timestamp into an hour or a day (as
``cli/reports.py`` does for ``report --by day``) and the percentiles' rounding
(``percentiles.py``). Every query filters on ``started_at`` first (its index) and runs
once per page, whatever the number of rows; nothing here writes.

Counting follows ``majordomo-log report``: ``calls`` are the calls sent (a hard budget's
refusals are rows with ``status='blocked'``, counted apart); ``unpriced`` are calls sent
whose cost is unknown (NULL, never $0); spend is ``SUM(total_cost)``, exact on
PostgreSQL and MySQL and to the 10 places every cost column holds on SQLite.
"""

from __future__ import annotations

import datetime as dt
import weakref
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .._exceptions import MajordomoLogError, StoreUnavailable
from ..cli.reports import as_decimal, get_call, normalize_row
from ..stores.base import BodyStore, MetadataStore
from ..stores.sql.text import one_of, one_of_params, text_sql
from . import percentiles
from .params import GROUPS, CallsParams, OverviewParams, Window

UTC = dt.timezone.utc
SERIES_MAX = 8  # groups drawn on the chart; the rest add up to one "other" line
LISTED = 25  # groups listed in the overview's tables (and given percentiles); the rest: one line
OTHER = "other"
TOKEN_KINDS = (
    ("input", "input_tokens"),
    ("cache read", "cache_read_tokens"),
    ("cache write 5m", "cache_write_5m_tokens"),
    ("cache write 1h", "cache_write_1h_tokens"),
    ("output", "output_tokens"),
    ("reasoning", "reasoning_tokens"),
)
_BUCKET_SQL = {
    ("sqlite", "hour"): "substr(started_at, 1, 13)",  # stored as 2026-11-01T12:34:56.…Z
    ("sqlite", "day"): "substr(started_at, 1, 10)",
    ("postgresql", "hour"): "to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24')",
    ("postgresql", "day"): "to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    ("mysql", "hour"): "DATE_FORMAT(started_at, '%Y-%m-%dT%H')",  # the session is UTC
    ("mysql", "day"): "DATE_FORMAT(started_at, '%Y-%m-%d')",
}
_BUCKET_FORMAT = {"hour": "%Y-%m-%dT%H", "day": "%Y-%m-%d"}
_FIGURES = (
    "SUM(CASE WHEN status <> 'blocked' THEN 1 ELSE 0 END) AS calls,"
    " SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS errors,"
    " SUM(CASE WHEN status = 'incomplete' THEN 1 ELSE 0 END) AS incomplete,"
    " SUM(CASE WHEN status = 'blocked' THEN 1 ELSE 0 END) AS blocked,"
    " SUM(CASE WHEN total_cost IS NULL AND status NOT IN ('error', 'blocked')"
    " THEN 1 ELSE 0 END) AS unpriced,"
    + "".join(f" SUM({column}) AS {column}," for _, column in TOKEN_KINDS)
    + " SUM(total_tokens) AS total_tokens,"
    " SUM(total_cost) AS cost, {savings} AS savings"
)
# Columns later migrations added: a log an older release wrote lacks them, and the
# dashboard never migrates, so it reads NULL (unknown) in their place.
OPTIONAL_COLUMNS = (
    "cache_savings",  # 0002
    "tool_call_count",  # 0003
    "retry_count",
    "service_tier",  # 0004
    "web_search_calls",
    "server_tool_cost",
    "span_id",  # 0006
)
_MISSING: weakref.WeakKeyDictionary[Any, frozenset[str]] = weakref.WeakKeyDictionary()
CALL_COLUMNS = (
    "request_id",
    "started_at",
    "provider",
    "model",
    "operation",
    "status",
    "feature",
    "user_id",
    "api_key_alias",
    "total_tokens",
    "total_cost",
    "latency_ms",
)


@dataclass(frozen=True)
class Figures:
    """One group's calls, tokens and spend over a window."""

    key: str | None  # the group's value; None: calls without one
    calls: int
    errors: int
    incomplete: int
    blocked: int
    unpriced: int
    tokens: dict[str, int]  # by TOKEN_KINDS column
    total_tokens: int
    cost: Decimal | None  # None: no call of the group has a known cost (never $0)
    savings: Decimal | None  # what cache reads saved against the input rate; None: unknown

    @property
    def cache_write_tokens(self) -> int:
        return self.tokens["cache_write_5m_tokens"] + self.tokens["cache_write_1h_tokens"]


@dataclass(frozen=True)
class Series:
    """Spend per bucket: ``x`` the buckets' starts, one line per drawn group."""

    x: list[dt.datetime]
    # (label, spend per bucket), most spent first; None: the bucket's calls are all of
    # unknown cost (never $0)
    lines: list[tuple[str, list[Decimal | None]]]


@dataclass(frozen=True)
class Overview:
    params: OverviewParams
    groups: list[Figures]  # most spent first
    total: Figures
    series: Series
    latency: dict[str | None, dict[int, float | None]]  # by group, p50/p95/p99 in ms
    latency_all: dict[int, float | None]
    ttft: dict[str | None, dict[int, float | None]]  # streams' time to first token
    ttft_all: dict[int, float | None]
    notes: list[str] = field(default_factory=list)


async def missing_columns(db: MetadataStore) -> frozenset[str]:
    """The ``OPTIONAL_COLUMNS`` the log's table lacks, asked once per store: a query
    naming the column, which fails where it is not there (the same in every dialect)."""
    known = _MISSING.get(db)
    if known is not None:
        return known
    missing = set()
    for column in OPTIONAL_COLUMNS:
        try:
            await db.fetch(f"SELECT {column} FROM llm_requests WHERE 1 = 0")
        except StoreUnavailable:
            raise
        except MajordomoLogError:
            missing.add(column)
    _MISSING[db] = frozenset(missing)
    return _MISSING[db]


async def _figures_sql(db: MetadataStore) -> str:
    absent = "cache_savings" in await missing_columns(db)
    return _FIGURES.format(savings="NULL" if absent else "SUM(cache_savings)")


def window_where(window: Window) -> tuple[str, list[Any]]:
    return "started_at >= ? AND started_at < ?", [window.since, window.until]


def _int(value: Any) -> int:
    return int(value or 0)  # MySQL and PostgreSQL sum integers as decimals


def _figures(key: str | None, row: dict[str, Any]) -> Figures:
    return Figures(
        key=key,
        calls=_int(row["calls"]),
        errors=_int(row["errors"]),
        incomplete=_int(row["incomplete"]),
        blocked=_int(row["blocked"]),
        unpriced=_int(row["unpriced"]),
        tokens={column: _int(row[column]) for _, column in TOKEN_KINDS},
        total_tokens=_int(row["total_tokens"]),
        cost=as_decimal(row["cost"]),
        savings=as_decimal(row["savings"]),
    )


def _key(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


async def group_figures(db: MetadataStore, by: str, window: Window) -> list[Figures]:
    """Each value of ``by``'s figures over the window, most spent first (then by value)."""
    if by not in GROUPS:
        raise ValueError(f"not a dashboard grouping: {by!r}")
    where, params = window_where(window)
    grp = text_sql(db.dialect, by)  # exact on MySQL too: 'a ' and 'a' are two groups
    figures = await _figures_sql(db)
    rows = await db.fetch(
        f"SELECT {grp} AS grp, {figures} FROM llm_requests WHERE {where} GROUP BY {grp}", params
    )
    out = [_figures(_key(row["grp"]), row) for row in rows]
    out.sort(key=lambda f: (-(f.cost or 0), -f.calls, f.key is None, f.key or ""))
    return out


async def total_figures(db: MetadataStore, window: Window) -> Figures:
    where, params = window_where(window)
    figures = await _figures_sql(db)
    rows = await db.fetch(f"SELECT {figures} FROM llm_requests WHERE {where}", params)
    return _figures(None, rows[0])


def membership(dialect: str, by: str, keys: list[str | None]) -> tuple[str, list[Any]]:
    """A condition true for the rows whose ``by`` is exactly one of ``keys`` (None: no
    value; exact on MySQL too, whose collations pad)."""
    values = [key for key in keys if key is not None]
    parts = [one_of(dialect, by, values)] if values else []
    if None in keys:
        parts.append(f"{by} IS NULL")
    return ("(" + " OR ".join(parts) + ")" if parts else "1 = 0"), one_of_params(dialect, values)


async def spend_series(
    db: MetadataStore, by: str, window: Window, drawn: list[str | None]
) -> Series:
    """Spend per bucket of each group in ``drawn`` (a None in it: calls without a value),
    the others added up as one ``other`` line when there are any: at most one row per
    bucket and drawn group, plus one per bucket for the rest, however many groups."""
    if by not in GROUPS:
        raise ValueError(f"not a dashboard grouping: {by!r}")
    bucket = _BUCKET_SQL[(db.dialect, window.step)]
    where, params = window_where(window)
    drawn_sql, drawn_params = membership(db.dialect, by, drawn)
    rows = await db.fetch(
        f"SELECT {bucket} AS bucket, CASE WHEN {drawn_sql} THEN 0 ELSE 1 END AS rest,"
        f" CASE WHEN {drawn_sql} THEN {text_sql(db.dialect, by)} END AS grp,"
        " SUM(total_cost) AS cost"
        f" FROM llm_requests WHERE {where} AND (total_cost IS NOT NULL"
        " OR status NOT IN ('error', 'blocked')) GROUP BY 1, 2, 3",  # priced, or unpriced
        [*drawn_params, *drawn_params, *params],
    )
    starts = window.buckets()
    index = {start: i for i, start in enumerate(starts)}
    zero = Decimal(0)
    lines: dict[str | None, list[Decimal | None]] = {key: [zero] * len(starts) for key in drawn}
    other: list[Decimal | None] | None = None
    for row in rows:
        start = _bucket_start(row["bucket"], window.step)
        i = index.get(start) if start is not None else None
        if i is None:
            continue  # not reached: the WHERE is the window
        found = None if int(row["rest"]) else lines.get(_key(row["grp"]))
        if found is None:  # a group not drawn, or one the database spelt otherwise
            other = other if other is not None else [zero] * len(starts)
            found = other
        line = found
        cost = as_decimal(row["cost"])  # NULL: none of these calls has a known cost
        if cost is not None:
            line[i] = (line[i] or zero) + cost
        elif line[i] is zero:  # no priced call in this bucket so far
            line[i] = None
    labelled = [(key if key is not None else "(none)", values) for key, values in lines.items()]
    if other is not None:
        labelled.append((OTHER, other))
    return Series(starts, labelled)


def _bucket_start(value: Any, step: str) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(_key(value) or "", _BUCKET_FORMAT[step]).replace(tzinfo=UTC)
    except ValueError:
        return None


async def latency(
    db: MetadataStore, by: str, window: Window, column: str, keys: list[str | None]
) -> tuple[dict[str | None, dict[int, float | None]], dict[int, float | None]]:
    """p50/p95/p99 of ``column`` (``latency_ms``, or ``time_to_first_token_ms`` for
    streams) for each group in ``keys`` and over the whole window, calls sent only."""
    where, params = window_where(window)
    where += " AND status <> 'blocked'"
    whole = await percentiles.histograms(db, column, None, where, params)
    per_group: dict[str | None, dict[int, float | None]] = {}
    if keys:
        member, values = membership(db.dialect, by, keys)
        hist = await percentiles.histograms(
            db, column, by, f"{where} AND {member}", [*params, *values]
        )
        per_group = {key: percentiles.summary(buckets) for key, buckets in hist.items()}
    return per_group, percentiles.summary(whole.get(None, []))


async def overview(db: MetadataStore, params: OverviewParams) -> Overview:
    window = params.window
    groups = await group_figures(db, params.by, window)
    total = await total_figures(db, window)
    drawn = [g.key for g in groups if g.cost][:SERIES_MAX]
    series = await spend_series(db, params.by, window, drawn)
    listed = [g.key for g in groups[:LISTED]]
    lat, lat_all = await latency(db, params.by, window, "latency_ms", listed)
    ttft, ttft_all = await latency(db, params.by, window, "time_to_first_token_ms", listed)
    return Overview(params, groups, total, series, lat, lat_all, ttft, ttft_all)


async def expensive_calls(db: MetadataStore, params: CallsParams) -> list[dict[str, Any]]:
    """The costliest calls of the window (ties: by request id), unknown costs left out."""
    where, args = window_where(params.window)
    if params.filter is not None:
        column, value = params.filter
        if column not in GROUPS:
            raise ValueError(f"not a dashboard grouping: {column!r}")
        where += f" AND {one_of(db.dialect, column, [value])}"
        args += one_of_params(db.dialect, [value])
    rows = await db.fetch(
        f"SELECT {', '.join(CALL_COLUMNS)} FROM llm_requests WHERE {where}"
        " AND total_cost IS NOT NULL ORDER BY total_cost DESC, request_id LIMIT ?",
        [*args, params.limit],
    )
    return [normalize_row(row) for row in rows]


@dataclass(frozen=True)
class CallBody:
    """A call's stored body, or why there is none to show."""

    envelope: dict[str, Any] | None
    problem: str | None  # no body_ref, not found, storage not available


async def call(db: MetadataStore, request_id: str) -> dict[str, Any] | None:
    """A call's row (``majordomo-log show``'s lookup), None when there is no such call."""
    return await get_call(db, request_id)


async def call_body(
    storage: BodyStore | None, storage_problem: str | None, row: dict[str, Any]
) -> CallBody:
    """The body a row refers to, read as ``majordomo-log show`` reads it: ``get`` with
    the row's ``body_ref``. A storage error is shown in its place, never raised."""
    ref = row.get("body_ref")
    if not ref:
        return CallBody(None, "no body was stored for this call (body_ref is empty)")
    if storage is None:
        return CallBody(None, f"the body store is not available: {storage_problem}")
    try:
        envelope = await storage.get(ref)
    except MajordomoLogError as exc:
        return CallBody(None, f"the body could not be read: {exc}")
    if not isinstance(envelope, dict):
        return CallBody(None, "the stored body is not a JSON object")
    return CallBody(envelope, None)
