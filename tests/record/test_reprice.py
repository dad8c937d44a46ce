"""``majordomo_log.reprice``: rows priced again from their tokens, model and time, exactly as
the writer prices them, written back only where something changes, on every store."""

from __future__ import annotations

import datetime as dt
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from servers import DIALECTS, isolated_db

import majordomo_log as ml
from majordomo_log.cli import reports
from majordomo_log.record.call import CallContext, CallRecord
from majordomo_log.record.pricing import PriceTable, default_prices
from majordomo_log.record.rows import build_row
from majordomo_log.record.usage import Usage
from majordomo_log.schema import COLUMNS, CostUpdate, Row

UTC = dt.timezone.utc
FT = "ft:gpt-4o:acme:demo"
# Two dated prices and a long-context tier; no cache_read before 2026-03-05 (billed as input).
PRICE_FILE = """
models:
  - id: acme-ft
    provider: openai
    match: '^ft:gpt-4o:acme:.*$'
    prices:
      - effective: "2026-03-05"
        input: "2.00"
        output: "4.00"
        cache_read: "1.00"
        tiers:
          - above_input_tokens: 1000
            input: "10.00"
            output: "20.00"
      - effective: "2026-01-01"
        input: "1.00"
        output: "2.00"
"""


# 400 input, 100 cache read, 100 output tokens
USAGE = Usage.inclusive(500, 100, cached_tokens=100)


