"""Shared pieces of the benchmark suite (see bench/run.py).

- ``FakeOpenAI``: shaped like ``openai.AsyncOpenAI``; ``chat.completions.create`` answers at
  once with a real ``ChatCompletion`` (usage included), or with ``stream=True`` an async
  iterator of real ``ChatCompletionChunk`` objects (plus a usage-only chunk when
  ``stream_options={"include_usage": True}``, as the API does). With ``yields=True`` each
  call yields to the event loop once, as a network call would, so other tasks (the writer)
  run between calls.
- ``Ticker``: a task that sleeps 1 ms in a loop; ``worst`` is the longest lateness it saw,
  i.e. the longest the event loop was kept from it (a stall).
- ``result()`` / ``skipped()``: the result dicts every scenario returns.
- ``rss_bytes()`` / ``RssSampler``: resident memory, sampled on the loop.
- ``machine()``: calibration and machine facts recorded with the results.
- ``metadata_store()`` / ``seaweedfs()``: an isolated database per run (SQLite file,
  PostgreSQL schema, MariaDB database, dropped afterwards) and a SeaweedFS S3 server
  started from tests/support/s3server.py and stopped again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import time
import timeit
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from openai.types.chat import ChatCompletion, ChatCompletionChunk

import majordomo_log as ml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))  # servers.py, s3server.py

from servers import MYSQL_URL, POSTGRES_URL, answers, isolated_db  # noqa: E402

USAGE = {
    "prompt_tokens": 1200,
    "completion_tokens": 80,
    "total_tokens": 1280,
    "prompt_tokens_details": {"cached_tokens": 1024},
}
REPLY_JSON: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}
    ],
    "usage": USAGE,
}
REPLY = ChatCompletion.model_validate(REPLY_JSON)
MESSAGES = [{"role": "user", "content": "x" * 4000}]  # a 4 KB request


def _chunk(delta: dict[str, Any], finish: str | None = None, usage: bool = False) -> Any:
    choices = [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return ChatCompletionChunk.model_validate(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-4o-2024-08-06",
            "choices": choices,
            "usage": USAGE if usage else None,
        }
    )


CHUNKS = [
    _chunk({"role": "assistant", "content": ""}),
    *(_chunk({"content": word}) for word in ("Hello", " there", ", how", " can I help?")),
    _chunk({}, finish="stop"),
]
USAGE_CHUNK = _chunk({}, usage=True)


class FakeStream:
    """Like the SDK's ``AsyncStream``: async iteration over the chunks, ``close()``."""

    def __init__(self, chunks: Sequence[Any]) -> None:
        self._chunks = iter(chunks)

    def __aiter__(self) -> FakeStream:
        return self

    async def __anext__(self) -> Any:
        try:
            return next(self._chunks)
        except StopIteration:
            raise StopAsyncIteration from None

    async def close(self) -> None:
        pass


class _Completions:
    def __init__(self, yields: bool, fresh: bool) -> None:
        self.yields = yields
        self.fresh = fresh

    async def create(self, **kwargs: Any) -> Any:
        if self.yields:
            await asyncio.sleep(0)  # a network call gives the loop to other tasks
        if kwargs.get("stream"):
            usage = (kwargs.get("stream_options") or {}).get("include_usage")
            return FakeStream([*CHUNKS, USAGE_CHUNK] if usage else CHUNKS)
        if self.fresh:  # a new response object per call, built as the SDK builds one
            return ChatCompletion.model_validate(REPLY_JSON)
        return REPLY


class _Chat:
    def __init__(self, yields: bool, fresh: bool) -> None:
        self.completions = _Completions(yields, fresh)


class FakeOpenAI:
    """Shaped like openai.AsyncOpenAI; answers instantly so only the wrapper is timed."""

    api_key = "sk-bench-key"

    def __init__(self, yields: bool = False, fresh: bool = False) -> None:
        self.chat = _Chat(yields, fresh)


