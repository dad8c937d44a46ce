"""Side by side with majordomo-llm 0.24.0 (PyPI): records/s committed and µs added per call.

    .venv-bench/bin/python bench/vs_majordomo_llm.py [rounds]

Theirs: majordomo_llm.logging.LoggingLLM around an `LLM` subclass that answers at once
(content "hi", usage 1200 in / 1024 cached / 80 out), with their SqliteAdapter or
PostgresAdapter and their FileStorageAdapter (two JSON files per call). Ours: LoggingLLM
around the instant FakeOpenAI with our SqliteAdapter or PostgresAdapter and our
FileStorageAdapter in segment mode and in object mode (one file per call, like theirs).
Both sides send the same 4 KB request (their user_prompt = our message content).

records/s: N calls awaited one after another from one task (an `await asyncio.sleep(0)`
every 200 calls, as a service yields between requests), then their flush() (pending
tasks) / our flush(); N / time from the first call until the flush returns. After each
run the rows with a body reference are counted in the database and must equal N, so
only committed records count. "64 tasks": the same N calls spread over 64 tasks with a
fake that yields once per call, like a network call would.
Overhead, SQLite + files (ours in object mode), N calls in the same loop as above: µs of
the wrapped call minus the bare fake, median and p99 (p99 of wrapped minus p99 of bare),
as the caller sees it; and CPU µs per call (process time, all threads, from the first
call until flush() returns, minus the bare loop's), since theirs does its logging in
tasks on the caller's loop after the call returns and ours mostly in a writer thread.
Every figure is the median over rounds; ratios (ours/theirs) are taken per round.
SQLite: both name their table llm_requests, so each side has its own file in the same
temporary folder. PostgreSQL (MAJORDOMO_TEST_POSTGRES_URL, default local `test`
database): each side in a schema of its own, dropped afterwards; their table is created
here from their schema.sql with the columns their adapter inserts (uuid, timestamptz).
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg

import majordomo_log as ml

sys.path.insert(0, str(Path(__file__).parent))
from _common import MESSAGES, POSTGRES_URL, FakeOpenAI, result, server_answers, skipped

try:
    from majordomo_llm.base import LLM, LLMResponse
    from majordomo_llm.logging import FileStorageAdapter as TheirFiles
    from majordomo_llm.logging import LoggingLLM as TheirLoggingLLM
    from majordomo_llm.logging import PostgresAdapter as TheirPostgres
    from majordomo_llm.logging import SqliteAdapter as TheirSqlite
except ImportError as exc:  # not installed, or Python < 3.12: run() reports a skip
    MISSING: str | None = f"majordomo-llm 0.24.0 is not importable: {exc}"
    LLM = object  # type: ignore[assignment,misc]
else:
    MISSING = None

SCENARIO = "vs_majordomo_llm"
PROMPT: str = MESSAGES[0]["content"]  # the same 4 KB request on both sides
N_CALLS, N_OVERHEAD = 3000, 5000  # per run; theirs takes a few seconds for 3000 records
QUICK_N_CALLS, QUICK_N_OVERHEAD = 1000, 2000
TASKS = 64

THEIR_PG_TABLE = """
CREATE TABLE llm_requests (
    request_id uuid PRIMARY KEY, provider text NOT NULL, model text NOT NULL,
    timestamp timestamptz NOT NULL, response_time double precision,
    input_tokens integer, output_tokens integer, cached_tokens integer,
    cache_creation_tokens integer, input_cost numeric(10, 8), output_cost numeric(10, 8),
    total_cost numeric(10, 8), s3_request_key text, s3_response_key text,
    status text NOT NULL, error_message text, api_key_hash text, api_key_alias text);
