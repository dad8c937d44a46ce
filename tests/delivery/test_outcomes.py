"""Outcomes (``record_outcome``) reach their rows on every delivery path, and only an id
the log does not hold is counted in ``outcomes_unmatched``: not one whose row was in the
other half of a batch split to isolate a refused row, not one whose row a
``writer="process"`` parent spooled, and a store of someone else's that returns a row
count from ``write_batch`` is not taken to have refused anything."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from duck_client import Acme
from sample_rows import sample_row
from servers import DIALECTS, isolated_db

import majordomo_log as ml
from majordomo_log.delivery.delivery import Delivery
from majordomo_log.delivery.spool import Spool, SpoolEntry
from majordomo_log.schema import Row

BASE = dt.datetime(2026, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc)


@pytest.fixture(params=DIALECTS)
async def db(request: Any, tmp_path: Path) -> AsyncIterator[ml.MetadataStore]:
    async with isolated_db(request.param, tmp_path) as store:
        yield store


async def test_an_outcome_whose_row_follows_a_refused_row_lands(
    db: ml.MetadataStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path / "spool")  # the middle row is refused: provider is NOT NULL
    first, refused, last = sample_row(BASE), sample_row(BASE, provider=None), sample_row(BASE)
    spool.append(
        [SpoolEntry(first), SpoolEntry(refused), SpoolEntry(last)],
        [(last.request_id, "accepted", BASE)],
        reason="unavailable", db=db.url, storage=None,
    )  # fmt: skip
    delivery = Delivery(db, None, spool, 0, lambda attempt: 0.0)
    with caplog.at_level(logging.WARNING, logger="majordomo_log"):
        await delivery.replay(max_files=None)
    rows = await db.fetch("SELECT request_id, outcome FROM llm_requests")
    assert {str(r["request_id"]): r["outcome"] for r in rows} == {
        first.request_id: None,
        last.request_id: "accepted",
    }
    assert delivery.outcomes_unmatched == 0 and "matched no logged call" not in caplog.text
    assert delivery.outcomes_written == 1  # replayed outcomes are counted as written


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")
async def test_process_writer_outcomes_for_rows_the_parent_spooled(tmp_path: Path) -> None:
    db = await ml.SqliteAdapter.create(tmp_path / "log.db")
    llm = ml.LoggingLLM(
        Acme(), db, None, close_stores=False, writer="process", spool=tmp_path / "spool",
        max_queue_records=2, batch_size=1,
    )  # fmt: skip
    await llm.complete("hi")
    await llm.flush()
    ids = [ml.call_info(await llm.complete("hi")).request_id for _ in range(6)]
    for _ in range(300):  # the parent spills its overflow on its own thread
        if llm.stats().queue_records == 0:
            break
        await asyncio.sleep(0.05)
    assert llm.stats().spilled > 0  # the parent's queue filled: some rows went to the spool
    for request_id in ids:
        await llm.record_outcome(request_id, "accepted")
        await asyncio.sleep(0.05)
    stats = await llm.close()
    rows = dict(await _outcomes(tmp_path / "log.db"))
    assert [rows.get(i) for i in ids] == ["accepted"] * 6
    assert stats.outcomes_unmatched == 0
    await db.close()


async def _outcomes(path: Path) -> list[tuple[str, str | None]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT request_id, outcome FROM llm_requests").fetchall()


class CountingStore:
    """A store of someone else's: delegates, and returns a row count from write_batch."""

    def __init__(self, inner: ml.SqliteAdapter, returns: Any) -> None:
        self.inner, self.returns = inner, returns
        self.dialect, self.url = inner.dialect, inner.url

    async def write_batch(self, rows: Sequence[Row], outcomes: Sequence[Any]) -> Any:
        await self.inner.write_batch(rows, outcomes)
        return self.returns if self.returns != "count" else len(rows) + len(outcomes)

    async def migrate(self) -> None:
        await self.inner.migrate()

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return await self.inner.fetch(sql, params)

    async def close(self) -> None:
        await self.inner.close()


@pytest.mark.parametrize("returns", [None, "count", True, "not-a-list"])
async def test_a_store_returning_other_than_ids_is_not_refused(
    tmp_path: Path, returns: Any
) -> None:
    store = CountingStore(await ml.SqliteAdapter.create(tmp_path / "log.db"), returns)
    llm = ml.LoggingLLM(Acme(), store, None, spool=tmp_path / "spool")
    request_id = ml.call_info(await llm.complete("hi")).request_id
    await llm.record_outcome(request_id, "accepted")
    stats = await llm.close()
    assert (stats.written, stats.failed, stats.outcomes_written) == (1, 0, 1)
    assert stats.outcomes_unmatched == 0
    assert not (tmp_path / "spool" / "rejected").exists()
    assert await _outcomes(tmp_path / "log.db") == [(request_id, "accepted")]