class Ticker:
    """``with Ticker() as t:`` on a running loop; ``t.worst`` is the longest lateness (s)
    of a task sleeping 1 ms in a loop."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        clock = time.perf_counter
        while True:
            t0 = clock()
            await asyncio.sleep(0.001)
            self.worst = max(self.worst, clock() - t0 - 0.001)

    def __enter__(self) -> Ticker:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()


# -- statistics and results --------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def p99(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def result(
    scenario: str,
    metric: str,
    runs: Sequence[float],
    unit: str,
    *,
    at_most: float | None = None,
    at_least: float | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """A result row: value is the median of ``runs``; ``met`` compares it to the target."""
    value = median(runs)
    target, met = None, None
    if at_most is not None:
        target, met = f"<= {at_most:g}", value <= at_most
    elif at_least is not None:
        target, met = f">= {at_least:g}", value >= at_least
    row: dict[str, Any] = {
        "scenario": scenario,
        "metric": metric,
        "value": value,
        "unit": unit,
        "target": target,
        "met": met,
        "runs": [round(r, 3) for r in runs],
    }
    if note:
        row["note"] = note
    return row


def skipped(scenario: str, metric: str, note: str) -> dict[str, Any]:
    return {
        "scenario": scenario,
        "metric": metric,
        "value": None,
        "unit": "",
        "target": None,
        "met": None,
        "runs": [],
        "note": note,
    }


# -- memory ---------------------------------------------------------------------------


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def rss_bytes() -> int:
    """Current resident set size (VmRSS)."""
    return _status_kb("VmRSS") * 1024


class RssSampler:
    """``async with RssSampler() as s:`` samples VmRSS every ``interval`` s on the loop
    and ``probe()`` (e.g. the writer's queue depth) alongside; ``peak`` is the highest RSS."""

    def __init__(self, interval: float = 0.005, probe: Any = None) -> None:
        self.interval = interval
        self.probe = probe
        self.start = self.peak = 0
        self.samples: list[Any] = []
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        self.peak = max(self.peak, rss_bytes())
        if self.probe is not None:
            self.samples.append(self.probe())

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval)

    async def __aenter__(self) -> RssSampler:
        self.start = self.peak = rss_bytes()
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        self.sample()


# -- machine ------------------------------------------------------------------------


# Micro-operations timed on the machine of ../shared/REFERENCE.md §3 (µs), where the
# issue's targets were set: the same ones timed here say how much slower this run's CPU is.
REFERENCE_MICRO_US = {
    "str(uuid.uuid4())": 4.2,
    "os.urandom(16).hex()": 0.47,
    "orjson.dumps(4 KB body)": 1.7,
    "json.dumps(4 KB body)": 21.0,
}


def reference_slowdown() -> float:
    """Median over REFERENCE_MICRO_US of (µs here / µs there): 2.0 means half as fast."""
    body = {"model": "gpt-4o", "messages": MESSAGES}
    setup = "import uuid, os, json, orjson"
    ratios = []
    for stmt, there in REFERENCE_MICRO_US.items():
        code = stmt.replace("4 KB body", "body")
        here = min(timeit.repeat(code, setup, number=2000, repeat=5, globals={"body": body}))
        ratios.append(here / 2000 * 1e6 / there)
    return round(statistics.median(ratios), 2)


def machine() -> dict[str, Any]:
    """Calibration (``sum(range(1000))`` µs, best of 5) and facts about this machine."""
    per_loop = min(timeit.repeat("sum(range(1000))", number=2000, repeat=5)) / 2000
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        rev = "?"
    return {
        "calibration_sum_range_1000_us": round(per_loop * 1e6, 2),
        "slowdown_vs_reference": reference_slowdown(),
        "python": platform.python_version(),
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git_rev": rev,
        "platform": platform.platform(),
    }


# -- stores ---------------------------------------------------------------------------


def server_answers(dialect: str) -> bool:
    """True for sqlite, or when the PostgreSQL / MariaDB server accepts a connection."""
    return dialect == "sqlite" or answers(POSTGRES_URL if dialect == "postgresql" else MYSQL_URL)


def metadata_store(dialect: str, tmp: Path) -> AbstractAsyncContextManager[ml.MetadataStore]:
    """A migrated, empty store of its own (SQLite file, PostgreSQL schema or MariaDB
    database), closed and dropped afterwards: the tests' one, without the secret scan."""
    return isolated_db(dialect, tmp, scan=False)


async def count_rows(db: ml.MetadataStore) -> tuple[int, int]:
    """(rows, rows with a body reference) in the store's llm_requests table."""
    rows = await db.fetch("SELECT COUNT(*) AS n, COUNT(body_ref) AS b FROM llm_requests", ())
    return int(rows[0]["n"]), int(rows[0]["b"])


@asynccontextmanager
async def seaweedfs(tmp: Path) -> AsyncIterator[Any]:
    """A SeaweedFS S3 server (tests/support/s3server.py) for the block; stopped (and waited for)
    afterwards. Yields the ``S3Server`` (``adapter_kwargs()``, ``create_bucket()``)."""
    from s3server import start_seaweedfs, stop

    server, proc = await asyncio.to_thread(start_seaweedfs, tmp / "weed")
    try:
        yield server
    finally:
        await asyncio.to_thread(stop, proc)


async def s3_bucket(server: Any, mode: str) -> ml.S3Adapter:
    """A new bucket on ``server`` and an S3Adapter for it in ``mode``."""
    bucket = server.new_bucket_name()
    await server.create_bucket(bucket)
    return await ml.S3Adapter.create(bucket, mode=mode, **server.adapter_kwargs())
