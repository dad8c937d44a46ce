"""Volume: 10,000 concurrent wrapped calls, then flush: every row and every body."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import majordomo_log as ml


@dataclass
class Reply:
    text: str
    input_tokens: int
    output_tokens: int
    model: str = "gpt-4o-mini"


class InstantLLM:
    """A majordomo-llm-style client whose calls cost nothing and never yield."""

    model = "gpt-4o-mini"

    async def get_response(self, prompt: str) -> Reply:
        return Reply(text=prompt[::-1], input_tokens=len(prompt), output_tokens=7)


async def test_ten_thousand_concurrent_calls_leave_ten_thousand_rows_and_bodies(
    tmp_path: Path,
) -> None:
    db = await ml.SqliteAdapter.create(tmp_path / "log.db")
    storage = await ml.FileStorageAdapter.create(tmp_path / "bodies", mode="object")
    # The whole burst held in memory (budgets and spilling are tested in test_spool.py):
    # each record counts 8 KB for its response object, so 10,000 exceed the default 64 MB.
    llm = ml.LoggingLLM(InstantLLM(), db, storage, close_stores=False, max_queue_bytes=2**28)
    replies = await asyncio.gather(*(llm.get_response(f"prompt {i}") for i in range(10_000)))
    ids = {ml.call_info(r).request_id for r in replies}
    stats = await llm.flush()
    assert (stats.written, stats.dropped, stats.failed, stats.pending) == (10_000, 0, 0, 0)
    rows = await db.fetch("SELECT request_id, body_ref, input_tokens FROM llm_requests")
    assert {r["request_id"] for r in rows} == ids
    assert all(r["body_ref"] for r in rows)
    assert sum(r["input_tokens"] for r in rows) == sum(len(f"prompt {i}") for i in range(10_000))
    assert len(list((tmp_path / "bodies").rglob("*.json.gz"))) == 10_000
    await llm.close()
    await db.close()
