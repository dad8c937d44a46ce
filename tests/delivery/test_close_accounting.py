"""Every record is accounted for when the wrapper is not closed, or closed with a timeout
too short to write them all: written, spilled to the spool, or counted as dropped."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from openai.types.chat import ChatCompletion

import majordomo_log as ml

MESSAGES: Any = [{"role": "user", "content": "hi"}]


def run_script(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


FORGOTTEN_CLOSE_SCRIPT = """
    import asyncio, sys
    import majordomo_log as ml
    from majordomo_log.testing import FakeProvider, fake_openai_client

    async def main():
        db = await ml.SqliteAdapter.create(sys.argv[1])
        storage = await ml.FileStorageAdapter.create(sys.argv[2])
        llm = ml.LoggingLLM(fake_openai_client(FakeProvider()), db, storage)
        msgs = [{"role": "user", "content": "hi"}]

        async def one(i):
            if i % 3 == 0:
                stream = await llm.chat.completions.create(
                    model="gpt-4o", messages=msgs, stream=True
                )
                async for _ in stream:
                    pass
            else:
                await llm.chat.completions.create(model="gpt-4o", messages=msgs)

        await asyncio.gather(*(one(i) for i in range(3000)))
        # returns without flush() or close(): asyncio.run cancels the writer mid-batch

    asyncio.run(main())
"""


def test_forgotten_close_after_3000_mixed_calls_writes_every_row(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    done = run_script(FORGOTTEN_CLOSE_SCRIPT, str(db), str(tmp_path / "bodies"))
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(db) as conn:
        rows, distinct = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT request_id) FROM llm_requests"
        ).fetchone()
    assert (rows, distinct) == (3000, 3000)


class _Completions:
    def __init__(self) -> None:
        self.reply = ChatCompletion.model_validate(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1,
                "model": "gpt-4o-2024-08-06",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "hi"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
            }
        )

    async def create(self, **kwargs: Any) -> ChatCompletion:
        return self.reply.model_copy()


class _Chat:
    def __init__(self) -> None:
        self.completions = _Completions()


class _InstantClient:
    """A client with no HTTP at all, so thousands of calls queue in well under a second."""

    api_key = "sk-instant"

    def __init__(self) -> None:
        self.chat = _Chat()


async def test_close_timeout_accounts_for_every_queued_record(
    stores: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_write = stores.db.write_batch

    async def slow_write(rows: Any, outcomes: Any) -> None:
        await asyncio.sleep(2)
        await real_write(rows, outcomes)

    monkeypatch.setattr(stores.db, "write_batch", slow_write)
    llm = ml.LoggingLLM(
        _InstantClient(), stores.db, stores.storage, batch_size=100_000, flush_interval=100
    )
    for _ in range(5000):
        await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    with caplog.at_level(logging.ERROR, logger="majordomo_log"):
        stats = await llm.close(timeout=0.05)

    # Nothing is lost: what close() had no time to write is in the spool.
    assert stats.written + stats.spilled == 5000
    assert stats.spilled > 0
    assert (stats.pending, stats.dropped) == (0, 0)
    assert stats.spool_files >= 1


async def test_close_timeout_without_a_spool_counts_what_it_drops(
    stores: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_write = stores.db.write_batch

    async def slow_write(rows: Any, outcomes: Any) -> None:
        await asyncio.sleep(2)
        await real_write(rows, outcomes)

    monkeypatch.setattr(stores.db, "write_batch", slow_write)
    llm = ml.LoggingLLM(
        _InstantClient(),
        stores.db,
        stores.storage,
        batch_size=100_000,
        flush_interval=100,
        spool=False,
    )
    for _ in range(5000):
        await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    with caplog.at_level(logging.ERROR, logger="majordomo_log"):
        stats = await llm.close(timeout=0.05)

    assert stats.written + stats.dropped == 5000
    assert stats.pending == 0
    assert stats.dropped > 0
    assert set(stats.dropped_by_reason) <= {"exit", "closed"}
    assert any(
        r.name == "majordomo_log" and r.levelno == logging.ERROR and "dropped" in r.getMessage()
        for r in caplog.records
    )
