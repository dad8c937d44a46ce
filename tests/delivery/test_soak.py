"""Soak: 1,000 concurrent callers through repeated database outages, with small memory
budgets. The writer's queue must stay within its budgets at every sample, traced memory
under a stated bound, and at the end the database must hold exactly the calls made.

``MAJORDOMO_SOAK_SECONDS`` sets how long the callers run (default 15 s, for CI); the
figures go to ``soak.json`` under the test's tmp_path and to stdout.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import resource
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from faultlib import assert_exactly_logged, fast_backoff, proxied_store, spooled_ids, target_of
from faultproxy import FaultProxy
from servers import isolated_db, require

import majordomo_log as ml
from majordomo_log.testing import FakeProvider, fake_openai_client

SECONDS = float(os.environ.get("MAJORDOMO_SOAK_SECONDS", "15"))
CALLERS = 1000
MAX_QUEUE_RECORDS = 200
MAX_QUEUE_BYTES = 2 * 2**20  # about 200 records: each counts 8 KB for its response object
OUTAGE_DOWN, OUTAGE_UP = 1.5, 1.0
# Traced Python memory above the start of the soak, at its peak: hundreds of requests in
# flight through the OpenAI SDK and httpx, the writer's queue, a batch being written.
# Measured here at about 30 MiB; the bound leaves room for other machines, and a queue
# that grew without limit (several KB per record with its SDK response) would cross it.
TRACED_PEAK_BOUND = 96 * 2**20


def _rss() -> int:
    """Resident set size of this process now, in bytes (Linux), else 0."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    fast_backoff(monkeypatch)


@pytest.mark.servers
async def test_soak_1000_callers_through_repeated_outages(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    async with isolated_db("postgresql", tmp_path) as direct:
        with FaultProxy(*target_of(require("postgresql"), 5432)) as proxy:
            db = await proxied_store(direct, proxy.port)
            storage = await ml.FileStorageAdapter.create(tmp_path / "bodies")
            # Every call is in flight for two seconds (the provider "thinks"), so hundreds
            # of the 1,000 callers are mid-call at any moment; each then pauses 0-10 s.
            provider = FakeProvider(first_chunk_delay=2.0, reply_text="ok", stream_chunks=1)
            llm = ml.LoggingLLM(
                fake_openai_client(provider),
                db,
                storage,
                spool=spool,
                max_queue_records=MAX_QUEUE_RECORDS,
                max_queue_bytes=MAX_QUEUE_BYTES,
                flush_interval=0.5,
                close_stores=False,
            )
            figures = await _soak(llm, proxy)
            proxy.restore()
            await llm.flush()
            await llm.replay_spool()
            stats = await llm.close()
            await db.close()
            figures.update(
                written=stats.written,
                spilled=stats.spilled,
                replayed=stats.replayed,
                dropped=stats.dropped,
                failed=stats.failed,
            )
        ids = figures.pop("_ids")
        (tmp_path / "soak.json").write_text(json.dumps(figures, indent=2))
        print("soak figures:", json.dumps(figures))

        assert figures["caller_errors"] == 0, figures
        assert figures["peak_queue_records"] <= MAX_QUEUE_RECORDS, figures
        assert figures["peak_queue_bytes"] <= MAX_QUEUE_BYTES, figures
        assert figures["traced_peak_bytes"] < TRACED_PEAK_BOUND, figures
        assert figures["outages"] >= 2 and stats.spilled > 0, figures
        assert stats.dropped == 0 and stats.failed == 0 and stats.pending == 0, stats
        assert stats.replayed == stats.spilled, stats
        assert spooled_ids(spool) == []
        await assert_exactly_logged(direct, storage, ids)
        await storage.close()


async def _soak(llm: Any, proxy: FaultProxy) -> dict[str, Any]:
    ids: list[str] = []
    errors: list[BaseException] = []
    stop = asyncio.Event()

    async def caller(k: int) -> None:
        await asyncio.sleep(random.uniform(0, 3))  # do not all start at once
        n = 0
        while not stop.is_set():
            try:
                resp = await llm.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": f"{k}/{n}"}]
                )
            except Exception as exc:
                errors.append(exc)
                return
            ids.append(ml.call_info(resp).request_id)
            n += 1
            try:
                await asyncio.wait_for(stop.wait(), random.uniform(0, 10))
            except asyncio.TimeoutError:
                pass

    outages = 0

    async def outages_loop() -> None:
        nonlocal outages
        while not stop.is_set():
            await asyncio.sleep(OUTAGE_UP)
            if stop.is_set():
                return
            proxy.down()
            outages += 1
            await asyncio.sleep(OUTAGE_DOWN)
            proxy.restore()

    peak_records = peak_bytes = 0
    rss_start = _rss()
    peak_rss = rss_start
    tracemalloc.start()
    traced_start = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    started = time.monotonic()
    tasks = [asyncio.create_task(caller(k)) for k in range(CALLERS)]
    chaos = asyncio.create_task(outages_loop())
    try:
        # At least two outages however slow the loop is (it runs 1,000 callers here).
        while time.monotonic() - started < SECONDS or (
            outages < 2 and time.monotonic() - started < 4 * SECONDS
        ):
            await asyncio.sleep(0.1)
            stats = llm.stats()
            peak_records = max(peak_records, stats.queue_records)
            peak_bytes = max(peak_bytes, stats.queue_bytes)
            peak_rss = max(peak_rss, _rss())
        stop.set()
        await asyncio.gather(*tasks, chaos)
        traced_peak = tracemalloc.get_traced_memory()[1] - traced_start
    finally:
        tracemalloc.stop()
    return {
        "seconds": SECONDS,
        "callers": CALLERS,
        "calls": len(ids),
        "caller_errors": len(errors),
        "outages": outages,
        "outage_seconds": OUTAGE_DOWN,
        "max_queue_records": MAX_QUEUE_RECORDS,
        "max_queue_bytes": MAX_QUEUE_BYTES,
        "peak_queue_records": peak_records,
        "peak_queue_bytes": peak_bytes,
        "traced_peak_bytes": traced_peak,
        "traced_peak_bound": TRACED_PEAK_BOUND,
        "rss_start_bytes": rss_start,
        "rss_peak_bytes": peak_rss,
        "max_rss_bytes_process": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "_ids": ids,
    }
