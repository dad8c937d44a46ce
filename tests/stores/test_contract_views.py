"""The shipped views print exact cost figures in every dialect (issue 18). SQLite holds its
NUMERIC costs as REAL values and SUM() adds them as binary floats ($0.006417 x 11 comes
out 0.07058700000000001), so since migration sqlite/0007_round_view_costs each cost
column of its views is ROUND(..., 10): the 10 places PostgreSQL and MySQL hold, whose
NUMERIC/DECIMAL(20, 10) sums are exact already and whose views are unchanged."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from old_logs import sqlite_log_before
from servers import DIALECTS, isolated_db
from test_contract_metadata import blocked_row, record

import majordomo_log as ml
from majordomo_log.cli import reports as _reports
from majordomo_log.record.rows import build_row
from majordomo_log.schema import Row
from majordomo_log.stores.sql.migrate import migrations_for

MIGRATION = "0007_round_view_costs"
# Each view showing a cost, and its cost columns; the other views show none.
COST_COLUMNS_OF = {
    "llm_daily_spend": ("total_cost",),
    "llm_spend_by_attribution": ("total_cost",),
    "llm_cache_savings": ("cache_cost", "cache_savings"),
    "llm_most_expensive_calls": ("total_cost",),
}
OTHER_VIEWS = ("llm_error_rate", "llm_call_counts")
LATER = dt.timedelta(minutes=1)
# A group's key in each view, from a row.
KEYS: dict[str, Callable[[Row], tuple[Any, ...]]] = {
    "llm_daily_spend": lambda r: (_day(r), r.model),
    "llm_spend_by_attribution": lambda r: (r.feature, r.user_id, r.api_key_alias),
    "llm_cache_savings": lambda r: (_day(r), r.model),
    "llm_most_expensive_calls": lambda r: (r.request_id,),
}
KEY_COLUMNS = {
    "llm_daily_spend": ("day", "model"),
    "llm_spend_by_attribution": ("feature", "user_id", "api_key_alias"),
    "llm_cache_savings": ("day", "model"),
    "llm_most_expensive_calls": ("request_id",),
}


def _day(row: Row) -> str:
    assert isinstance(row.started_at, dt.datetime)
    return row.started_at.astimezone(dt.timezone.utc).strftime("%Y-%m-%d")


def _costs(row: Row, column: str) -> Decimal | None:
    """What a row adds to a view's cost column (SQL's NULL arithmetic: NULL + x is NULL)."""
    if column == "cache_cost":
        read, write = row.cache_read_cost, row.cache_write_cost
        return None if read is None or write is None else read + write
    value = getattr(row, column)
    return value if isinstance(value, Decimal) else None


def noisy_rows() -> list[Row]:
    """Costs whose float sums are not the exact sums, in SQLite's plain summation and in
    the compensated one of SQLite 3.43+ alike: 11 calls at $0.006417 (0.07058700000000001),
    5 at $0.03072 (0.15360000000000001); cache costs of $0.000375 + $0.0021; beside them
    a call of unknown cost, a free one (a cost of 0 is stored as INTEGER) and a refused
    attempt."""
    rows = []
    for i in range(16):
        cheap = i < 11
        row = build_row(record(i, model="gpt-4o-mini" if cheap else "claude-haiku-4-5"), None)
        rows.append(
            row._replace(
                started_at=row.started_at + LATER,  # every call on one day
                ended_at=row.ended_at + LATER,
                feature="chat" if cheap else "search",
                user_id="u-1" if cheap else "u-2",
                total_cost=Decimal("0.006417") if cheap else Decimal("0.03072"),
                cache_read_cost=Decimal("0.000375"),
                cache_write_cost=Decimal("0.0021"),
                cache_savings=Decimal("0.03072") if cheap else Decimal("0.11264"),
            )
        )
    unknown = build_row(record(40, model="no-such-model"), None)
    free = build_row(record(41, model="free-model"), None)._replace(
        total_cost=Decimal(0),
        cache_read_cost=Decimal(0),
        cache_write_cost=Decimal(0),
        cache_savings=Decimal(0),
    )
    refused = blocked_row(build_row(record(42, model="gpt-4o-mini"), None))
    return [*rows, unknown, free, refused]


def expected(rows: list[Row], view: str) -> dict[tuple[Any, ...], dict[str, Decimal | None]]:
    """Each group's exact cost figures, as PostgreSQL and MySQL sum them."""
    out: dict[tuple[Any, ...], dict[str, Decimal | None]] = {}
    for row in rows:
        if view == "llm_most_expensive_calls" and row.total_cost is None:
            continue
        group = out.setdefault(KEYS[view](row), dict.fromkeys(COST_COLUMNS_OF[view]))
        for column in COST_COLUMNS_OF[view]:
            value = _costs(row, column)
            if value is not None:
                group[column] = (group[column] or Decimal(0)) + value
    return out


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, (bytes, bytearray)) else value


