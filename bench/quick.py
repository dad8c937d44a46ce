"""Quick figures for the core: added µs per wrapped call, and rows/s into SQLite (+ files).

    .venv/bin/python bench/quick.py

Every comparison is measured in the same run; figures are medians of several rounds.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from openai.types.chat import ChatCompletion

import majordomo_log as ml

REPLY = ChatCompletion.model_validate(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}
        ],
        "usage": {
            "prompt_tokens": 1200,
            "completion_tokens": 80,
            "total_tokens": 1280,
            "prompt_tokens_details": {"cached_tokens": 1024},
        },
    }
)
MESSAGES = [{"role": "user", "content": "x" * 4000}]  # a 4 KB request


class _Completions:
    async def create(self, **kwargs: Any) -> ChatCompletion:
        return REPLY


class _Chat:
    completions = _Completions()


class FakeOpenAI:
    """Shaped like openai.AsyncOpenAI; answers instantly so only the wrapper is timed."""

    api_key = "sk-bench-key"
    chat = _Chat()


async def per_call_ns(create: Any, n: int) -> list[int]:
    out = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        await create(model="gpt-4o", messages=MESSAGES)
        out.append(clock() - t0)
    return out


async def overhead(rounds: int = 7, n: int = 5000) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp())
    db = await ml.SqliteAdapter.create(tmp / "o.db")
    storage = await ml.FileStorageAdapter.create(tmp / "bodies")
    client = FakeOpenAI()
    llm = ml.LoggingLLM(client, db, storage)
    medians, p99s = [], []
    for _ in range(rounds):
        plain = await per_call_ns(client.chat.completions.create, n)
        wrapped = await per_call_ns(llm.chat.completions.create, n)
        base = statistics.median(plain)
        medians.append((statistics.median(wrapped) - base) / 1000)
        p99s.append((sorted(wrapped)[int(n * 0.99)] - sorted(plain)[int(n * 0.99)]) / 1000)
    await llm.close()
    return {"added_us_median": statistics.median(medians), "added_us_p99": statistics.median(p99s)}


async def throughput(with_bodies: bool, rounds: int = 5, n: int = 20_000) -> float:
    rates = []
    for _ in range(rounds):
        tmp = Path(tempfile.mkdtemp())
        db = await ml.SqliteAdapter.create(tmp / "t.db")
        storage = await ml.FileStorageAdapter.create(tmp / "bodies") if with_bodies else None
        llm = ml.LoggingLLM(FakeOpenAI(), db, storage)
        t0 = time.perf_counter()
        for _ in range(n):
            await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        stats = await llm.flush()
        rates.append(stats.written / (time.perf_counter() - t0))
        await llm.close()
    return statistics.median(rates)


async def main() -> None:
    o = await overhead()
    print(
        f"added latency per wrapped call: median {o['added_us_median']:.2f} µs, "
        f"p99 {o['added_us_p99']:.2f} µs"
    )
    print(f"rows/s into SQLite, no bodies:        {await throughput(False):,.0f}")
    print(f"rows/s into SQLite + 4 KB body files: {await throughput(True):,.0f}")


if __name__ == "__main__":
    asyncio.run(main())
