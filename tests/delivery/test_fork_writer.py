"""A forked worker (gunicorn --preload, multiprocessing "fork") gets a fresh writer: the
parent's queued records stay the parent's, the child's calls are written through stores
it reopens, and nothing is written twice."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest

import majordomo_log as ml
from majordomo_log.testing import FakeProvider, fake_openai_client

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")

MESSAGES = [{"role": "user", "content": "hi"}]


def test_a_forked_child_gets_a_fresh_writer(tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()

    async def setup() -> ml.LoggingLLM[object]:
        db = await ml.SqliteAdapter.create(tmp_path / "log.db")
        storage = await ml.FileStorageAdapter.create(tmp_path / "bodies")
        return ml.LoggingLLM(
            fake_openai_client(FakeProvider()),
            db,
            storage,
            flush_interval=3600,  # the parent's records are still queued at the fork
            spool=tmp_path / "spool",
        )

    async def calls(llm: ml.LoggingLLM[object], n: int) -> list[str]:
        replies = [
            await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[attr-defined]
            for _ in range(n)
        ]
        return [ml.call_info(r).request_id for r in replies]

    llm = loop.run_until_complete(setup())
    parent_ids = loop.run_until_complete(calls(llm, 10))
    assert llm.stats().pending == 10
    child_ids_file = tmp_path / "child_ids"

    pid = os.fork()
    if pid == 0:  # the child: its own loop, the inherited wrapper
        code = 1
        try:

            async def child() -> None:
                ids = await calls(llm, 5)
                stats = await llm.close()
                assert (stats.written, stats.pending, stats.dropped) == (5, 0, 0), stats
                child_ids_file.write_text("\n".join(ids))

            asyncio.run(child())
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    child_ids = child_ids_file.read_text().split("\n")

    stats = loop.run_until_complete(llm.close())
    loop.close()
    assert (stats.written, stats.dropped, stats.spilled) == (10, 0, 0)
    with sqlite3.connect(tmp_path / "log.db") as conn:
        rows = dict(conn.execute("SELECT request_id, body_ref FROM llm_requests").fetchall())
    assert sorted(rows) == sorted(parent_ids + child_ids)  # once each: no duplicates
    assert all(rows.values())
