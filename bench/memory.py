"""Scenario 4: memory under an overload the store cannot keep up with.

    .venv-bench/bin/python bench/memory.py [rounds]

``CALLERS`` tasks call a LoggingLLM-wrapped fake (yielding once per call, 4 KB bodies) as
fast as the loop allows, into PostgreSQL + files in segment mode (SQLite + files if no
PostgreSQL answers): callers never wait for the writer, so the queue fills and the
``on_full="spill"`` policy (the default) moves the excess to the spool. Each setting runs
with the default budgets (``max_queue_records`` 10,000, ``max_queue_bytes`` 64 MB) and
with small ones.

Each run is a child process of its own, so the RSS figures start from a fresh heap
(in the parent, memory freed by earlier scenarios would be reused and hide growth).
A sampler on the loop reads VmRSS and the writer's ``stats()`` (queue_records,
queue_bytes) every ``INTERVAL`` s. Reported: peak RSS growth over the RSS before the
wrapper was created, peak queue depth in records and bytes (sampled, so a lower bound of
the true peak; the budgets are enforced on every submit), and spilled/dropped counts.
"Within budget" compares the sampled peaks to the configured budgets. At most 2 rounds.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _common import FakeOpenAI, RssSampler, metadata_store, result, server_answers
from throughput import CALLERS, caller

import majordomo_log as ml

SCENARIO = "memory"
MB = 1024 * 1024
INTERVAL = 0.01
CALLS = 30_000
CALLS_QUICK = 10_000
SETTINGS: dict[str, dict[str, int]] = {
    "default budgets": {"max_queue_records": 10_000, "max_queue_bytes": 64 * MB},
    "small budgets": {"max_queue_records": 1_000, "max_queue_bytes": 4 * MB},
}


async def child(setting: str, calls: int, dialect: str) -> dict[str, Any]:
    """One overload run in this process; the figures as a dict."""
    budgets = SETTINGS[setting]
    tmp = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    async with metadata_store(dialect, tmp) as db:
        storage = await ml.FileStorageAdapter.create(tmp / "bodies", mode="segment")
        gc.collect()
        llm = ml.LoggingLLM(
            FakeOpenAI(yields=True, fresh=True),  # a new response per call, as the SDK
            db,
            storage,
            close_stores=False,
            spool=tmp / "spool",
            **budgets,
        )

        def probe() -> tuple[int, int]:
            stats = llm.stats()
            return stats.queue_records, stats.queue_bytes

        try:
            async with RssSampler(INTERVAL, probe) as sampler:
                t0 = time.perf_counter()
                await asyncio.gather(*(caller(llm, calls // CALLERS) for _ in range(CALLERS)))
                stats = await llm.flush()
                elapsed = time.perf_counter() - t0
        finally:
            final = await llm.close()  # replays the spool into the store
            await storage.close()
    return {
        "rss_growth_mb": (sampler.peak - sampler.start) / MB,
        "rss_start_mb": sampler.start / MB,
        "peak_records": max(r for r, _ in sampler.samples),
        "peak_bytes_mb": max(b for _, b in sampler.samples) / MB,
        "spilled": stats.spilled,
        "dropped": stats.dropped,
        "written_before_close": stats.written,
        "written_after_close": final.written,
        "calls": calls // CALLERS * CALLERS,
        "seconds": elapsed,
    }


async def one_run(setting: str, calls: int, dialect: str) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--child",
        setting,
        str(calls),
        dialect,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"memory child ({setting}) exited with {proc.returncode}")
    figures: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return figures


async def run(rounds: int = 3, quick: bool = False) -> list[dict[str, Any]]:
    calls = CALLS_QUICK if quick else CALLS
    dialect = "postgresql" if server_answers("postgresql") else "sqlite"
    store = f"{'PostgreSQL' if dialect == 'postgresql' else 'SQLite'} + files (segment)"
    out: list[dict[str, Any]] = []
    for setting, budgets in SETTINGS.items():
        runs = [await one_run(setting, calls, dialect) for _ in range(min(rounds, 2))]
        records, mb = budgets["max_queue_records"], budgets["max_queue_bytes"] / MB
        lost = sum(r["calls"] - r["written_after_close"] for r in runs)
        note = (
            f"{store}, {calls:,} calls from {CALLERS} callers; "
            f"budgets {records:,} records / {mb:g} MB; {lost} not written after close()"
        )
        name = f"{setting}"
        out += [
            result(
                SCENARIO,
                f"peak RSS growth, {name}",
                [r["rss_growth_mb"] for r in runs],
                "MB",
                # the bound on the queue, applied to the whole process's growth
                at_most=64 if setting == "default budgets" else None,
                note=note,
            ),
            result(
                SCENARIO,
                f"peak queue records, {name}",
                [r["peak_records"] for r in runs],
                "records",
                at_most=records,
            ),
            result(
                SCENARIO,
                f"peak queue bytes, {name}",
                [r["peak_bytes_mb"] for r in runs],
                "MB",
                at_most=mb,
            ),
            result(SCENARIO, f"spilled, {name}", [r["spilled"] for r in runs], "records"),
            result(SCENARIO, f"dropped, {name}", [r["dropped"] for r in runs], "records"),
        ]
    return out


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        figures = asyncio.run(child(sys.argv[2], int(sys.argv[3]), sys.argv[4]))
        print(json.dumps(figures))
    else:
        rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 1
        for row in asyncio.run(run(rounds, quick=True)):
            print(f"{row['metric']:<36} {row['value']:>12,.1f} {row['unit']}  {row['runs']}")
