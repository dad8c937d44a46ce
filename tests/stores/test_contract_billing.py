"""Migration 0004_service_tier on every store: the billing-variant columns (service_tier,
web_search_calls, server_tool_cost) are written and read back exactly, are summed into the
same totals, and the migration upgrades a table that already holds rows."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from old_logs import sqlite_log_before
from servers import DIALECTS, isolated_db

import majordomo_log as ml
from majordomo_log.cli import reports as _reports
from majordomo_log.record.call import CallContext, CallRecord
from majordomo_log.record.pricing import PriceTable
from majordomo_log.record.rows import build_row
from majordomo_log.schema import COLUMNS, Row
from majordomo_log.stores.sql.migrate import migrations_for

PRICES = PriceTable.load()
WHEN = dt.datetime(2026, 11, 2, 8, 30, tzinfo=dt.timezone.utc)
MIGRATION = "0004_service_tier"
NEW = ("service_tier", "web_search_calls", "server_tool_cost")


def _row(i: int, model: str, usage: dict[str, Any], response: Any = None) -> Row:
    ctx = CallContext(prices=PRICES, api_key_alias="a", tags={}, secrets=())
    record = CallRecord(
        f"01a30000-0000-7000-8000-{i:012d}",
        (WHEN + dt.timedelta(seconds=i)).timestamp(),
        10.0,
        "anthropic" if "claude" in model else "openai",
        "messages" if "claude" in model else "responses",
        model,
        False,
        None,
        None,
        ctx,
    )
    record.t_end = 10.25
    record.served_model = model
    record.usage = usage
    record.response = response
    return build_row(record, None)


def rows() -> list[Row]:
    return [
        # Anthropic batch, 3 web searches: claude-haiku-4-5 batch $0.50 / $2.50 per 1M,
        # 1000 * 0.50 + 400 * 2.50 = 1,500 / 1e6 = 0.0015; searches 3 * $10 / 1000 = 0.03
        _row(
            1,
            "claude-haiku-4-5",
            {
                "input_tokens": 1000,
                "output_tokens": 400,
                "service_tier": "batch",
                "server_tool_use": {"web_search_requests": 3, "web_fetch_requests": 1},
            },
        ),
        # OpenAI flex (gpt-5: $0.625 / $5.00 per 1M): 2000 * 0.625 + 100 * 5 = 1,750 / 1e6
        _row(
            2,
            "gpt-5",
            {"input_tokens": 2000, "output_tokens": 100, "input_tokens_details": {}},
            {"service_tier": "flex", "output": [{"type": "web_search_call"}]},
        ),
        # standard: every new column NULL
        _row(3, "claude-haiku-4-5", {"input_tokens": 10, "output_tokens": 1}),
    ]


def test_the_rows_hold_what_was_billed() -> None:
    first, second, third = (dict(zip(COLUMNS, r, strict=True)) for r in rows())
    assert (first["service_tier"], first["web_search_calls"]) == ("batch", 3)
    assert first["server_tool_cost"] == Decimal("0.03")
    assert first["total_cost"] == Decimal("0.0315")
    assert (second["service_tier"], second["web_search_calls"]) == ("flex", 1)
    # 0.00175 of tokens and 1 search at $10 per 1,000
    assert (second["server_tool_cost"], second["total_cost"]) == (
        Decimal("0.01"),
        Decimal("0.01175"),
    )
    assert [third[c] for c in NEW] == [None, None, None]


@pytest.fixture(params=DIALECTS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    async with isolated_db(request.param, tmp_path) as store:
        yield store


async def test_the_new_columns_read_back_exactly(db: ml.MetadataStore) -> None:
    written = rows()
    await db.write_batch(written, [])
    got = await db.fetch(
        f"SELECT request_id, {', '.join(NEW)}, total_cost FROM llm_requests ORDER BY request_id"
    )
    want = [
        {c: dict(zip(COLUMNS, r, strict=True))[c] for c in ("request_id", *NEW, "total_cost")}
        for r in written
    ]
    assert [_reports.normalize_row(g) for g in got] == [_reports.normalize_row(w) for w in want]
    (total,) = await db.fetch(
        "SELECT SUM(server_tool_cost) AS fees, SUM(web_search_calls) AS searches,"
        " SUM(total_cost) AS cost FROM llm_requests"
    )
    assert _reports.as_decimal(total["fees"]) == Decimal("0.04")
    assert int(total["searches"]) == 4
    assert _reports.as_decimal(total["cost"]) == sum(
        (r[COLUMNS.index("total_cost")] for r in written), Decimal(0)
    )
    by_tier = await _reports.spend_report(db, "service_tier")
    assert {r["service_tier"]: r["calls"] for r in by_tier} == {"batch": 1, "flex": 1, None: 1}


async def test_migration_0004_is_applied(db: ml.MetadataStore) -> None:
    names = [m.name for m in migrations_for(db.dialect)]
    assert MIGRATION in names
    applied = await db.fetch("SELECT name FROM majordomo_migrations")
    assert MIGRATION in {r["name"] for r in applied}


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
@pytest.mark.servers
async def test_0004_reruns_after_failing_halfway(dialect: str, tmp_path: Path) -> None:
    """MySQL commits each ALTER: a 0004 interrupted after its first column must complete
    when run again (simulated: its record gone, its effects kept)."""
    async with isolated_db(dialect, tmp_path) as store:
        await store.write_batch(rows(), [])
        delete = "DELETE FROM majordomo_migrations WHERE name = ?"
        if dialect == "postgresql":
            await store._pool.execute(delete.replace("?", "$1"), MIGRATION)  # type: ignore[attr-defined]
        else:
            async with store._pool.acquire() as conn, conn.cursor() as cur:  # type: ignore[attr-defined]
                await cur.execute(delete.replace("?", "%s"), (MIGRATION,))
                await cur.execute("ALTER TABLE llm_requests DROP COLUMN server_tool_cost")
                await conn.commit()
        assert await store.migrate() == [MIGRATION]
        got = await store.fetch("SELECT SUM(server_tool_cost) AS fees FROM llm_requests")
        # MySQL lost the dropped column's values; PostgreSQL kept them
        assert _reports.as_decimal(got[0]["fees"]) == (
            Decimal("0.04") if dialect == "postgresql" else None
        )


async def test_a_sqlite_file_at_0003_upgrades_keeping_its_rows(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    sqlite_log_before(path, MIGRATION)
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO llm_requests (request_id, started_at, ended_at, latency_ms, provider,"
            " operation, status, cost_status, total_cost) VALUES ('old',"
            " '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:01.000000Z', 1000, 'openai',"
            " 'chat.completions', 'ok', 'computed', 0.5)"
        )
    db = await ml.SqliteAdapter.create(path)
    try:
        got = await db.fetch(f"SELECT request_id, total_cost, {', '.join(NEW)} FROM llm_requests")
        assert [_reports.normalize_row(r) for r in got] == [
            {
                "request_id": "old",
                "total_cost": Decimal("0.5"),
                "service_tier": None,
                "web_search_calls": None,
                "server_tool_cost": None,
            }
        ]
        assert await db.migrate() == []
    finally:
        await db.close()
