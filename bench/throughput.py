"""Scenarios 2 and 3: records/s committed end to end, and the event-loop stall, per backend.

    .venv-bench/bin/python bench/throughput.py [rounds]

End to end, per backend (SQLite, PostgreSQL, MariaDB with files; PostgreSQL with S3 on a
SeaweedFS started here) and body mode (segment, object): ``CALLERS`` tasks call a
LoggingLLM-wrapped fake in a loop (the fake yields once per call, like a network call;
4 KB request bodies) until N calls are made, then ``flush()``. records/s = rows counted
in the database afterwards (``COUNT(*)``, which must equal N) / time from the first call
until the flush returned. The queue budgets are large enough that nothing spills; a
spilled record would not be counted. A 1 ms ticker runs throughout: "stall under load"
is its worst lateness, which includes waiting for the 64 callers' turns.

"stall per batch" (scenario 3) isolates the writer: ``QUIET_BATCHES`` batches are queued by
calls that never yield, then the ticker alone runs while ``flush()`` writes them. That
is the longest the writer keeps the loop from other tasks.

The ceilings of each stage, measured alone in the same run: "store alone" is
``write_batch()`` of pre-built rows in 1000-row batches (with its own ticker), "bodies
alone" is ``put_many()`` of 4 KB envelopes in 1000-body batches, per body store and mode.
Figures are medians over rounds (at most 3); each round has a fresh database and body
folder/bucket.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _common import (
    MESSAGES,
    FakeOpenAI,
    Ticker,
    count_rows,
    metadata_store,
    result,
    s3_bucket,
    seaweedfs,
    server_answers,
    skipped,
)

import majordomo_log as ml
from majordomo_log.record.ids import uuid7
from majordomo_log.record.rows import build_row

SCENARIO = "throughput"
CALLERS = 64
BATCH = 1000  # the writer's default batch size, and the stage-alone batch size
QUIET_BATCHES = 3
# calls per end-to-end run (and bodies per body-store run), by (body store, mode)
SIZES = {"segment": 10_000, "object": 2_000, "s3 object": 500}
SIZES_QUICK = {"segment": 4_000, "object": 1_000, "s3 object": 200}
BACKENDS = (  # label, dialect, body store
    ("SQLite + files", "sqlite", "files"),
    ("PostgreSQL + files", "postgresql", "files"),
    ("MariaDB + files", "mysql", "files"),
    ("PostgreSQL + S3", "postgresql", "s3"),
)
MODES = ("segment", "object")
# records/s targets of the issue, by (dialect, body store, mode)
TARGETS = {
    ("sqlite", "files", "segment"): 60_000,
    ("postgresql", "files", "segment"): 80_000,
    ("mysql", "files", "segment"): 20_000,
}
DB_LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mysql": "MariaDB"}


def size(sizes: dict[str, int], kind: str, mode: str) -> int:
    """Calls per run: S3 in object mode (one PUT per body) is far slower than the rest."""
    return sizes["s3 object" if (kind, mode) == ("s3", "object") else mode]


@asynccontextmanager
async def body_store(
    kind: str, mode: str, tmp: Path, s3: Any
) -> AsyncIterator[ml.FileStorageAdapter | ml.S3Adapter]:
    store: ml.FileStorageAdapter | ml.S3Adapter
    if kind == "files":
        store = await ml.FileStorageAdapter.create(tmp / f"bodies-{time.monotonic_ns()}", mode=mode)
    else:
        store = await s3_bucket(s3, mode)
    try:
        yield store
    finally:
        await store.close()


async def caller(llm: ml.LoggingLLM[FakeOpenAI], calls: int) -> None:
    create = llm.chat.completions.create
    for _ in range(calls):
        await create(model="gpt-4o", messages=MESSAGES)


async def end_to_end(
    dialect: str, kind: str, mode: str, n: int, tmp: Path, s3: Any
) -> dict[str, float]:
    """One run: records/s committed, stall under load, stall per batch (ms), spilled."""
    async with metadata_store(dialect, tmp) as db, body_store(kind, mode, tmp, s3) as storage:
        options: dict[str, Any] = {
            "close_stores": False,
            "spool": tmp / f"spool-{time.monotonic_ns()}",
            "max_queue_records": n + BATCH * QUIET_BATCHES,
            "max_queue_bytes": 1 << 31,
        }
        llm = ml.LoggingLLM(FakeOpenAI(yields=True), db, storage, **options)
        instant = ml.LoggingLLM(FakeOpenAI(yields=False), db, storage, **options)
        try:
            await asyncio.sleep(0.05)  # let connection set-up settle
            with Ticker() as busy:
                t0 = time.perf_counter()
                await asyncio.gather(*(caller(llm, n // CALLERS) for _ in range(CALLERS)))
                stats = await llm.flush()
                elapsed = time.perf_counter() - t0
            made = n // CALLERS * CALLERS
            rows, with_body = await count_rows(db)
            # scenario 3: queue batches without yielding, then only the writer and the ticker run
            await caller(instant, BATCH * QUIET_BATCHES)
            with Ticker() as quiet:
                await instant.flush()
        finally:
            await instant.close()
            final = await llm.close()
    if rows != made or with_body != made:
        print(f"  ! {dialect}+{kind} {mode}: {made} calls, {rows} rows, {with_body} with a body")
    return {
        "rate": min(rows, with_body) / elapsed,
        "busy_stall": busy.worst * 1000,
        "quiet_stall": quiet.worst * 1000,
        "spilled": float(stats.spilled + final.spilled),
        "missing": float(made - min(rows, with_body)),
    }


def sample_rows(n: int) -> list[tuple[Any, ...]]:
    """n rows as the writer would build them (tests/stores/test_contract_metadata's record())."""
    stores_tests = str(Path(__file__).resolve().parents[1] / "tests" / "stores")
    if stores_tests not in sys.path:  # the store tests moved there with issue 13's layout
        sys.path.insert(0, stores_tests)
    from test_contract_metadata import record

    return [build_row(record(i), None) for i in range(n)]


async def store_alone(dialect: str, rows: list[tuple[Any, ...]], tmp: Path) -> tuple[float, float]:
    """(rows/s of write_batch alone, worst stall ms)."""
    async with metadata_store(dialect, tmp) as db:
        await asyncio.sleep(0.05)
        with Ticker() as ticker:
            t0 = time.perf_counter()
            for start in range(0, len(rows), BATCH):
                await db.write_batch(rows[start : start + BATCH], [])
            elapsed = time.perf_counter() - t0
        assert (await count_rows(db))[0] == len(rows)
    return len(rows) / elapsed, ticker.worst * 1000


def sample_bodies(n: int) -> list[tuple[str, dt.datetime, bytes]]:
    when = dt.datetime.now(dt.timezone.utc)
    out = []
    for _ in range(n):
        rid = uuid7()
        text = (f"{rid} " + "lorem ipsum dolor sit amet " * 150)[:4000]
        out.append((rid, when, json.dumps({"request_id": rid, "text": text}).encode()))
    return out


async def bodies_alone(store: ml.FileStorageAdapter | ml.S3Adapter, n: int) -> float:
    batch = sample_bodies(n)
    t0 = time.perf_counter()
    for start in range(0, n, BATCH):
        refs = await store.put_many(batch[start : start + BATCH])
        assert all(refs)
    return n / (time.perf_counter() - t0)


async def stages_alone(
    rounds: int, sizes: dict[str, int], tmp: Path, s3: Any, dialects: list[str]
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    rows = sample_rows(sizes["segment"])
    for dialect in dialects:
        runs = [await store_alone(dialect, rows, tmp) for _ in range(rounds)]
        label = DB_LABELS[dialect]
        out.append(
            result(SCENARIO, f"store alone, {label}, write_batch", [r for r, _ in runs], "rows/s")
        )
        out.append(
            result(SCENARIO, f"store alone, {label}, stall", [s for _, s in runs], "ms", at_most=2)
        )
    for kind in ("files", "s3"):
        if kind == "s3" and s3 is None:
            continue
        for mode in MODES:
            rates = []
            for _ in range(rounds):
                async with body_store(kind, mode, tmp, s3) as store:
                    rates.append(await bodies_alone(store, size(sizes, kind, mode)))
            target = 20_000 if (kind, mode) == ("s3", "segment") else None
            label = "S3" if kind == "s3" else "files"
            out.append(
                result(
                    SCENARIO, f"bodies alone, {label}, {mode}", rates, "bodies/s", at_least=target
                )
            )
    return out


async def run(rounds: int = 3, quick: bool = False) -> list[dict[str, Any]]:
    sizes = SIZES_QUICK if quick else SIZES
    rounds = min(rounds, 3)
    tmp = Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    out: list[dict[str, Any]] = []
    dialects = [d for d in DB_LABELS if server_answers(d)]
    for dialect in DB_LABELS.keys() - set(dialects):
        out.append(skipped(SCENARIO, f"{DB_LABELS[dialect]} backends", "server does not answer"))
    async with AsyncExitStack() as stack:
        try:
            s3 = await stack.enter_async_context(seaweedfs(tmp))
        except (OSError, RuntimeError) as exc:
            s3 = None
            out.append(skipped(SCENARIO, "S3 backends", f"SeaweedFS did not start: {exc}"))
        out += await stages_alone(rounds, sizes, tmp, s3, dialects)
        for label, dialect, kind in BACKENDS:
            if dialect not in dialects or (kind == "s3" and s3 is None):
                continue
            for mode in MODES:
                runs = [
                    await end_to_end(dialect, kind, mode, size(sizes, kind, mode), tmp, s3)
                    for _ in range(rounds)
                ]
                out += report(label, TARGETS.get((dialect, kind, mode)), mode, runs)
    return out


def report(
    label: str, target: int | None, mode: str, runs: list[dict[str, float]]
) -> list[dict[str, Any]]:
    spilled = sum(r["spilled"] for r in runs)
    missing = sum(r["missing"] for r in runs)
    note = f"rows counted in the database; {spilled:.0f} spilled, {missing:.0f} missing"
    name = f"{label}, {mode}"
    return [
        result(
            SCENARIO,
            f"records/s, {name}",
            [r["rate"] for r in runs],
            "records/s",
            at_least=target,
            note=note,
        ),
        result(
            SCENARIO,
            f"stall under load, {name}",
            [r["busy_stall"] for r in runs],
            "ms",
            note=f"{CALLERS} callers share the loop with the ticker",
        ),
        result(
            SCENARIO,
            f"stall per batch, {name}",
            [r["quiet_stall"] for r in runs],
            "ms",
            at_most=2,
            note="writer and ticker alone on the loop",
        ),
    ]


if __name__ == "__main__":
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    for row in asyncio.run(run(rounds, quick=True)):
        value = "skipped" if row["value"] is None else f"{row['value']:>12,.1f}"
        print(f"{row['metric']:<48} {value} {row['unit']}  {row.get('note', '')}")