def when(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def row(
    i: int,
    model: str | None,
    started: dt.datetime,
    usage: Usage | None = USAGE,
    *,
    served: str | None = None,
    status: str = "ok",
    prices: PriceTable | None = None,
) -> Row:
    ctx = CallContext(prices=prices or default_prices(), api_key_alias=None, tags={}, secrets=())
    rec = CallRecord(
        f"01a30000-0000-7000-8000-{i:012d}",
        started.timestamp(),
        10.0,
        "openai",
        "chat.completions",
        model,
        False,
        {},
        None,
        ctx,
    )
    rec.t_end = 10.5
    rec.served_model = served if served is not None else model
    rec.usage = usage
    if status == "error":
        rec.status, rec.error_type = "error", "APIError"
    elif status != "ok":
        rec.status = status
    return build_row(rec, None)


def log_rows() -> list[Row]:
    """One row per case, as the writer logged them with the built-in table."""
    return [
        row(1, FT, when(2026, 2, 1, 12)),  # old price
        row(2, FT, when(2026, 3, 5)),  # new price, from its first second
        row(3, FT, when(2026, 3, 4, 23, 59, 59, 999999)),  # old price, to its last
        row(4, FT, when(2026, 3, 10), Usage.inclusive(1500, 100)),  # over the 1000 tier
        row(5, "my-alias", when(2026, 3, 10), served=FT),  # priced by its served model
        row(6, FT, when(2026, 3, 10), status="incomplete"),  # stays incomplete
        row(7, FT, when(2026, 3, 10), None),  # missing usage
        row(8, FT, when(2026, 3, 10), Usage.inclusive(-5, 10)),  # invalid usage
        row(9, FT, when(2026, 3, 10), None, status="error"),  # failed, nothing billed
        row(10, "still-unknown", when(2026, 3, 10)),  # no price in either table
        row(11, "gpt-4o", when(2026, 3, 10)),  # priced already, same price
    ]


# (input, cache_read, cache_write, output, reasoning, total, savings) per repriced row:
# 400 input + 100 cache read + 100 output tokens, except row 4 (1500 input, 100 output).
OLD = ("0.0004", "0.0001", "0", "0.0002", "0", "0.0007", "0")  # cache read at the input rate
NEW = ("0.0008", "0.0001", "0", "0.0004", "0", "0.0013", "0.0001")
TIER = ("0.015", "0", "0", "0.002", "0", "0.017", "0")
EXPECTED = {
    1: (OLD, "acme-ft@2026-01-01+custom", "computed"),
    2: (NEW, "acme-ft@2026-03-05+custom", "computed"),
    3: (OLD, "acme-ft@2026-01-01+custom", "computed"),
    4: (TIER, "acme-ft@2026-03-05+custom", "computed"),
    5: (NEW, "acme-ft@2026-03-05+custom", "computed"),
    6: (NEW, "acme-ft@2026-03-05+custom", "incomplete"),
}
COSTS = CostUpdate._fields[1:8]


@pytest.fixture(params=DIALECTS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    async with isolated_db(request.param, tmp_path) as store:
        yield store


@pytest.fixture
def price_file(tmp_path: Path) -> Path:
    path = tmp_path / "acme.yaml"
    path.write_text(PRICE_FILE)
    return path


async def stored(db: Any) -> dict[int, dict[str, Any]]:
    rows = await db.fetch(f"SELECT {', '.join(COLUMNS)} FROM llm_requests")
    return {int(r["request_id"][-12:]): reports.normalize_row(r) for r in rows}


async def test_a_price_added_later_prices_the_rows_then_a_second_run_changes_nothing(
    db: Any, price_file: Path
) -> None:
    logged = log_rows()
    assert {r.cost_status for r in logged[:6]} == {"unknown_model"}  # none priced when logged
    await db.write_batch(logged, [])
    before = await stored(db)

    result = await ml.reprice(db, prices=[price_file])

    assert (result.examined, result.changed, result.unchanged) == (11, 6, 1)
    assert result.skipped == {
        "error": 1,
        "invalid_usage": 1,
        "missing_usage": 1,
        "unknown_model": 1,
    }
    assert result.cost_before == 0
    assert result.cost_after == Decimal("0.0007") * 2 + Decimal("0.0013") * 3 + Decimal("0.017")
    after = await stored(db)
    for i, (amounts, version, status) in EXPECTED.items():
        got = after[i]
        assert [got[c] for c in COSTS] == [Decimal(a) for a in amounts], i
        assert (got["price_version"], got["cost_status"]) == (version, status), i
        # nothing but the costs, the status and the version moved
        unchanged = {c for c in COLUMNS if c not in (*COSTS, "price_version", "cost_status")}
        assert {c: got[c] for c in unchanged} == {c: before[i][c] for c in unchanged}
    for i in (7, 8, 9, 10, 11):
        assert after[i] == before[i], i

    again = await ml.reprice(db, prices=[price_file])
    assert (again.examined, again.changed, again.unchanged) == (11, 0, 7)
    assert await stored(db) == after


async def test_the_repriced_cost_is_the_one_the_writer_computes(db: Any, price_file: Path) -> None:
    """A row logged under the new table and a row repriced to it are the same row; but
    for row 8, whose flagged usage is never touched (the writer, finding a price, would
    now call it invalid_usage; it stays unknown_model, with a NULL cost either way)."""
    table = PriceTable.load([price_file])
    logged = log_rows()
    await db.write_batch(logged, [])
    await ml.reprice(db, prices=table)
    after = await stored(db)
    for original in logged:
        i = int(original.request_id[-12:])
        started = original.started_at
        usage_like = {
            7: None,
            8: Usage.inclusive(-5, 10),
            9: None,
            4: Usage.inclusive(1500, 100),
        }.get(i, USAGE)
        fresh = row(
            i,
            original.model,
            started,
            usage_like,
            served=original.served_model,
            status={6: "incomplete", 9: "error"}.get(i, "ok"),
            prices=table,
        )
        want = reports.normalize_row(dict(zip(COLUMNS, fresh, strict=True)))
        if i == 8:
            assert after[i]["cost_status"] == "unknown_model" and want["total_cost"] is None
            continue
        for column in (*COSTS, "price_version", "cost_status"):
            assert after[i][column] == want[column], (i, column)


async def test_a_corrected_price_is_written_back(db: Any) -> None:
    logged = [row(20 + i, "gpt-4o", when(2026, 3, 10, i)) for i in range(5)]
    await db.write_batch(logged, [])
    right = await stored(db)
    # as if logged with a wrong price: the correction is today's table
    wrong = [
        CostUpdate(r.request_id, *([Decimal("9.99")] * 7), "computed", "gpt-4o@2024-01-01")
        for r in logged[:3]
    ]
    await db.update_costs(wrong)
    result = await ml.reprice(db)
    assert (result.changed, result.unchanged) == (3, 2)
    assert result.cost_before == Decimal("9.99") * 3
    assert await stored(db) == right


async def test_dry_run_counts_and_writes_nothing(db: Any, price_file: Path) -> None:
    await db.write_batch(log_rows(), [])
    before = await stored(db)
    dry = await ml.reprice(db, prices=[price_file], dry_run=True)
    assert dry.dry_run and (dry.changed, dry.unchanged) == (6, 1)
    assert await stored(db) == before
    real = await ml.reprice(db, prices=[price_file])
    assert (real.changed, real.skipped, real.cost_after) == (6, dry.skipped, dry.cost_after)


async def test_window_model_glob_and_pages(db: Any, price_file: Path) -> None:
    await db.write_batch(log_rows(), [])
    calls: list[tuple[int, int | None]] = []

    def progress(read: int, total: int | None) -> None:
        calls.append((read, total))

    result = await ml.reprice(
        db,
        prices=[price_file],
        since=when(2026, 3, 5),
        until=when(2026, 3, 11),
        model="ft:gpt-4o:*",
        batch_size=2,
        progress=progress,
    )
    # rows 2, 4, 5 (served model), 6, 7, 8, 9 are in the window and match the glob
    assert result.examined == 7 and result.changed == 4
    assert calls[-1] == (9, 9)  # the window holds rows 2 and 4-11, read 2 at a time
    assert [read for read, _ in calls] == [0, 2, 4, 6, 8, 9]
    exact = await ml.reprice(db, prices=[price_file], model="my-alias", dry_run=True)
    assert exact.examined == 1 and exact.unchanged == 1


async def test_a_price_from_a_user_file_is_not_replaced_by_the_list_price(
    db: Any, tmp_path: Path
) -> None:
    negotiated = tmp_path / "negotiated.yaml"
    negotiated.write_text(
        'models:\n  - id: gpt-4o\n    prices:\n      - {input: "1.00", output: "5.00"}\n'
    )
    table = PriceTable.load([negotiated])
    await db.write_batch([row(30, "gpt-4o", when(2026, 3, 10), prices=table)], [])
    before = await stored(db)
    assert before[30]["price_version"] == "gpt-4o@1970-01-01+custom"
    result = await ml.reprice(db)  # without the user's file
    assert result.skipped == {"custom_price": 1} and await stored(db) == before
    with_file = await ml.reprice(db, prices=table)
    assert with_file.unchanged == 1


async def test_a_url_is_opened_and_closed(tmp_path: Path, price_file: Path) -> None:
    path = tmp_path / "log.db"
    db = await ml.SqliteAdapter.create(path)
    await db.write_batch(log_rows(), [])
    await db.close()
    result = await ml.reprice(f"sqlite:///{path}", prices=[price_file])
    assert result.changed == 6


async def test_a_store_without_the_methods_is_refused() -> None:
    class Bare:
        dialect, url = "sqlite", "x"

    with pytest.raises(ml.ConfigError, match="cannot reprice"):
        await ml.reprice(Bare())  # type: ignore[arg-type]


async def test_rows_that_cannot_be_trusted_cost_only_themselves(
    tmp_path: Path, price_file: Path
) -> None:
    """Edited by hand: buckets that no longer sum to the total, a negative count, a
    time that is not one. Each is skipped and counted; the others are repriced."""
    path = tmp_path / "log.db"
    db = await ml.SqliteAdapter.create(path)
    try:
        await db.write_batch(log_rows(), [])
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE llm_requests SET total_tokens = 1 WHERE request_id LIKE '%01'")
            conn.execute("UPDATE llm_requests SET output_tokens = -1 WHERE request_id LIKE '%02'")
            conn.execute("UPDATE llm_requests SET started_at = 'soon' WHERE request_id LIKE '%03'")
        result = await ml.reprice(db, prices=[price_file])
        assert result.changed == 3  # rows 4, 5, 6
        assert result.skipped["invalid_usage"] == 3 and result.skipped["bad_row"] == 1
        assert result.examined == 11
    finally:
        await db.close()


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
@pytest.mark.servers
async def test_a_row_the_database_refuses_costs_only_itself(dialect: str, tmp_path: Path) -> None:
    """$900M per 1M input tokens x 100M tokens overflows DECIMAL(20,10): that row is
    counted as refused, the rest of its batch is written."""
    absurd = tmp_path / "absurd.yaml"
    absurd.write_text(
        "models:\n  - id: acme-ft\n    match: '^ft:gpt-4o:acme:.*$'\n    prices:\n"
        '      - {input: "900000000", output: "1.00"}\n'
    )
    async with isolated_db(dialect, tmp_path) as store:
        rows = [row(40 + i, FT, when(2026, 3, 10, i)) for i in range(5)]
        rows.append(row(49, FT, when(2026, 3, 10, 9), Usage.inclusive(100_000_000, 1)))
        await store.write_batch(rows, [])
        result = await ml.reprice(store, prices=[absurd])
        assert result.skipped == {"store_refused": 1} and result.changed == 5
        got = await stored(store)
        assert got[49]["cost_status"] == "unknown_model"
        assert all(got[40 + i]["cost_status"] == "computed" for i in range(5))


def test_a_bedrock_row_is_repriced_by_the_model_id_it_asked_for() -> None:
    """Bedrock bills by the inference profile named in modelId (us. costs 10% more than
    Anthropic's own rate for Haiku 4.5); the served name is Anthropic's model. Reprice
    must price as the writer did, by the requested id, not by the served name."""
    from majordomo_log.record.reprice import reprice_row

    logged = row(40, "us.anthropic.claude-haiku-4-5-20251001-v1:0", when(2026, 3, 10))
    fields = dict(zip(COLUMNS, logged, strict=True))
    fields.update(provider="bedrock", served_model="claude-haiku-4-5-20251001")
    fields.update(cost_status="unknown_model", total_cost=None, price_version=None)
    update = reprice_row(default_prices(), fields)
    assert isinstance(update, CostUpdate)
    # us. profile, Haiku 4.5: $1.10 / MTok input, $0.11 cache read, $5.50 output:
    # 400 * 1.10e-6 + 100 * 0.11e-6 + 100 * 5.50e-6 = 0.00044 + 0.000011 + 0.00055
    assert update.total_cost == Decimal("0.001001")
    assert update.price_version.startswith("anthropic.claude-haiku-4-5@")
