"""The SQLite metadata store: migrations, exact round trip of every column, idempotency."""

from __future__ import annotations

import datetime as dt
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

import majordomo_log as ml
from majordomo_log.cli.reports import as_decimal
from majordomo_log.record.call import CallContext, CallRecord
from majordomo_log.record.pricing import PriceTable
from majordomo_log.record.rows import build_row
from majordomo_log.record.usage import Usage
from majordomo_log.schema import COLUMNS
from majordomo_log.stores.sql.migrate import migrations_for


def make_record(
    request_id: str = "01a20000-0000-7000-8000-000000000001",
    *,
    model: str = "claude-haiku-4-5",
    usage: Usage | None = None,
    tags: dict[str, object] | None = None,
    error: str | None = None,
) -> CallRecord:
    ctx = CallContext(
        prices=PriceTable.load(),
        api_key_alias="alias-☃",
        tags={"feature": "chat"},
        secrets=(),
        extractor=None,
        capture_bodies=True,
    )
    record = CallRecord(
        request_id,
        1_763_900_000.123456,
        100.0,
        "anthropic",
        "messages",
        model,
        False,
        tags or {},
        "ab" * 32,
        ctx,
    )
    record.t_end = 100.25
    record.served_model = model
    record.usage = (
        usage
        if usage is not None
        else Usage.additive(
            1000, 500, cache_read_tokens=2000, cache_write_5m_tokens=300, cache_write_1h_tokens=1
        )
    )
    if error is not None:
        record.status, record.error_type, record.error_message = "error", "APIError", error
    return record


async def test_blank_to_latest_then_rerun_applies_nothing(tmp_path: Path) -> None:
    db = await ml.SqliteAdapter.create(tmp_path / "a.db", migrate=False)
    try:
        applied = await db.migrate()
        assert applied == [m.name for m in migrations_for("sqlite")]
        assert await db.migrate() == []
        names = {r["name"] for r in await db.fetch("SELECT name FROM majordomo_migrations")}
        assert names == set(applied)
        columns = [r["name"] for r in await db.fetch("PRAGMA table_info(llm_requests)")]
        assert tuple(columns) == COLUMNS
    finally:
        await db.close()


async def test_every_column_round_trips_exactly(tmp_path: Path) -> None:
    db = await ml.SqliteAdapter.create(tmp_path / "a.db")
    record = make_record(
        tags={"user_id": "üser-😀", "note": "x'); DROP TABLE llm_requests; --"},
        error="boom ✨ ünïcode",
    )
    row = build_row(record, "2025/11/23/x.json.gz")
    await db.write_batch([row], [])
    (stored,) = await db.fetch("SELECT * FROM llm_requests")
    await db.close()
    expected = dict(zip(COLUMNS, row, strict=True))
    for name, value in expected.items():
        got = stored[name]
        if isinstance(value, dt.datetime):
            parsed = dt.datetime.strptime(got, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                tzinfo=dt.timezone.utc
            )
            assert parsed == value, name
        elif isinstance(value, Decimal):
            assert as_decimal(got) == value, name
        elif isinstance(value, bool):
            assert got == int(value), name
        else:
            assert got == value, name
    # the 1h cache write of a single token is kept to the last digit
    assert as_decimal(stored["cache_write_cost"]) == row[COLUMNS.index("cache_write_cost")]
    assert stored["user_id"] == "üser-😀"
    assert stored["error_message"] == "boom ✨ ünïcode"


async def test_unknown_model_cost_is_null_not_zero(tmp_path: Path) -> None:
    db = await ml.SqliteAdapter.create(tmp_path / "a.db")
    await db.write_batch([build_row(make_record(model="no-such-model-xyz"), None)], [])
    (row,) = await db.fetch("SELECT total_cost, cost_status, input_tokens FROM llm_requests")
    await db.close()
    assert row == {"total_cost": None, "cost_status": "unknown_model", "input_tokens": 1000}


async def test_rewriting_a_batch_creates_no_duplicates(tmp_path: Path) -> None:
    db = await ml.SqliteAdapter.create(tmp_path / "a.db")
    rows = [build_row(make_record(f"01a20000-0000-7000-8000-{i:012d}"), None) for i in range(50)]
    await db.write_batch(rows, [])
    await db.write_batch(rows[10:], [])  # a retry after an ambiguous failure
    (count,) = await db.fetch("SELECT COUNT(*) AS n FROM llm_requests")
    await db.close()
    assert count["n"] == 50


async def test_outcome_update_and_time_window_params(tmp_path: Path) -> None:
    db = await ml.SqliteAdapter.create(tmp_path / "a.db")
    record = make_record()
    when = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.timezone.utc)
    await db.write_batch([build_row(record, None)], [(record.request_id, "accepted", when)])
    rows = await db.fetch(
        "SELECT outcome, outcome_at FROM llm_requests WHERE started_at >= ?",
        [dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)],
    )
    await db.close()
    assert rows == [{"outcome": "accepted", "outcome_at": "2026-01-02T03:04:05.678901Z"}]


async def test_close_is_idempotent_and_errors_are_store_errors(tmp_path: Path) -> None:
    db = await ml.SqliteAdapter.create(tmp_path / "a.db")
    with pytest.raises(ml.StoreError, match="no such table"):
        await db.fetch("SELECT * FROM missing_table")
    await db.close()
    await db.close()


async def test_sum_of_costs_is_plain_sql(tmp_path: Path) -> None:
    db = await ml.SqliteAdapter.create(tmp_path / "a.db")
    rows = [build_row(make_record(f"01a20000-0000-7000-8000-{i:012d}"), None) for i in range(7)]
    await db.write_batch(rows, [])
    await db.close()
    expected = sum(r[COLUMNS.index("total_cost")] for r in rows)
    with sqlite3.connect(tmp_path / "a.db") as conn:
        (total,) = conn.execute("SELECT SUM(total_cost) FROM llm_requests").fetchone()
    assert as_decimal(total) == expected


async def test_read_only_creates_nothing_and_writes_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "absent.db"
    with pytest.raises(ml.StoreError, match="no SQLite database"):
        await ml.SqliteAdapter.create(missing, read_only=True)
    assert not missing.exists()

    unrelated = tmp_path / "notes.db"
    with sqlite3.connect(unrelated) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
    conn.close()
    before = unrelated.read_bytes()
    with pytest.raises(ml.StoreError, match=r"no llm_requests table.*majordomo-log migrate"):
        await ml.open_db(f"sqlite:///{unrelated}", read_only=True)
    assert unrelated.read_bytes() == before

    log = tmp_path / "log.db"
    await (await ml.SqliteAdapter.create(log)).close()
    before = log.read_bytes()
    db = await ml.SqliteAdapter.create(log, read_only=True)
    try:
        assert await db.fetch("SELECT COUNT(*) AS n FROM llm_requests") == [{"n": 0}]
        now = dt.datetime.now(dt.timezone.utc)
        for _ in range(2):  # opened read-only, and reopened read-only
            with pytest.raises(ml.StoreError, match="readonly"):
                await db.write_batch([], [("01a20000-0000-7000-8000-000000000001", "ok", now)])
            with pytest.raises(ml.StoreError, match="read-only"):
                await db.migrate()
            await db.reopen()
    finally:
        await db.close()
    assert log.read_bytes() == before