CREATE INDEX ON llm_requests (timestamp);
CREATE INDEX ON llm_requests (provider);
CREATE INDEX ON llm_requests (model);
CREATE INDEX ON llm_requests (status);
"""


class FakeLLM(LLM):
    """Their provider interface, answering at once with usage (as FakeOpenAI does)."""

    def __init__(self, yields: bool = False) -> None:
        super().__init__("openai", "gpt-4o", 2.5, 10.0, api_key=FakeOpenAI().api_key)
        self.yields = yields

    async def _get_response_impl(self, user_prompt: str, *args: Any, **kw: Any) -> LLMResponse:
        if self.yields:
            await asyncio.sleep(0)
        cost_in, cost_out, total = self._calculate_costs(1200, 80, 1024)
        return LLMResponse(
            content="hi", input_tokens=1200, output_tokens=80, cached_tokens=1024,
            input_cost=cost_in, output_cost=cost_out, total_cost=total, response_time=0.0,
        )  # fmt: skip

    async def _get_response_stream_impl(self, *args: Any, **kw: Any) -> Any:
        raise NotImplementedError


async def pg(sql: str) -> Any:
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        return await (conn.fetchval if sql.startswith("SELECT") else conn.execute)(sql)
    finally:
        await conn.close()


@dataclass
class Side:
    call: Callable[[], Awaitable[object]]
    llm: Any  # either LoggingLLM: flush() waits until every record is written, close()
    body_column: str
    sqlite_path: Path | None = None
    schema: str | None = None

    async def count(self) -> int:
        """Committed rows that reference a body."""
        where = f"WHERE {self.body_column} IS NOT NULL"
        if self.sqlite_path is not None:
            with sqlite3.connect(self.sqlite_path) as conn:
                return int(conn.execute(f"SELECT count(*) FROM llm_requests {where}").fetchone()[0])
        return int(await pg(f'SELECT count(*) FROM "{self.schema}".llm_requests {where}'))

    async def close(self) -> None:
        await self.llm.close()
        if self.schema is not None:
            await pg(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')


def _schema(side: str) -> str:
    return f"mllm_bench_{side}_{uuid.uuid4().hex[:10]}"


async def theirs(dialect: str, tmp: Path, yields: bool = False) -> Side:
    storage = await TheirFiles.create(tmp / "theirs_bodies")
    if dialect == "sqlite":
        db: Any = await TheirSqlite.create(str(tmp / "theirs.db"))
        path, schema = tmp / "theirs.db", None
    else:
        path, schema = None, _schema("theirs")
        await pg(f'CREATE SCHEMA "{schema}"; SET search_path = "{schema}"; {THEIR_PG_TABLE}')
        # what their PostgresAdapter.create() opens (pool 1..10), plus the search_path
        pool = await asyncpg.create_pool(
            POSTGRES_URL, min_size=1, max_size=10, server_settings={"search_path": f'"{schema}"'}
        )
        db = TheirPostgres(pool)
    llm = TheirLoggingLLM(FakeLLM(yields), db, storage)
    column = "storage_request_key" if path else "s3_request_key"
    return Side(lambda: llm.get_response(user_prompt=PROMPT), llm, column, path, schema)


async def ours(dialect: str, tmp: Path, mode: str, yields: bool = False) -> Side:
    storage = await ml.FileStorageAdapter.create(tmp / "ours_bodies", mode=mode)
    if dialect == "sqlite":
        db: ml.MetadataStore = await ml.SqliteAdapter.create(tmp / "ours.db")
        path, schema = tmp / "ours.db", None
    else:
        path, schema = None, _schema("ours")
        db = await ml.PostgresAdapter.create(POSTGRES_URL, schema=schema)
    llm = ml.LoggingLLM(FakeOpenAI(yields=yields), db, storage)
    call = partial(_our_call, llm)
    return Side(call, llm, "body_ref", path, schema)


def _our_call(llm: Any) -> Awaitable[object]:
    return llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[no-any-return]


async def _calls(call: Callable[[], Awaitable[object]], n: int) -> None:
    for i in range(n):
        await call()
        if i % 200 == 0:
            await asyncio.sleep(0)  # a service yields between requests


async def records_per_s(
    open_side: Callable[[Path], Awaitable[Side]], n: int, tasks: int = 1
) -> float:
    """N calls, then flush; N / elapsed, after checking N rows are committed."""
    tmp = Path(tempfile.mkdtemp(prefix="vs_mllm_"))
    side = await open_side(tmp)
    try:
        t0 = time.perf_counter()
        shares = [n // tasks + (i < n % tasks) for i in range(tasks)]
        await asyncio.gather(*(_calls(side.call, share) for share in shares))
        await side.llm.flush()
        elapsed = time.perf_counter() - t0
        committed = await side.count()
        assert committed == n, f"{committed} of {n} records committed"
        return n / elapsed
    finally:
        await side.close()
        shutil.rmtree(tmp, ignore_errors=True)


async def per_call_ns(call: Callable[[], Awaitable[object]], n: int) -> list[int]:
    out = []
    clock = time.perf_counter_ns
    for i in range(n):
        t0 = clock()
        await call()
        out.append(clock() - t0)
        if i % 200 == 0:
            await asyncio.sleep(0)
    return sorted(out)


async def overhead_of(
    open_side: Callable[[Path], Awaitable[Side]], bare: Callable[[], Awaitable[object]], n: int
) -> tuple[float, float, float]:
    """µs added per call by the wrapper against the bare fake: median, p99, and CPU
    (process time of all threads from the first call until flush() returns)."""
    tmp = Path(tempfile.mkdtemp(prefix="vs_mllm_"))
    side = await open_side(tmp)
    try:
        cpu0 = time.process_time()
        plain = await per_call_ns(bare, n)
        cpu1 = time.process_time()
        wrapped = await per_call_ns(side.call, n)
        await side.llm.flush()
        cpu2 = time.process_time()
        assert await side.count() == n
    finally:
        await side.close()
        shutil.rmtree(tmp, ignore_errors=True)
    p99 = int(n * 0.99)
    return (
        (statistics.median(wrapped) - statistics.median(plain)) / 1000,
        (wrapped[p99] - plain[p99]) / 1000,
        ((cpu2 - cpu1) - (cpu1 - cpu0)) / n * 1e6,
    )


async def overhead(n: int) -> dict[str, tuple[float, float, float]]:
    """SQLite + files, ours in object mode (one file per call, like theirs)."""
    their_bare, our_bare = FakeLLM().get_response, FakeOpenAI().chat.completions.create
    return {
        "theirs": await overhead_of(
            partial(theirs, "sqlite"), lambda: their_bare(user_prompt=PROMPT), n
        ),
        "ours": await overhead_of(
            partial(ours, "sqlite", mode="object"),
            lambda: our_bare(model="gpt-4o", messages=MESSAGES),
            n,
        ),
    }


async def run(rounds: int = 3, quick: bool = False) -> list[dict[str, Any]]:
    """Every figure the median of `rounds`; `quick`: smaller runs."""
    if MISSING:
        return [skipped(SCENARIO, "side by side with majordomo-llm", MISSING)]
    n, n_overhead = (QUICK_N_CALLS, QUICK_N_OVERHEAD) if quick else (N_CALLS, N_OVERHEAD)
    results: list[dict[str, Any]] = []
    for dialect in ("sqlite", "postgresql"):
        if not server_answers(dialect):
            results.append(skipped(SCENARIO, f"{dialect}+files", "no server answers"))
            continue
        for tasks in (1, TASKS):
            y = tasks > 1
            label = f"{dialect}+files" + (f", {tasks} tasks" if y else "")
            runs: dict[str, list[float]] = {"theirs": [], "segment": [], "object": []}
            for _ in range(rounds):
                runs["theirs"].append(
                    await records_per_s(partial(theirs, dialect, yields=y), n, tasks)
                )
                for mode in ("segment", "object"):
                    side = partial(ours, dialect, mode=mode, yields=y)
                    runs[mode].append(await records_per_s(side, n, tasks))
            results.append(
                result(SCENARIO, f"{label}: majordomo-llm records/s", runs["theirs"], "rec/s")
            )
            for mode in ("segment", "object"):
                results.append(
                    result(SCENARIO, f"{label}: ours ({mode}) records/s", runs[mode], "rec/s")
                )
                ratios = [o / t for o, t in zip(runs[mode], runs["theirs"], strict=True)]
                results.append(result(SCENARIO, f"{label}: ours ({mode}) / theirs", ratios, "x"))
    per_round = [await overhead(n_overhead) for _ in range(rounds)]
    for i, stat in enumerate(("median", "p99", "CPU")):
        for name, who in (("theirs", "majordomo-llm"), ("ours", "ours")):
            values = [r[name][i] for r in per_round]
            results.append(result(SCENARIO, f"added µs/call {stat}: {who}", values, "µs"))
        ratios = [r["ours"][i] / r["theirs"][i] for r in per_round]
        results.append(result(SCENARIO, f"added µs/call {stat}: ours / theirs", ratios, "x"))
    return results


if __name__ == "__main__":
    for r in asyncio.run(run(int(sys.argv[1]) if len(sys.argv) > 1 else 3)):
        runs = ", ".join(f"{v:,.2f}" for v in r["runs"])
        print(f"{r['metric']:<48} {r['value']:>12,.2f} {r['unit']:<6} [{runs}]")
