"""The repricing contract (``stores.base.Repriceable``): every SQL store pages through its
rows in the same order with keyset pagination, counts them, and rewrites their costs in
one batch, exactly, on SQLite, PostgreSQL and MySQL/MariaDB alike."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from servers import DIALECTS, isolated_db
from test_contract_metadata import BASE, record

import majordomo_log as ml
from majordomo_log.cli import reports
from majordomo_log.record.rows import build_row
from majordomo_log.schema import COLUMNS, REPRICE_COLUMNS, CostUpdate, CostWindow, Row
from majordomo_log.stores.base import Repriceable


@pytest.fixture(params=DIALECTS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    async with isolated_db(request.param, tmp_path) as store:
        yield store


def rows() -> list[Row]:
    """23 rows over three days; rows 10-15 share one started_at (the key's tie-break)."""
    models = ["claude-haiku-4-5", "gpt-4o", "no-such-model"]
    out = []
    for i in range(23):
        row = build_row(record(i, model=models[i % 3], day=i % 3), None)
        if 10 <= i <= 15:
            row = row._replace(started_at=BASE + dt.timedelta(hours=5))
        out.append(row)
    return out


def key(row: Row) -> tuple[dt.datetime, str]:
    return (row.started_at, row.request_id)


async def pages(db: Any, window: CostWindow, size: int) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    after = None
    while True:
        page = await db.cost_rows(window, after, size)
        assert len(page) <= size
        seen += page
        if len(page) < size:
            return seen
        after = (page[-1]["started_at"], page[-1]["request_id"])


async def test_every_store_is_repriceable(db: ml.MetadataStore) -> None:
    assert isinstance(db, Repriceable)


@pytest.mark.parametrize("size", [1, 4, 7, 1000])
async def test_pages_follow_started_at_then_request_id_without_gaps(db: Any, size: int) -> None:
    written = rows()
    await db.write_batch(written, [])
    got = await pages(db, CostWindow(), size)
    assert [r["request_id"] for r in got] == [r.request_id for r in sorted(written, key=key)]
    assert all(set(r) == set(REPRICE_COLUMNS) for r in got)
    assert await db.count_cost_rows(CostWindow()) == len(written)


async def test_window_and_model_filter_pages_and_count(db: Any) -> None:
    written = rows()
    await db.write_batch(written, [])
    since, until = BASE + dt.timedelta(days=1), BASE + dt.timedelta(days=2)
    want = [
        r.request_id
        for r in sorted(written, key=key)
        if since <= r.started_at < until and "gpt-4o" in (r.model, r.served_model)
    ]
    window = CostWindow(since=since, until=until, model="gpt-4o")
    got = await pages(db, window, 2)
    assert [r["request_id"] for r in got] == want and want
    assert await db.count_cost_rows(window) == len(want)
    # exact names only: another spelling matches nothing in any dialect
    assert await db.count_cost_rows(CostWindow(model="GPT-4o")) == 0


async def test_update_costs_rewrites_only_the_rows_named(db: Any) -> None:
    written = rows()
    await db.write_batch(written, [])
    target, other = written[2], written[3]  # no-such-model (unknown_model), claude-haiku-4-5
    assert target.cost_status == "unknown_model" and target.total_cost is None
    update = CostUpdate(
        request_id=target.request_id,
        input_cost=Decimal("0.0000000001"),  # the smallest amount every store keeps
        cache_read_cost=Decimal("0.0002"),
        cache_write_cost=Decimal("0.00000375"),
        output_cost=Decimal("12345.678901"),
        reasoning_cost=Decimal(0),
        total_cost=Decimal("12345.6793051376"),
        cache_savings=Decimal("-0.0000012"),
        cost_status="computed",
        price_version="my-model@2026-03-01+custom",
    )
    missing = update._replace(request_id="01a20000-0000-7000-8000-999999999999")
    not_an_id = update._replace(request_id="not-a-uuid")
    assert await db.update_costs([update, missing, not_an_id]) == 1
    assert await db.update_costs([]) == 0
    stored = {
        r["request_id"]: reports.normalize_row(r)
        for r in await db.fetch(f"SELECT {', '.join(COLUMNS)} FROM llm_requests")
    }
    got = stored[target.request_id]
    for name in CostUpdate._fields[1:]:
        assert got[name] == getattr(update, name), name
    assert got["input_tokens"] == target.input_tokens  # the tokens are never written
    want_other = reports.normalize_row(dict(zip(COLUMNS, other, strict=True)))
    assert {k: stored[other.request_id][k] for k in CostUpdate._fields} == {
        k: want_other[k] for k in CostUpdate._fields
    }


async def test_update_costs_can_set_costs_back_to_null(db: Any) -> None:
    written = rows()
    await db.write_batch(written, [])
    priced = written[0]
    assert priced.total_cost is not None
    cleared = CostUpdate(priced.request_id, *([None] * 7), "unknown_model", None)
    assert await db.update_costs([cleared]) == 1
    (got,) = await db.fetch(
        "SELECT total_cost, cache_savings, cost_status, price_version FROM llm_requests"
        " WHERE request_id = ?",
        (priced.request_id,),
    )
    assert got == {
        "total_cost": None,
        "cache_savings": None,
        "cost_status": "unknown_model",
        "price_version": None,
    }


async def test_a_batch_over_many_statements_lands_whole(db: Any) -> None:
    many = [build_row(record(1000 + i), None) for i in range(1203)]
    await db.write_batch(many, [])
    updates = [
        CostUpdate(r.request_id, *([Decimal(i) / 10**10] * 7), "computed", f"v@{i}")
        for i, r in enumerate(many, 1)
    ]
    assert await db.update_costs(updates) == len(many)
    got = await db.fetch("SELECT request_id, total_cost, price_version FROM llm_requests")
    by_id = {r["request_id"]: r for r in got}
    for i, r in enumerate(many, 1):
        assert reports.as_decimal(by_id[r.request_id]["total_cost"]) == Decimal(i) / 10**10
        assert by_id[r.request_id]["price_version"] == f"v@{i}"


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
@pytest.mark.servers
async def test_a_refused_value_fails_the_whole_batch(dialect: str, tmp_path: Path) -> None:
    """DECIMAL(20,10) holds less than $10**10: the server refuses more, as a StoreError
    (not StoreUnavailable: retrying cannot help), and the batch's other rows stay as
    they were (one transaction)."""
    async with isolated_db(dialect, tmp_path) as store:
        written = rows()
        await store.write_batch(written, [])
        good = CostUpdate(written[0].request_id, *([Decimal(1)] * 7), "computed", "ok@1")
        bad = good._replace(request_id=written[1].request_id, total_cost=Decimal(10) ** 12)
        with pytest.raises(ml.StoreError) as info:
            await store.update_costs([good, bad])  # type: ignore[attr-defined]
        assert not isinstance(info.value, ml.StoreUnavailable)
        (row,) = await store.fetch(
            "SELECT price_version FROM llm_requests WHERE request_id = ?", (good.request_id,)
        )
        assert row["price_version"] == written[0].price_version
