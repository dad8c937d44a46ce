"""Scenario 1: µs added to each call by the wrapper, plain and streaming.

    .venv-bench/bin/python bench/overhead.py [rounds]

The same instant fake client (bench/_common.FakeOpenAI, which yields to the loop once per
call as a network call would) is called unwrapped and wrapped by LoggingLLM into SQLite +
files (segment mode). The background writer drains on the same event loop, so whatever
it does on the loop lands in the calls it interrupts, as it would in a service.

A call is timed from before ``create()`` to its result (plain) or to the end of reading
every chunk (streaming; the bare side asks for the usage chunk too, so both read the
same chunks). Blocks of ``BLOCK`` bare calls and ``BLOCK`` wrapped calls alternate within
a round (drift hits both alike). Per round: median(wrapped) - median(bare) and
p99(wrapped) - p99(bare); the figure is the median of those over rounds.

A yardstick runs in the same rounds: REFERENCE.md §3's minimal wrapper (two clocks, a
slots record, a deque append), 2.8 µs on the machine where the targets were set. Its
figure here says how fast this run's machine is for this kind of work; the wrapper's
median scaled by 2.8 µs / the yardstick's is what it would cost there.
"""

from __future__ import annotations

import asyncio
import collections
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import orjson
from _common import MESSAGES, FakeOpenAI, median, p99, result

import majordomo_log as ml

SCENARIO = "overhead"
CALLS = 5_000  # per side and round
CALLS_QUICK = 2_000
BLOCK = 500
USAGE_OPTIONS = {"include_usage": True}

REFERENCE_MINIMAL_US = 2.8  # REFERENCE.md §3: the minimal wrapper on the targets' machine

Call = Callable[[], Awaitable[Any]]


@dataclass(slots=True)
class _MinimalRecord:
    started: float
    ended: float
    model: Any
    response: Any


class MinimalWrapper:
    """The yardstick: two clocks, a slots record, a deque append; nothing else."""

    def __init__(self, create: Callable[..., Awaitable[Any]]) -> None:
        self._create = create
        self.queue: collections.deque[_MinimalRecord] = collections.deque()

    async def create(self, **kwargs: Any) -> Any:
        started = time.perf_counter()
        response = await self._create(**kwargs)
        self.queue.append(
            _MinimalRecord(started, time.perf_counter(), kwargs.get("model"), response)
        )
        return response

    async def drain(self) -> None:
        self.queue.clear()


class MinimalSnapshotWrapper(MinimalWrapper):
    """The issue 14 yardstick: the minimal wrapper plus the request snapshot every
    logger must take on the caller's path (``orjson.dumps`` of the arguments)."""

    async def create(self, **kwargs: Any) -> Any:
        started = time.perf_counter()
        request = orjson.dumps(kwargs)
        response = await self._create(**kwargs)
        self.queue.append(_MinimalRecord(started, time.perf_counter(), request, response))
        return response


def plain_call(create: Callable[..., Awaitable[Any]]) -> Call:
    def call() -> Awaitable[Any]:
        return create(model="gpt-4o", messages=MESSAGES)

    return call


def stream_call(create: Callable[..., Awaitable[Any]], bare: bool) -> Call:
    # The wrapper adds include_usage itself (and hides the usage chunk); the bare client
    # is asked for it so both sides read the same chunks from the fake.
    extra = {"stream_options": USAGE_OPTIONS} if bare else {}

    async def call() -> None:
        stream = await create(model="gpt-4o", messages=MESSAGES, stream=True, **extra)
        async for _ in stream:
            pass

    return call


async def timed(call: Call, n: int, out: list[float]) -> None:
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        await call()
        out.append((clock() - t0) / 1000)


