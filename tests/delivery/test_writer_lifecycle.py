"""The writer's promises at the edges of its life: flush() with records spilled over
budget, close() against a store that never answers, calls made after close()."""

from __future__ import annotations

import asyncio
import gc
import inspect
import sqlite3
from pathlib import Path
from typing import Any

from duck_client import Acme
from faultlib import wait_for_stats

import majordomo_log as ml


async def test_flush_writes_what_the_budget_spilled_while_the_stores_were_healthy(
    stores: Any, tmp_path: Path
) -> None:
    # Default budgets: 10,000 calls at once do not fit 64 MB (8 KB counted per response),
    # so part of the burst goes to the spool though nothing is down.
    llm = ml.LoggingLLM(Acme(), stores.db, stores.storage, spool=tmp_path / "spool")
    await asyncio.gather(*(llm.complete(f"call {k}") for k in range(10_000)))
    stats = await llm.flush()
    assert stats.spilled > 0  # the path under test was taken
    assert (stats.written + stats.replayed, stats.failed, stats.dropped) == (10_000, 0, 0)
    assert len(stores.rows()) == 10_000
    assert ml.Spool(tmp_path / "spool").pending() == []
    await llm.close()


def test_close_has_a_default_deadline() -> None:
    for close in (ml.LoggingLLM.close,):
        timeout = inspect.signature(close).parameters["timeout"].default
        assert isinstance(timeout, float) and 0 < timeout <= 30


async def test_leaving_async_with_ends_while_the_database_stays_locked(
    stores: Any, tmp_path: Path
) -> None:
    """No spool, and another process holds the database's write lock for longer than
    anyone waits: leaving the block must still end (by the default deadline), the
    records counted as dropped, not hang for the whole outage."""
    locker = sqlite3.connect(stores.db_path, isolation_level=None, check_same_thread=False)
    locker.execute("BEGIN EXCLUSIVE")
    try:

        async def run() -> ml.WriterStats:
            async with ml.LoggingLLM(Acme(), stores.db, stores.storage, spool=False) as llm:
                for k in range(20):
                    await llm.complete(f"call {k}")
            return llm.stats()

        # Generous: the safety net of a hang, not a measure of speed.
        stats = await asyncio.wait_for(run(), 120)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert (stats.written, stats.pending) == (0, 0)
    assert stats.dropped_by_reason == {"closed": 20}


async def test_calls_after_close_are_spooled_in_chunks_not_one_file_each(
    stores: Any, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    llm = ml.LoggingLLM(Acme(), stores.db, stores.storage, close_stores=False, spool=spool_dir)
    await llm.close()
    replies = [await llm.complete(f"late {k}") for k in range(300)]
    assert all(r.content == f"late {k}" for k, r in enumerate(replies))
    # 250 at a time, in a thread (pricing and an fsync would stall the loop).
    stats = await wait_for_stats(llm, lambda s: s.spilled >= 250)
    assert stats.spilled >= 250 and stats.spilled + stats.pending == 300
    assert len(ml.Spool(spool_dir).pending()) == 1  # not a file per call
    # A new wrapper on the same stores takes over: the rest is spooled, then replayed.
    again = ml.LoggingLLM(Acme(), stores.db, stores.storage, spool=spool_dir)
    assert llm.stats().pending == 0
    assert await again.replay_spool() == 300
    await again.close()
    assert len(stores.rows()) == 300


async def test_close_after_flush_does_not_wait_for_the_flush_timer(stores: Any) -> None:
    # An hour-long timer: a close() that waited for it would trip the net below.
    llm = ml.LoggingLLM(Acme(), stores.db, stores.storage, flush_interval=3600)
    await llm.complete("hi")
    await llm.flush()
    stats = await asyncio.wait_for(llm.close(), 60)  # the net of a hang, not a timing
    assert (stats.written, stats.pending) == (1, 0)


async def test_calls_after_close_survive_the_wrapper_being_collected(
    stores: Any, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    llm = ml.LoggingLLM(Acme(), stores.db, stores.storage, close_stores=False, spool=spool_dir)
    await llm.close()
    for k in range(10):
        await llm.complete(f"late {k}")
    del llm
    gc.collect()  # nothing of the application's holds the writer any more
    again = ml.LoggingLLM(Acme(), stores.db, stores.storage, spool=spool_dir)
    assert await again.replay_spool() == 10
    await again.close()
    assert len(stores.rows()) == 10
