"""The longest event-loop stall while one 1000-row batch is written, per metadata store.

    .venv/bin/python bench/stall.py [rounds]

Per backend (SQLite, PostgreSQL, MariaDB: those that answer), a migrated store of its
own gets ``BATCHES`` batches of ``BATCH`` pre-built rows (shaped as the writer builds
them: about 14 of the 45 columns NULL, the same ones in every row), one
``write_batch()`` at a time, nothing else on the loop but a ticker: a task sleeping
1 ms in a loop, whose worst lateness is the longest the store kept the loop from
other tasks. The figure per round is the worst batch; the value the median over
rounds. rows/s is the same writes' throughput (insert and commit), µs per row its
inverse. "idle loop" is the ticker alone for as long as each batch took, interleaved
with them: the machine's own scheduling noise, a floor for the stall figure. "event-loop
CPU" is the loop thread's CPU time during a batch less the ticker's turns (each costed
at what a turn took on the idle loop), median of the batches: the work the store does
on the loop, which other processes on the machine do not inflate.

The target (<= 2 ms) is the issue's; the REFERENCE figures before this work were
asyncpg 2.0, aiosqlite 4.8 and aiomysql 25.7 ms per 1000-row batch.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _common import Ticker, count_rows, metadata_store, result, server_answers, skipped

from majordomo_log.record.ids import uuid7
from majordomo_log.schema import Row

SCENARIO = "stall"
BATCH = 1000
BATCHES = 5
LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mysql": "MariaDB"}


def sample_rows(n: int) -> list[Row]:
    """Rows as a plain, priced, non-streamed call makes them (NULL where such a row is)."""
    start = dt.datetime.now(dt.timezone.utc)
    rows = []
    for i in range(n):
        began = start + dt.timedelta(milliseconds=i)
        rows.append(
            Row(
                request_id=uuid7(),
                started_at=began,
                ended_at=began + dt.timedelta(milliseconds=812.25),
                latency_ms=812.25 + i / 7,
                time_to_first_token_ms=None,
                provider="openai",
                model="gpt-4o",
                served_model="gpt-4o-2024-08-06",
                operation="chat.completions",
                stream=False,
                status="ok",
                error_type=None,
                error_message=None,
                provider_request_id=f"req_{i:024x}",
                input_tokens=176 + i,
                cache_read_tokens=1024,
                cache_write_5m_tokens=0,
                cache_write_1h_tokens=0,
                output_tokens=80,
                reasoning_tokens=0,
                total_tokens=1280 + i,
                input_cost=Decimal("0.00044") + Decimal(i) / 10**8,
                cache_read_cost=Decimal("0.00128"),
                cache_write_cost=Decimal("0"),
                output_cost=Decimal("0.0008"),
                reasoning_cost=Decimal("0"),
                total_cost=Decimal("0.00252") + Decimal(i) / 10**8,
                currency="USD",
                cost_status="computed",
                price_version="gpt-4o@2024-08-06",
                usage_flags=None,
                api_key_hash="ab" * 32,
                api_key_alias="prod-key-1",
                feature="chat",
                workflow=None,
                user_id=f"u-{i % 97}",
                session_id=None,
                trace_id=None,
                environment=None,
                prompt_version=None,
                tags=f'{{"feature":"chat","user_id":"u-{i % 97}"}}',
                outcome=None,
                outcome_at=None,
                body_ref=None,
                cache_savings=Decimal("0.00192"),
            )
        )
    return rows


class _CountingTicker(Ticker):
    """The 1 ms ticker, counting its turns (to take their CPU time out)."""

    turns = 0

    async def _run(self) -> None:
        clock = time.perf_counter
        while True:
            t0 = clock()
            await asyncio.sleep(0.001)
            self.turns += 1
            self.worst = max(self.worst, clock() - t0 - 0.001)


async def _ticked(work: Any) -> tuple[float, float, int]:
    """(the ticker's worst lateness in ms, the event-loop thread's CPU time in ms, the
    ticker's turns) while ``work`` is awaited. The CPU time does not grow, as the
    lateness does, when other processes keep the machine busy."""
    with _CountingTicker() as ticker:
        await asyncio.sleep(0.005)  # the ticker is sleeping when the work starts
        cpu, turns = time.thread_time(), ticker.turns
        await work
        cpu, turns = time.thread_time() - cpu, ticker.turns - turns
        await asyncio.sleep(0.003)  # and sees the loop after it
    return ticker.worst * 1000, cpu * 1000, turns


async def one_round(dialect: str, tmp: Path) -> tuple[float, float, float, float]:
    """(worst stall of any batch in ms, rows/s, worst stall of the idle loop in ms,
    median event-loop CPU ms per batch) for one fresh store. The idle figure is the
    ticker alone for as long as each batch took, interleaved: what this machine's
    scheduling costs with nothing of ours on the loop (on a busy 2-CPU VM, not zero)."""
    async with metadata_store(dialect, tmp) as db:
        await db.write_batch(sample_rows(BATCH), [])  # warm: connections, caches
        batches = [sample_rows(BATCH) for _ in range(BATCHES)]
        await asyncio.sleep(0.05)
        worst, idle, busy, cpus = 0.0, 0.0, 0.0, []
        for rows in batches:
            t0 = time.perf_counter()
            stall, cpu, turns = await _ticked(db.write_batch(rows, []))
            worst, took = max(worst, stall), time.perf_counter() - t0 - 0.008
            busy += took
            idle_stall, idle_cpu, idle_turns = await _ticked(asyncio.sleep(took))
            idle = max(idle, idle_stall)
            cpus.append(cpu - turns * idle_cpu / max(idle_turns, 1))  # less the ticker's
        assert (await count_rows(db))[0] == BATCH * (BATCHES + 1)
    return worst, BATCH * BATCHES / busy, idle, statistics.median(cpus)


async def run(rounds: int = 5, quick: bool = False) -> list[dict[str, Any]]:
    rounds = 1 if quick else rounds
    tmp = Path(tempfile.mkdtemp(prefix="bench-stall-"))
    out: list[dict[str, Any]] = []
    for dialect, label in LABELS.items():
        if not server_answers(dialect):
            out.append(skipped(SCENARIO, label, "server does not answer"))
            continue
        runs = [await one_round(dialect, tmp) for _ in range(rounds)]
        out.append(
            result(
                SCENARIO,
                f"{label}, longest stall per {BATCH}-row write_batch",
                [r[0] for r in runs],
                "ms",
                at_most=2,
            )
        )
        out.append(
            result(
                SCENARIO,
                f"{label}, longest stall of the idle loop, same durations",
                [r[2] for r in runs],
                "ms",
            )
        )
        out.append(
            result(
                SCENARIO,
                f"{label}, event-loop CPU per {BATCH}-row write_batch",
                [r[3] for r in runs],
                "ms",
            )
        )
        out.append(result(SCENARIO, f"{label}, write_batch", [r[1] for r in runs], "rows/s"))
        out.append(
            result(SCENARIO, f"{label}, write_batch per row", [1e6 / r[1] for r in runs], "µs")
        )
    return out


if __name__ == "__main__":
    from run import table

    print(table(asyncio.run(run(int(sys.argv[1]) if len(sys.argv) > 1 else 5))))
