"""``majordomo_log.reprice`` keeps a row's billing variants (record/billing.py): a row priced
at a service tier is priced again at that tier, its web searches billed again; what it
cannot reprice consistently (a tier the table no longer prices, a changed search fee, a
model with audio rates) is left as it is and counted."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import majordomo_log as ml
from majordomo_log.cli import reports
from majordomo_log.record.call import CallContext, CallRecord
from majordomo_log.record.pricing import PriceTable, default_prices
from majordomo_log.record.rows import build_row
from majordomo_log.schema import Row

WHEN = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.timezone.utc)


def row(i: int, model: str, provider: str, usage: Any, response: Any = None) -> Row:
    ctx = CallContext(prices=default_prices(), api_key_alias=None, tags={}, secrets=())
    rec = CallRecord(
        f"01a40000-0000-7000-8000-{i:012d}",
        (WHEN + dt.timedelta(seconds=i)).timestamp(),
        10.0,
        provider,
        "messages" if provider == "anthropic" else "responses",
        model,
        False,
        {},
        None,
        ctx,
    )
    rec.t_end = 10.5
    rec.served_model = model
    rec.usage = usage
    rec.response = response
    return build_row(rec, None)


def rows() -> list[Row]:
    return [
        # claude-haiku-4-5 batch ($0.50 / $2.50 per 1M), 2 web searches at $10 per 1,000
        row(
            1,
            "claude-haiku-4-5",
            "anthropic",
            {
                "input_tokens": 1000,
                "output_tokens": 400,
                "service_tier": "batch",
                "server_tool_use": {"web_search_requests": 2},
            },
        ),
        # o4-mini flex ($0.55 / $2.20 per 1M)
        row(
            2,
            "o4-mini",
            "openai",
            {"input_tokens": 2000, "output_tokens": 100, "input_tokens_details": {}},
            {"service_tier": "flex"},
        ),
        # gpt-audio: its audio split is not in the row
        row(
            3,
            "gpt-audio",
            "openai",
            {
                "prompt_tokens": 100,
                "completion_tokens": 10,
                "prompt_tokens_details": {"audio_tokens": 50},
            },
        ),
    ]


async def costs(db: ml.SqliteAdapter) -> dict[str, Any]:
    got = await db.fetch(
        "SELECT request_id, service_tier, server_tool_cost, total_cost, price_version"
        " FROM llm_requests ORDER BY request_id"
    )
    return {r["request_id"][-1]: reports.normalize_row(r) for r in got}


async def test_the_same_prices_change_nothing(tmp_path: Path) -> None:
    db = await ml.SqliteAdapter.create(tmp_path / "log.db")
    try:
        await db.write_batch(rows(), [])
        before = await costs(db)
        # 1000 * 0.50 + 400 * 2.50 = 1,500 / 1e6; 2 searches = 0.02
        assert before["1"]["total_cost"] == Decimal("0.0215")
        result = await ml.reprice(db)
        assert (result.changed, result.unchanged) == (0, 2)
        assert result.skipped == {"audio_tokens": 1}
        assert await costs(db) == before
    finally:
        await db.close()


async def test_a_corrected_tier_price_reprices_at_the_tier(tmp_path: Path) -> None:
    # A price file with o4-mini's flex rates corrected, claude-haiku-4-5's batch tier gone
    # and its search fee doubled: the flex row changes at the tier's new rates; the batch row
    # is left as it is, counted.
    prices = tmp_path / "prices.yaml"
    prices.write_text(
        """
models:
  - id: o4-mini
    provider: openai
    match: '^o4-mini$'
    prices:
      - effective: "2025-04-16"
        input: "1.10"
        output: "4.40"
        service_tiers:
          flex: {input: "0.50", output: "2.00"}
  - id: claude-haiku-4-5
    provider: anthropic
    match: '^claude-haiku-4-5$'
    prices:
      - effective: "2025-10-01"
        input: "1.00"
        output: "5.00"
        web_search_per_1k: "20.00"
""",
        encoding="utf-8",
    )
    db = await ml.SqliteAdapter.create(tmp_path / "log.db")
    try:
        await db.write_batch(rows(), [])
        table = PriceTable.load([prices])
        result = await ml.reprice(db, prices=table)
        assert result.changed == 1
        assert result.skipped == {"audio_tokens": 1, "service_tier_unpriced": 1}
        after = await costs(db)
        # 2000 * 0.50 + 100 * 2.00 = 1,200 / 1e6
        assert after["2"]["total_cost"] == Decimal("0.0012")
        assert after["2"]["service_tier"] == "flex"
        assert after["2"]["price_version"] == "o4-mini@2025-04-16+custom"
        assert after["1"]["total_cost"] == Decimal("0.0215")  # untouched
    finally:
        await db.close()
