"""Where a record's CPU time goes: microseconds per record in each stage of the pipeline.

    .venv-bench/bin/python bench/stages.py [rounds]

Each stage runs on its own, in this thread, over the same N records made by a real
``LoggingLLM`` around the instant fake client (4 KB request, SDK response object):

1. hot path: a wrapped call minus a bare call (records kept, as the queue keeps them);
2. pricing: usage normalized and priced (``CallRecord.priced``);
3. envelope: the body built (request, response serialized, redaction);
4. segment: the envelopes gzipped into 1000-body segments (``build_segment``);
5. row: the ``llm_requests`` row built (``build_row``);
6. SQLite write: ``SqliteAdapter.write_batch`` of those rows, 1000 per transaction.

The worker threads' turns for the event loop (``majordomo_log._loop_turns``: a 100 µs sleep
after each millisecond of work) are switched off here, so each figure is CPU time, not
sleep. The sum is the CPU one record costs from call to commit on one core. On CPython one
core is all the Python parts get (the GIL): zlib and SQLite's own work release it, the
rest does not. So ``1e6 / sum`` is the ceiling of records/s for SQLite + files in
segment mode, whatever the scheduling; the throughput scenario shows how close the
real pipeline comes to it.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import MESSAGES, FakeOpenAI, median, result

import majordomo_log as ml
from majordomo_log import _loop_turns as _gil
from majordomo_log.delivery.prepare import prepare
from majordomo_log.record.call import CallRecord
from majordomo_log.record.rows import build_row
from majordomo_log.stores.bodies.layout import build_segment

SCENARIO = "stages"
N = 5000
BATCH = 1000


def _per_record_us(run: Callable[[], Any], n: int) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = run()
    return (time.perf_counter() - t0) / n * 1e6, out


async def _one_round(tmp: Path) -> dict[str, float]:
    db = await ml.SqliteAdapter.create(tmp / "stages.db")
    llm = ml.LoggingLLM(FakeOpenAI(), db, None, max_queue_records=10 * N, spool=False)
    records: list[CallRecord] = []
    llm._writer.submit = records.append  # type: ignore[method-assign]  # keep, don't queue
    bare, wrapped = FakeOpenAI().chat.completions.create, llm.chat.completions.create
    for _ in range(200):  # warm up both paths (price table, SDK models)
        await wrapped(model="gpt-4o", messages=MESSAGES)
    records.clear()
    clock = time.perf_counter
    t0 = clock()
    for _ in range(N):
        await bare(model="gpt-4o", messages=MESSAGES)
    t1 = clock()
    for _ in range(N):
        await wrapped(model="gpt-4o", messages=MESSAGES)
    t2 = clock()
    us: dict[str, float] = {"hot path": ((t2 - t1) - (t1 - t0)) / N * 1e6}
    us["pricing"], _ = _per_record_us(lambda: [r.priced() for r in records], N)
    us["envelope"], bodies = _per_record_us(lambda: prepare(records, True), N)
    us["segment (gzip)"], _ = _per_record_us(
        lambda: [build_segment(bodies[i : i + BATCH], 1) for i in range(0, N, BATCH)], N
    )
    us["row"], rows = _per_record_us(lambda: [build_row(r, "ref") for r in records], N)
    t0 = clock()
    for start in range(0, N, BATCH):
        await db.write_batch(rows[start : start + BATCH], [])
    us["SQLite write"] = (clock() - t0) / N * 1e6
    await llm.close()
    return us


async def run(rounds: int = 5) -> list[dict[str, Any]]:
    per_round: list[dict[str, float]] = []
    work_seconds = _gil._WORK_SECONDS
    _gil._WORK_SECONDS = float("inf")  # no turns: CPU time only (see the docstring)
    try:
        for _ in range(rounds):
            with tempfile.TemporaryDirectory() as tmp:
                per_round.append(await _one_round(Path(tmp)))
    finally:
        _gil._WORK_SECONDS = work_seconds
    out = [
        result(SCENARIO, f"{stage}, µs per record", [r[stage] for r in per_round], "µs")
        for stage in per_round[0]
    ]
    totals = [sum(r.values()) for r in per_round]
    out.append(result(SCENARIO, "all stages, µs per record", totals, "µs"))
    out.append(
        result(
            SCENARIO,
            "ceiling on one core, SQLite + files (segment), records/s",
            [1e6 / t for t in totals],
            "records/s",
            note="1e6 / the sum of the stages",
        )
    )
    return out


if __name__ == "__main__":
    rows = asyncio.run(run(int(sys.argv[1]) if len(sys.argv) > 1 else 5))
    for row in rows:
        print(f"{row['metric']:<60} {median(row['runs']):>10,.1f} {row['unit']}")
