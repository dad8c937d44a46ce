"""How each metadata store converts a batch: whatever mix of NULL and non-NULL a batch
holds (a column NULL in every row is sent as a literal, or left out of a COPY), every
value reads back as it was, the same as when each row is written alone, and a row the
store refuses costs only itself."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from servers import DIALECTS, isolated_db

import majordomo_log as ml
from majordomo_log._exceptions import StoreError, StoreUnavailable
from majordomo_log.cli import reports
from majordomo_log.delivery.isolate import write_isolating
from majordomo_log.schema import COLUMNS, Row
from majordomo_log.stores.sql import sqlite_rows
from majordomo_log.stores.sql.nulls import null_columns
from majordomo_log.stores.sql.postgres_copy import copy_batch

UTC = dt.timezone.utc
BASE = dt.datetime(2026, 5, 6, 7, 8, 9, 101112, tzinfo=UTC)
# Text that CSV, SQL escaping and COPY treat specially, and text that only looks like NULL.
AWKWARD = [
    "",
    "\\N",
    "NULL",
    'say "hi", then\nleave\r\n\ttab \\ back',
    "x'); DROP TABLE llm_requests; --\\",
    "üñï ✨ \U0001f680",
    ",",
    '"',
]


def row(i: int, **values: Any) -> Row:
    """A row with every nullable column NULL unless given."""
    base: dict[str, Any] = dict.fromkeys(COLUMNS)
    base.update(
        request_id=f"01a30000-0000-7000-8000-{i:012d}",
        started_at=BASE + dt.timedelta(seconds=i),
        ended_at=BASE + dt.timedelta(seconds=i, microseconds=250_000),
        latency_ms=250.0,
        provider="openai",
        operation="chat.completions",
        stream=False,
        status="ok",
        currency="USD",
        cost_status="computed",
        tags="{}",
    )
    base.update(values)
    return Row(**base)


def mixed_rows() -> list[Row]:
    """A batch where some columns are NULL in some rows only, some in every row, and
    every awkward value appears in a text column."""
    rows = []
    for i in range(24):
        text = AWKWARD[i % len(AWKWARD)]
        rows.append(
            row(
                i,
                model=text if i % 3 else None,
                error_message=None if i % 2 else text,
                user_id=text,
                input_tokens=None if i % 4 == 0 else 2**63 - 1 - i,
                output_tokens=i,
                total_cost=None if i % 5 == 0 else Decimal("0.0000000001") * (i + 1),
                input_cost=Decimal("1234.1234567891"),  # SQLite: exact to 15 digits
                time_to_first_token_ms=None if i % 2 else [0.1 + 0.2, 1e-300, 1e16, 5e-324][i % 4],
                stream=bool(i % 2),
                outcome_at=None if i % 3 else BASE.replace(microsecond=0),
                outcome="accepted" if i % 3 == 0 else None,
                tags=json.dumps({"note": text, "n": i}, ensure_ascii=False),
            )
        )
    return rows


def comparable(values: dict[str, Any]) -> dict[str, Any]:
    out = reports.normalize_row(values)
    out["tags"] = json.loads(out["tags"])
    if isinstance(out["time_to_first_token_ms"], Decimal):
        out["time_to_first_token_ms"] = float(out["time_to_first_token_ms"])
    return out


async def read_all(db: ml.MetadataStore) -> list[dict[str, Any]]:
    got = await db.fetch(f"SELECT {', '.join(COLUMNS)} FROM llm_requests ORDER BY request_id")
    return [comparable(r) for r in got]


@pytest.fixture(params=DIALECTS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    async with isolated_db(request.param, tmp_path) as store:
        yield store


def test_the_null_columns_of_a_batch() -> None:
    rows = mixed_rows()
    nulls = {COLUMNS[i] for i in null_columns(rows)}
    assert "workflow" in nulls and "body_ref" in nulls  # NULL in every row
    assert not nulls & {"model", "error_message", "input_tokens", "outcome_at", "user_id"}
    assert null_columns([]) == frozenset()
    assert null_columns(rows[:1]) >= null_columns(rows)


def test_sqlite_binds_all_null_columns_as_literals() -> None:
    rows = mixed_rows()
    sql, params = sqlite_rows.encode_batch(rows)
    nulls = null_columns(rows)
    assert sql.count("NULL") == len(nulls) and sql.count("?") == len(COLUMNS) - len(nulls)
    assert all(len(p) == len(COLUMNS) - len(nulls) for p in params)
    assert sqlite_rows.encode_batch(rows[1:2]).sql is sqlite_rows.encode_batch(rows[1:2]).sql


def test_postgres_copy_leaves_out_all_null_columns_but_not_defaulted_ones() -> None:
    rows = [row(1, currency=None), row(2, currency=None)]
    batch = copy_batch(rows)
    assert "currency" in batch.columns  # NULL must fail, not become the DEFAULT 'USD'
    assert "workflow" not in batch.columns and "request_id" in batch.columns
    assert batch.data.count(b"\n") == 2


async def test_a_mixed_batch_reads_back_as_written(db: ml.MetadataStore) -> None:
    rows = mixed_rows()
    await db.write_batch(rows, [])
    assert await read_all(db) == [comparable(dict(zip(COLUMNS, r, strict=True))) for r in rows]


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_batched_and_one_by_one_store_the_same(dialect: str, tmp_path: Path) -> None:
    rows = mixed_rows()
    async with isolated_db(dialect, tmp_path) as batched, isolated_db(dialect, tmp_path) as alone:
        await batched.write_batch(rows, [])
        for r in rows:  # alone, every NULL of a row is an all-NULL column of its batch
            await alone.write_batch([r], [])
        assert await read_all(batched) == await read_all(alone)


async def test_a_column_null_in_every_row_and_then_not(db: ml.MetadataStore) -> None:
    first = [row(i) for i in range(5)]  # workflow NULL everywhere
    second = [row(i, workflow=f"w{i}") for i in range(5, 10)]  # the same column, set
    await db.write_batch(first, [])
    await db.write_batch(second, [])
    got = {r["request_id"]: r["workflow"] for r in await read_all(db)}
    assert [got[r.request_id] for r in first] == [None] * 5
    assert [got[r.request_id] for r in second] == [f"w{i}" for i in range(5, 10)]


async def test_null_in_a_not_null_column_is_refused_in_every_row_or_one(
    db: ml.MetadataStore,
) -> None:
    everywhere = [row(i, currency=None) for i in range(3)]  # a DEFAULT column, all NULL
    with pytest.raises(StoreError) as refused:
        await db.write_batch(everywhere, [])
    assert not isinstance(refused.value, StoreUnavailable)
    assert await read_all(db) == []


async def test_a_refused_row_costs_only_itself(db: ml.MetadataStore) -> None:
    rows = mixed_rows()[:9]
    bad = row(50, provider=None, workflow="only here")  # NOT NULL column, NULL in one row
    batch = [*rows[:4], bad, *rows[4:]]
    refused = await write_isolating(db.write_batch, batch, [])
    assert [(r.request_id if r else None) for r, _ in refused] == [bad.request_id]
    stored = await read_all(db)
    assert [r["request_id"] for r in stored] == sorted(r.request_id for r in rows)