async def one_round(
    bare: Call, wrapped: Call, calls: int, drain: Callable[[], Awaitable[Any]] | None
) -> tuple[float, float]:
    """(added µs median, added µs p99) for one round of interleaved blocks; ``drain``
    (untimed) runs after each pair of blocks."""
    bare_us: list[float] = []
    wrapped_us: list[float] = []
    for _ in range(calls // BLOCK):
        await timed(bare, BLOCK, bare_us)
        await timed(wrapped, BLOCK, wrapped_us)
        if drain is not None:
            await drain()
    return median(wrapped_us) - median(bare_us), p99(wrapped_us) - p99(bare_us)


def variants(client: FakeOpenAI, llm: ml.LoggingLLM[FakeOpenAI]) -> dict[str, tuple[Call, Call]]:
    return {
        "plain": (
            plain_call(client.chat.completions.create),
            plain_call(llm.chat.completions.create),
        ),
        "streaming": (
            stream_call(client.chat.completions.create, bare=True),
            stream_call(llm.chat.completions.create, bare=False),
        ),
    }


async def run(rounds: int = 7, quick: bool = False) -> list[dict[str, Any]]:
    """Two settings, both with plain and streaming calls:
    - "same loop": the fake yields once per call, the writer drains during the calls (the
      issue's definition: this is what the targets are for);
    - "hot path": the fake never yields, the writer drains between blocks, untimed: the
      wrapper's own cost without the writer's interference."""
    calls = CALLS_QUICK if quick else CALLS
    tmp = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    db = await ml.SqliteAdapter.create(tmp / "o.db")
    storage = await ml.FileStorageAdapter.create(tmp / "bodies", mode="segment")
    yielding, instant = FakeOpenAI(yields=True), FakeOpenAI(yields=False)
    llm_y = ml.LoggingLLM(yielding, db, storage, spool=tmp / "spool")
    llm_i = ml.LoggingLLM(instant, db, storage, spool=tmp / "spool")  # shares the writer
    minimal = MinimalWrapper(instant.chat.completions.create)
    with_snapshot = MinimalSnapshotWrapper(instant.chat.completions.create)

    async def drain_yardsticks() -> None:
        await minimal.drain()
        await with_snapshot.drain()

    settings = {
        "same loop": (variants(yielding, llm_y), None),
        "hot path": (variants(instant, llm_i), llm_i.flush),
        "yardstick": (
            {
                "minimal wrapper": (
                    plain_call(instant.chat.completions.create),
                    plain_call(minimal.create),
                ),
                "minimal wrapper + snapshot": (
                    plain_call(instant.chat.completions.create),
                    plain_call(with_snapshot.create),
                ),
            },
            drain_yardsticks,
        ),
    }
    medians: dict[str, list[float]] = {}
    p99s: dict[str, list[float]] = {}
    try:
        for calls_now in (BLOCK, *[calls] * rounds):  # the first pass is a warm-up
            for setting, (pairs, drain) in settings.items():
                for name, (bare, wrapped) in pairs.items():
                    m, p = await one_round(bare, wrapped, calls_now, drain)
                    if calls_now == calls:
                        medians.setdefault(f"{name}, {setting}", []).append(m)
                        p99s.setdefault(f"{name}, {setting}", []).append(p)
                    await llm_y.flush()
        stats = await llm_y.flush()
    finally:
        await llm_i.close()
        await llm_y.close()
    lost = stats.dropped + stats.spilled + stats.failed
    note = f"{stats.written:,} records written, {lost} dropped/spilled/refused"
    out = []
    yardstick = medians.pop("minimal wrapper, yardstick")
    p99s.pop("minimal wrapper, yardstick")
    snapshot_yardstick = medians.pop("minimal wrapper + snapshot, yardstick")
    p99s.pop("minimal wrapper + snapshot, yardstick")
    out.append(result(SCENARIO, "minimal wrapper (yardstick), median", yardstick, "µs"))
    out.append(
        result(SCENARIO, "minimal wrapper + snapshot (yardstick), median", snapshot_yardstick, "µs")
    )
    ours = medians["plain, hot path"]
    out.append(
        result(
            SCENARIO,
            "added per call, plain, hot path / (minimal wrapper + snapshot)",
            [o / y for o, y in zip(ours, snapshot_yardstick, strict=True)],
            "x",
            at_most=2,
            note="per round, the same rounds (issue 14's target: at most 2x)",
        )
    )
    scaled = [o * REFERENCE_MINIMAL_US / y for o, y in zip(ours, yardstick, strict=True)]
    out.append(
        result(
            SCENARIO,
            "added per call, plain, hot path, median, scaled to the targets' machine",
            scaled,
            "µs",
            at_most=5,
            note=f"x {REFERENCE_MINIMAL_US} µs / the yardstick, per round",
        )
    )
    for key in medians:
        out.append(
            result(
                SCENARIO, f"added per call, {key}, median", medians[key], "µs", at_most=5, note=note
            )
        )
        out.append(result(SCENARIO, f"added per call, {key}, p99", p99s[key], "µs", at_most=25))
    return out


if __name__ == "__main__":
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    for row in asyncio.run(run(rounds, quick=True)):
        print(f"{row['metric']:<40} {row['value']:>8.2f} {row['unit']}  runs={row['runs']}")
