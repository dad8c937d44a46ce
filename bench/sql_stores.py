"""Rows/s into each metadata store and the longest event-loop stall while writing.

    .venv/bin/python bench/sql_stores.py [rows]

(a) store.write_batch() alone, 1000-row batches of pre-built rows;
(b) end to end: an instant client wrapped by LoggingLLM, calls until `rows` are
    committed (hot path + worker thread + store, all in one process).
A ticker task sleeps 1 ms in a loop; the worst lateness it sees is the stall.
Servers: MAJORDOMO_TEST_POSTGRES_URL / MAJORDOMO_TEST_MYSQL_URL (local defaults).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).parent))

from quick import MESSAGES, FakeOpenAI
from servers import isolated_db
from test_contract_metadata import record

import majordomo_log as ml
from majordomo_log._record import build_row


class Ticker:
    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(0.001)
            self.worst = max(self.worst, time.perf_counter() - t0 - 0.001)

    def __enter__(self) -> Ticker:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def store_only(dialect: str, n: int) -> tuple[float, float]:
    rows = [build_row(record(i), None) for i in range(n)]
    # unique ids: record() numbers them; keep them time-ordered like real UUIDv7s
    async with isolated_db(dialect, Path(tempfile.mkdtemp())) as db:
        await asyncio.sleep(0.05)
        with Ticker() as ticker:
            t0 = time.perf_counter()
            for start in range(0, n, 1000):
                await db.write_batch(rows[start : start + 1000], [])
            elapsed = time.perf_counter() - t0
        return n / elapsed, ticker.worst * 1000


async def end_to_end(dialect: str, n: int) -> tuple[float, float]:
    async with isolated_db(dialect, Path(tempfile.mkdtemp())) as db:
        llm = ml.LoggingLLM(FakeOpenAI(), db, None, close_stores=False, max_queue_bytes=1 << 30)
        with Ticker() as ticker:
            t0 = time.perf_counter()
            for i in range(n):
                await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
                if i % 200 == 0:
                    await asyncio.sleep(0)  # a service yields between requests
            stats = await llm.flush()
            elapsed = time.perf_counter() - t0
        await llm.close()
        assert stats.written == n and stats.failed == 0, stats
        return n / elapsed, ticker.worst * 1000


async def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    header = ("store", "write_batch rows/s", "stall ms", "end-to-end rows/s", "stall ms")
    print("{:<11} {:>19} {:>9} {:>18} {:>9}".format(*header))
    for dialect in ("sqlite", "postgresql", "mysql"):
        a = [await store_only(dialect, n) for _ in range(3)]
        b = [await end_to_end(dialect, n) for _ in range(3)]
        rate_a, stall_a = (statistics.median(v) for v in zip(*a, strict=True))
        rate_b, stall_b = (statistics.median(v) for v in zip(*b, strict=True))
        print(f"{dialect:<11} {rate_a:>19,.0f} {stall_a:>9.1f} {rate_b:>18,.0f} {stall_b:>9.1f}")


if __name__ == "__main__":
    asyncio.run(main())
