"""The writer and a store that misbehaves: a refused row costs only itself, an
unavailable store is retried."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import majordomo_log as ml


class Reply:
    def __init__(self, model: str) -> None:
        self.model, self.input_tokens, self.output_tokens = model, 10, 5


class Client:
    async def ask(self, model: str) -> Reply:
        return Reply(model)


class RefusingStore:
    """A real SQLite store that refuses, like a database would, any batch holding a
    'poison' row, and is unavailable for its first `outages` writes."""

    def __init__(self, inner: ml.SqliteAdapter, outages: int = 0) -> None:
        self.inner, self.outages, self.calls = inner, outages, 0
        self.dialect, self.url = inner.dialect, inner.url

    async def write_batch(self, rows: Sequence[Any], outcomes: Sequence[Any]) -> None:
        self.calls += 1
        if self.outages:
            self.outages -= 1
            raise ml.StoreUnavailable("connection refused")
        if any(row[6] == "poison" for row in rows):  # column 6 is `model`
            raise ml.StoreError("value rejected by the database")
        await self.inner.write_batch(rows, outcomes)

    async def migrate(self) -> list[str]:
        return await self.inner.migrate()

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return await self.inner.fetch(sql, params)

    async def close(self) -> None:
        await self.inner.close()


async def test_one_refused_row_costs_only_itself(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = RefusingStore(await ml.SqliteAdapter.create(tmp_path / "log.db"))
    llm = ml.LoggingLLM(Client(), store, None, close_stores=False)
    models = ["gpt-4o"] * 40 + ["poison"] + ["gpt-4o"] * 59
    replies = [await llm.ask(model=m) for m in models]
    stats = await llm.flush()
    assert (stats.written, stats.failed) == (99, 1)
    poison_id = ml.call_info(replies[40]).request_id
    rows = await store.fetch("SELECT request_id FROM llm_requests")
    assert len(rows) == 99 and poison_id not in {r["request_id"] for r in rows}
    assert f"refused row {poison_id}" in caplog.text
    assert store.calls < 30  # halving finds one bad row in about 2 x log2(100) writes
    await llm.close()
    await store.close()


async def test_an_unavailable_store_is_retried(tmp_path: Path) -> None:
    store = RefusingStore(await ml.SqliteAdapter.create(tmp_path / "log.db"), outages=2)
    llm = ml.LoggingLLM(Client(), store, None, close_stores=False)
    for _ in range(10):
        await llm.ask("gpt-4o")
    stats = await llm.flush()
    assert (stats.written, stats.failed) == (10, 0)
    assert store.calls == 3
    await llm.close()
    await store.close()