def _exact(value: Any) -> Decimal | None:
    """A cost as read, exactly: a float's shortest round-trip digits, nothing rounded."""
    if value is None:
        return None
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def assert_clean(view: str, column: str, value: Any) -> None:
    """A figure with at most 10 decimal places, as it prints (repr, Datasette, JSON)."""
    exact = _exact(value)
    if exact is None:
        return
    exponent = exact.as_tuple().exponent
    assert isinstance(exponent, int) and exponent >= -10, (view, column, repr(value))


async def check_views(store: ml.MetadataStore, rows: list[Row]) -> None:
    for view, columns in COST_COLUMNS_OF.items():
        got = await store.fetch(f"SELECT * FROM {view}")
        want = expected(rows, view)
        by_key = {tuple(_text(r[c]) for c in KEY_COLUMNS[view]): r for r in got}
        assert set(by_key) == set(want), view  # the same groups
        for key, figures in want.items():
            for column in columns:
                value = by_key[key][column]
                assert_clean(view, column, value)
                assert _exact(value) == figures[column], (view, key, column, repr(value))


@pytest.fixture(params=DIALECTS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    async with isolated_db(request.param, tmp_path) as store:
        yield store


async def test_every_cost_in_the_views_is_the_exact_figure(db: ml.MetadataStore) -> None:
    rows = noisy_rows()
    await db.write_batch(rows, [])
    if db.dialect == "sqlite":  # the seeds are noisy: a plain SUM() shows it
        sums = await db.fetch(
            "SELECT model, SUM(total_cost) AS cost FROM llm_requests GROUP BY model"
        )
        noisy = [
            r["cost"] for r in sums if isinstance(r["cost"], float) and len(repr(r["cost"])) > 12
        ]
        assert noisy, sums  # 0.15360000000000001 (and 0.07058700000000001 before 3.43)
    await check_views(db, rows)
    figures = {r["model"]: r for r in await db.fetch("SELECT * FROM llm_daily_spend")}
    assert figures["no-such-model"]["total_cost"] is None  # unknown stays unknown, not $0
    assert _exact(figures["free-model"]["total_cost"]) == 0


async def test_only_the_views_showing_costs_show_costs(db: ml.MetadataStore) -> None:
    """A view added later with a cost column belongs in COST_COLUMNS_OF (and rounded)."""
    for view in (*COST_COLUMNS_OF, *OTHER_VIEWS):
        got = await db.fetch(f"SELECT * FROM {view} WHERE 1 = 0")
        assert got == []
    if not isinstance(db, ml.SqliteAdapter):
        return
    with sqlite3.connect(db.path) as conn:
        views = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'view'"))
        assert set(views) == {*COST_COLUMNS_OF, *OTHER_VIEWS}
        for view, sql in views.items():
            columns = [r[1] for r in conn.execute(f"PRAGMA table_info({view})")]
            costs = tuple(c for c in columns if "cost" in c or "saving" in c)
            assert costs == COST_COLUMNS_OF.get(view, ()), view
            if costs:  # each cost column is rounded (llm_error_rate rounds its rate)
                assert sql.count("ROUND(") == len(costs), view


def _canonical(value: Any) -> Any:
    """A figure as the CLI reads it (a float to the 10 places every cost holds)."""
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return _reports.as_decimal(value)
    return value


async def _views(store: ml.MetadataStore) -> dict[str, tuple[list[str], list[dict[str, Any]]]]:
    out = {}
    for view in (*COST_COLUMNS_OF, *OTHER_VIEWS):
        got = await store.fetch(f"SELECT * FROM {view}")
        names = list(got[0]) if got else []
        canonical = [{k: _canonical(v) for k, v in r.items()} for r in got]
        out[view] = (names, sorted(canonical, key=repr))
    return out


async def test_a_log_of_the_previous_release_gets_the_rounded_views(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    sqlite_log_before(path, MIGRATION)
    rows = noisy_rows()
    old = await ml.SqliteAdapter.create(path, migrate=False)
    try:
        await old.write_batch(rows, [])
        before = await _views(old)
        spend = await old.fetch("SELECT total_cost FROM llm_daily_spend")
        assert any(len(repr(r["total_cost"])) > 12 for r in spend)  # the noise, before
    finally:
        await old.close()
    db = await ml.SqliteAdapter.create(path)
    try:
        applied = await db.fetch("SELECT name FROM majordomo_migrations ORDER BY name")
        assert applied[-1]["name"] == MIGRATION == migrations_for("sqlite")[-1].name
        await check_views(db, rows)
        # the same columns, in the same order, and the same rows, figures and all (read
        # as the CLI reads them: each cost to 10 places)
        assert await _views(db) == before
        assert await db.migrate() == []
    finally:
        await db.close()
