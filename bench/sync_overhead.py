"""Scenario 1b: µs a sync client's wrapper adds to each call, from one thread and from
8 threads calling at once (a Flask / gunicorn-threads worker pool), plain and streaming.

    .venv/bin/python bench/sync_overhead.py [rounds] [--full]  # wall clock, ~20 s a round
    .venv/bin/python bench/sync_overhead.py --instructions     # callgrind, ~15 min

The client is a real ``openai.OpenAI`` whose ``chat.completions.create`` is replaced by
a plain function answering at once with bench/_common.py's ``REPLY`` (a ``ChatCompletion``
built once), or with ``stream=True`` an iterator over its ``ChatCompletionChunk`` objects
(plus the usage-only chunk when asked for it, as the API does): no HTTP, no SDK parsing,
so only the wrapper is timed. Being a real ``OpenAI`` it gets what users get,
``SyncLoggingLLM``, whose writer lives on the library's writer thread; the stores are
named by a URL (SQLite) and a path (files, segment mode) in a temporary folder. The queue
budgets are raised so that no record is spilled (the caller's path does not read them).

Method, as bench/overhead.py: a call is timed from before ``create()`` to its result
(plain) or to the end of reading every chunk (streaming; the bare side asks for the usage
chunk too, so both read the same chunks). Blocks of ``BLOCK`` bare calls and ``BLOCK``
wrapped calls alternate within a round; per round, median(wrapped) - median(bare) and
p99(wrapped) - p99(bare); the figure is the median of those over rounds. With 8 threads
each block is ``BLOCK / 8`` calls per thread, started together, and every thread's
timings are pooled; a call's time then includes waiting for the GIL while other threads
run (their calls, their wrapper, the writer), as it would in a worker pool.

Three settings; the first two mirror overhead.py's two:
- "hot path": the fake keeps the GIL; the writer is flushed after each pair of blocks,
  untimed. Other threads still get the GIL when the interpreter forces a switch (every
  5 ms), or when a wake-up of the writer thread (a ``send()`` on its loop's self-pipe)
  lets go of it.
- "releases GIL": the fake calls ``time.sleep(0)`` once per call: the thread lets go of
  the GIL and the kernel schedules something else, as during a network call (the sync
  twin of overhead.py's fake yielding to the loop; ``select`` with a 0 timeout lets go of
  the GIL too but keeps the CPU, and another thread seldom gets in). The wrapper's work
  after the call then runs with colder caches: the yardstick is timed in this setting
  too, and costs several times its hot-path figure. The writer thread runs during the
  calls, so what it does under the GIL (moving the inbox, building batches in its worker
  threads) lands in the calls it interrupts; the writer is flushed after each round
  only. Not quite overhead.py's "same loop": there the writer's loop-side work runs
  between calls on the callers' own thread, here the writer thread (and its worker
  threads, building batches with a turn for others after each 1 ms of work) takes the
  GIL whenever a call lets go of it.
- "1 ms network" (8 threads only): the fake sleeps 1 ms, the threads start 1/8 ms apart:
  a worker pool whose calls overlap and whose GIL is mostly free, as in service. Its p99
  is mostly the timer's jitter, present on both sides.
Each setting is also run (plain calls) with the wake-ups switched off: the
``HostedWriter``'s thread is replaced by one whose ``call_soon`` does nothing, so records
wait in the inbox until the untimed flush. That is what a handoff without wake-ups (the
writer thread fetching the inbox itself) would cost the caller; compared with the same
setting's plain figure, it is what the wake-ups cost.

Also measured in the same run:
- the yardstick of overhead.py (two clocks, a slots record, a deque append; and that plus
  ``orjson.dumps`` of the request, also in "releases GIL"), sync, one thread, to scale and
  compare runs;
- overhead.py itself (``run(1)``, async, one round) after each round of this one, so the
  sync/async ratio is taken per round, in the same process, minutes apart at most;
- 8 threads: "added CPU per call" = (wall of the wrapped blocks - wall of the bare
  blocks) / calls: what the pool as a whole pays per call (the GIL serialises it; with
  "releases GIL" this includes the writer's own work done during the blocks);
- 8 threads: the writer's records/s, from ``stats().written``: 8 threads make
  ``THROUGHPUT_CALLS`` wrapped calls ("releases GIL") and the clock stops when ``flush()``
  returns;
- wake-ups of the writer thread per wrapped call (``HostedWriter`` wakes the loop with
  ``call_soon_threadsafe`` only for the first record since the loop last emptied the
  inbox), counted in a separate untimed block per setting;
- the pieces of ``HostedWriter.submit`` alone, in µs: the append under the inbox's lock,
  ``os.getpid()`` (its fork check) and ``call_soon_threadsafe`` onto the writer thread's
  loop (best of 5 runs of 20,000).

``--instructions`` counts CPU instructions per call on the caller's thread alone with
callgrind (``--separate-threads=yes``: one total per thread; the caller is thread 1),
as bench/stage_instructions.py does: a driver (this file with ``--child PROBE COUNT``)
warms up, freezes the GC, makes COUNT calls and exits at once; run at COUNT = LOW and
HIGH, the figure is (thread 1's total at HIGH - at LOW) / (HIGH - LOW). ``PYTHONPATH``
set to a checkout (e.g. ``git archive HEAD majordomo_log | tar -x -C /tmp/tree``) picks
the code measured, in both modes; the default is this working tree. The writer does
not drain (budgets far above the calls made, ``batch_size`` 10**9, ``flush_interval``
3600), but the handoff runs as in service: the inbox, and a wake-up whenever the writer
thread emptied it. Probes: bare and wrapped calls (plain, streaming), the yardstick, the
async hot path of stage_instructions.py (bare and wrapped ``AsyncOpenAI``), and the pieces
of ``submit``: a lock + append, ``call_soon_threadsafe``, and ``HostedWriter.submit``
while a wake-up is pending (each minus an empty call in the same loop).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import orjson  # noqa: E402
from _common import CHUNKS, MESSAGES, REPLY, USAGE_CHUNK, median, p99, result  # noqa: E402

SCENARIO = "sync_overhead"
CALLS = 5_000  # per side and round (all threads together)
CALLS_QUICK = 2_000
BLOCK = 496  # calls per block, all threads together: a multiple of 8 (62 per thread)
THREADS = 8
THROUGHPUT_CALLS = 8_000  # the 8-thread writer throughput run
THROUGHPUT_CALLS_QUICK = 4_000
WAKE_CALLS = 2_000  # the untimed blocks counting the writer's wake-ups
USAGE_OPTIONS = {"include_usage": True}
REFERENCE_MINIMAL_US = 2.8  # REFERENCE.md §3: the minimal wrapper on the targets' machine

# The queue may hold every record of a round: a spilled record would not measure the
# caller's path (which never reads these budgets: the writer thread does).
BIG_QUEUE: dict[str, Any] = {"max_queue_records": 1_000_000, "max_queue_bytes": 1 << 33}

Call = Callable[[], Any]


# -- the fake client ----------------------------------------------------------------------


class FakeSyncStream:
    """Like the SDK's ``Stream``: iteration over the chunks, ``close()``."""

    def __init__(self, chunks: Sequence[Any]) -> None:
        self._chunks = iter(chunks)

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        return next(self._chunks)

    def close(self) -> None:
        pass


WITH_USAGE = (*CHUNKS, USAGE_CHUNK)


def fake_openai(pause: float | None) -> Any:
    """A real ``openai.OpenAI`` (so the wrapper is what users get: ``SyncLoggingLLM``)
    whose ``chat.completions.create`` answers with objects built once: at once
    (``pause`` None), or after ``time.sleep(pause)``, which lets other threads take the
    GIL as a network call would (0: only that)."""
    import openai

    client = openai.OpenAI(api_key="sk-bench-key", base_url="http://127.0.0.1:9/v1")
    sleep = time.sleep

    def create(**kwargs: Any) -> Any:
        if pause is not None:
            sleep(pause)
        if kwargs.get("stream"):
            usage = (kwargs.get("stream_options") or {}).get("include_usage")
            return FakeSyncStream(WITH_USAGE if usage else CHUNKS)
        return REPLY

    client.chat.completions.create = create  # type: ignore[method-assign]
    return client


# -- the yardstick ------------------------------------------------------------------------


@dataclass(slots=True)
class _MinimalRecord:
    started: float
    ended: float
    model: Any
    response: Any


class MinimalWrapper:
    """overhead.py's yardstick, sync: two clocks, a slots record, a deque append."""

    def __init__(self, create: Callable[..., Any]) -> None:
        self._create = create
        self.queue: collections.deque[_MinimalRecord] = collections.deque()

    def create(self, **kwargs: Any) -> Any:
        started = time.perf_counter()
        response = self._create(**kwargs)
        self.queue.append(
            _MinimalRecord(started, time.perf_counter(), kwargs.get("model"), response)
        )
        return response

    def drain(self) -> None:
        self.queue.clear()


class MinimalSnapshotWrapper(MinimalWrapper):
    """The yardstick plus the request snapshot (``orjson.dumps`` of the arguments)."""

    def create(self, **kwargs: Any) -> Any:
        started = time.perf_counter()
        request = orjson.dumps(kwargs)
        response = self._create(**kwargs)
        self.queue.append(_MinimalRecord(started, time.perf_counter(), request, response))
        return response


# -- calls and timing ---------------------------------------------------------------------


def plain_call(create: Callable[..., Any]) -> Call:
    def call() -> Any:
        return create(model="gpt-4o", messages=MESSAGES)

    return call


def stream_call(create: Callable[..., Any], bare: bool) -> Call:
    # The wrapper adds include_usage itself (and hides the usage chunk); the bare client
    # is asked for it so both sides read the same chunks from the fake.
    extra = {"stream_options": USAGE_OPTIONS} if bare else {}

    def call() -> None:
        for _ in create(model="gpt-4o", messages=MESSAGES, stream=True, **extra):
            pass

    return call


def timed(call: Call, n: int, out: list[float]) -> None:
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        call()
        out.append((clock() - t0) / 1000)


class Pool:
    """``n`` caller threads that run the same block of calls at once."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._start = threading.Barrier(n + 1)
        self._end = threading.Barrier(n + 1)
        self._job: tuple[Call, int, float] | None = None
        self._out: list[list[float]] = [[] for _ in range(n)]
        self._threads = [
            threading.Thread(target=self._work, args=(i,), name=f"caller-{i}", daemon=True)
            for i in range(n)
        ]
        for thread in self._threads:
            thread.start()

    def _work(self, i: int) -> None:
        while True:
            self._start.wait()
            job = self._job
            if job is None:
                return
            call, calls, stagger = job
            if stagger:
                time.sleep(i * stagger)
            timed(call, calls, self._out[i])
            self._end.wait()

    def run(self, call: Call, calls: int, out: list[float], stagger: float = 0.0) -> float:
        """``calls`` calls in all, split over the threads; each call's µs appended to
        ``out``; returns the block's wall time (s), first start to last end. Thread ``i``
        starts ``i * stagger`` s late (untimed), so that calls with a pause are spread
        over the pause instead of all waking at once."""
        for times in self._out:
            times.clear()
        self._job = (call, calls // self.n, stagger)
        self._start.wait()
        t0 = time.perf_counter()
        self._end.wait()
        wall = time.perf_counter() - t0
        for times in self._out:
            out.extend(times)
        return wall

    def close(self) -> None:
        self._job = None
        self._start.wait()
        for thread in self._threads:
            thread.join()


@dataclass
class Added:
    median: float  # µs, median(wrapped) - median(bare)
    p99: float  # µs
    cpu: float  # µs, (wall wrapped - wall bare) / calls


def one_round(
    pool: Pool,
    bare: Call,
    wrapped: Call,
    calls: int,
    drain: Callable[[], Any] | None,
    stagger: float = 0.0,
) -> Added:
    """One round of interleaved blocks; ``drain`` (untimed) after each pair of blocks."""
    bare_us: list[float] = []
    wrapped_us: list[float] = []
    bare_wall = wrapped_wall = 0.0
    for _ in range(calls // BLOCK):
        bare_wall += pool.run(bare, BLOCK, bare_us, stagger)
        wrapped_wall += pool.run(wrapped, BLOCK, wrapped_us, stagger)
        if drain is not None:
            drain()
    return Added(
        median(wrapped_us) - median(bare_us),
        p99(wrapped_us) - p99(bare_us),
        (wrapped_wall - bare_wall) / len(wrapped_us) * 1e6,
    )


# -- the wall-clock scenario ---------------------------------------------------------------

# Setting -> (the fake's pause: see fake_openai, drain the writer after each pair of blocks)
SETTINGS: dict[str, tuple[float | None, bool]] = {
    "hot path": (None, True),
    "releases GIL": (0.0, False),
    "1 ms network": (0.001, False),
}
# Which settings each pool runs (1 ms of sleep makes one thread's figures mostly timer
# jitter; with 8 threads it is the realistic pool: calls overlap, the GIL is mostly free).
RUNS = {1: ("hot path", "releases GIL"), THREADS: ("hot path", "releases GIL", "1 ms network")}
NO_WAKE = " (no wake-ups)"


class _NoWakeThread:
    """The writer thread, except that ``call_soon`` does nothing: records wait in the
    inbox until ``flush()`` moves them. Put in a ``HostedWriter`` for the no-wake-up
    blocks: what the caller would pay if the writer thread fetched the inbox itself."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def label(threads: int) -> str:
    return "1 thread" if threads == 1 else f"{threads} threads"


class SyncBench:
    """Clients, wrappers and pools, built once, measured round after round."""

    def __init__(self, tmp: Path) -> None:
        import majordomo_log as ml

        db, storage = f"sqlite:///{tmp / 'sync.db'}", str(tmp / "bodies")
        self.clients = {name: fake_openai(pause) for name, (pause, _) in SETTINGS.items()}
        self.llms: dict[str, Any] = {
            name: ml.LoggingLLM(client, db, storage, spool=tmp / "spool", **BIG_QUEUE)
            for name, client in self.clients.items()
        }
        first = self.llms["hot path"]
        assert type(first).__name__ == "SyncLoggingLLM", type(first)
        assert all(llm._writer is first._writer for llm in self.llms.values())  # one writer
        self.front: Any = first._writer
        self.pools = {threads: Pool(threads) for threads in RUNS}
        instant_create = self.clients["hot path"].chat.completions.create
        self.minimal = MinimalWrapper(instant_create)
        self.with_snapshot = MinimalSnapshotWrapper(instant_create)
        releasing_create = self.clients["releases GIL"].chat.completions.create
        self.releasing_snapshot = MinimalSnapshotWrapper(releasing_create)

    def pairs(self, setting: str) -> dict[str, tuple[Call, Call]]:
        client, llm = self.clients[setting], self.llms[setting]
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

    def flush(self) -> Any:
        return self.llms["hot path"].flush()

    def drain_yardsticks(self) -> None:
        self.minimal.drain()
        self.with_snapshot.drain()
        self.releasing_snapshot.drain()

    def one_round(self, calls: int) -> dict[str, Added]:
        """Every setting once: {"plain, 1 thread, hot path": Added, ...}."""
        out: dict[str, Added] = {}
        for threads, settings in RUNS.items():
            for setting in settings:
                pause, drains = SETTINGS[setting]
                drain = self.flush if drains else None
                stagger = (pause or 0.0) / threads
                for name, (bare, wrapped) in self.pairs(setting).items():
                    key = f"{name}, {label(threads)}, {setting}"
                    out[key] = one_round(self.pools[threads], bare, wrapped, calls, drain, stagger)
                    self.flush()
                bare, wrapped = self.pairs(setting)["plain"]
                real = self.front._thread
                self.front._thread = _NoWakeThread(real)
                try:
                    key = f"plain, {label(threads)}, {setting}{NO_WAKE}"
                    out[key] = one_round(self.pools[threads], bare, wrapped, calls, drain, stagger)
                finally:
                    self.front._thread = real
                self.flush()
        for name, wrapper in (
            ("minimal wrapper", self.minimal),
            ("minimal wrapper + snapshot", self.with_snapshot),
            ("minimal wrapper + snapshot, releases GIL", self.releasing_snapshot),
        ):
            out[name] = one_round(
                self.pools[1],
                plain_call(wrapper._create),
                plain_call(wrapper.create),
                calls,
                self.drain_yardsticks,
            )
        return out

    def throughput(self, calls: int) -> tuple[float, float, int]:
        """8 threads, ``calls`` wrapped calls ("releases GIL"): (records/s written from
        the first call until flush() returned, calls/s of the callers, records still
        queued when the callers were done)."""
        self.flush()
        wrapped = self.pairs("releases GIL")["plain"][1]
        before = self.front.stats().written
        t0 = time.perf_counter()
        self.pools[THREADS].run(wrapped, calls, [])
        t_calls = time.perf_counter()
        pending = self.front.stats().pending
        stats = self.flush()
        t_done = time.perf_counter()
        return (stats.written - before) / (t_done - t0), calls / (t_calls - t0), pending

    def wakes_per_call(self) -> dict[str, float]:
        """Wake-ups of the writer thread per wrapped plain call, in each setting (an
        untimed block, the writer's ``_move_inbox`` counted on the writer thread)."""
        front = self.front
        original = front._move_inbox
        count = [0]

        def counted() -> None:
            count[0] += 1
            original()

        out = {}
        front._move_inbox = counted
        try:
            for threads, settings in RUNS.items():
                for setting in settings:
                    self.flush()
                    count[0] = 0
                    wrapped = self.pairs(setting)["plain"][1]
                    stagger = (SETTINGS[setting][0] or 0.0) / threads
                    self.pools[threads].run(wrapped, WAKE_CALLS, [], stagger)
                    self.flush()  # its own _move_inbox call is not a wake-up
                    out[f"{label(threads)}, {setting}"] = (count[0] - 1) / WAKE_CALLS
        finally:
            del front._move_inbox
        return out

    def handoff_pieces(self) -> dict[str, float]:
        """µs per operation of the pieces of ``HostedWriter.submit``, from this thread
        (the writer thread runs the callbacks meanwhile, as in service); best of 5."""
        thread = self.front.thread
        lock, inbox, item = threading.Lock(), list[object](), object()
        n = 20_000

        def noop() -> None:
            pass

        def per_op(op: Callable[[], Any]) -> float:
            best = float("inf")
            for _ in range(5):
                t0 = time.perf_counter()
                for _ in range(n):
                    op()
                best = min(best, time.perf_counter() - t0)
                inbox.clear()
            return best / n * 1e6

        def lock_append() -> None:
            with lock:
                inbox.append(item)

        empty = per_op(noop)
        return {
            "inbox lock + append": per_op(lock_append) - empty,
            "os.getpid() (HostedWriter.thread's fork check)": per_op(os.getpid) - empty,
            "call_soon_threadsafe to the writer thread": per_op(lambda: thread.call_soon(noop))
            - empty,
        }

    def close(self) -> Any:
        for pool in self.pools.values():
            pool.close()
        for name, llm in self.llms.items():
            if name != "hot path":
                llm.close()
        return self.llms["hot path"].close()


def _async_figures(rows: list[dict[str, Any]]) -> dict[str, float]:
    return {r["metric"]: r["value"] for r in rows if r["value"] is not None}


# sync figure -> the async figure of overhead.py it is compared with
VERSUS_ASYNC = {
    "plain, 1 thread, hot path": "plain, hot path",
    "streaming, 1 thread, hot path": "streaming, hot path",
    "plain, 1 thread, releases GIL": "plain, same loop",
    "streaming, 1 thread, releases GIL": "streaming, same loop",
}


async def run(rounds: int = 5, quick: bool = False) -> list[dict[str, Any]]:
    """The sync rounds run in a thread of their own (``asyncio.to_thread``), each followed
    by one round of overhead.py on this loop: the ratios are taken per round."""
    import overhead

    calls = CALLS_QUICK if quick else CALLS
    tmp = Path(tempfile.mkdtemp(prefix="bench-sync-overhead-"))
    bench = await asyncio.to_thread(SyncBench, tmp)
    figures: dict[str, list[Added]] = {}
    async_runs: list[dict[str, float]] = []
    writer_rates: list[float] = []
    caller_rates: list[float] = []
    backlog: list[int] = []
    try:
        await asyncio.to_thread(bench.one_round, BLOCK)  # warm-up
        for _ in range(rounds):
            for key, added in (await asyncio.to_thread(bench.one_round, calls)).items():
                figures.setdefault(key, []).append(added)
            async_runs.append(_async_figures(await overhead.run(1, quick=quick)))
            rate, callers, pending = await asyncio.to_thread(
                bench.throughput, THROUGHPUT_CALLS_QUICK if quick else THROUGHPUT_CALLS
            )
            writer_rates.append(rate)
            caller_rates.append(callers)
            backlog.append(pending)
        wakes = await asyncio.to_thread(bench.wakes_per_call)
        pieces = await asyncio.to_thread(bench.handoff_pieces)
    finally:
        stats = await asyncio.to_thread(bench.close)
    lost = stats.dropped + stats.spilled + stats.failed
    note = f"{stats.written:,} records written, {lost} dropped/spilled/refused"

    def col(key: str, field: str) -> list[float]:
        return [getattr(a, field) for a in figures[key]]

    out = []
    yardstick = col("minimal wrapper", "median")
    out.append(result(SCENARIO, "minimal wrapper (yardstick), sync, median", yardstick, "µs"))
    out.append(
        result(
            SCENARIO,
            "minimal wrapper + snapshot (yardstick), sync, median",
            col("minimal wrapper + snapshot", "median"),
            "µs",
        )
    )
    out.append(
        result(
            SCENARIO,
            "minimal wrapper + snapshot (yardstick), sync, releases GIL, median",
            col("minimal wrapper + snapshot, releases GIL", "median"),
            "µs",
            note="the same work after a call that let go of the GIL: colder caches",
        )
    )
    ours = col("plain, 1 thread, hot path", "median")
    out.append(
        result(
            SCENARIO,
            "added per call, plain, 1 thread, hot path, median, scaled to the targets' machine",
            [o * REFERENCE_MINIMAL_US / y for o, y in zip(ours, yardstick, strict=True)],
            "µs",
            at_most=5,
            note=f"x {REFERENCE_MINIMAL_US} µs / the yardstick, per round",
        )
    )
    for sync_key, setting in VERSUS_ASYNC.items():
        theirs = [r[f"added per call, {setting}, median"] for r in async_runs]
        theirs_p99 = [r[f"added per call, {setting}, p99"] for r in async_runs]
        out.append(
            result(
                SCENARIO,
                f"async (overhead.py), {setting}, median",
                theirs,
                "µs",
                note="same rounds",
            )
        )
        out.append(result(SCENARIO, f"async (overhead.py), {setting}, p99", theirs_p99, "µs"))
        out.append(
            result(
                SCENARIO,
                f"sync / async, median: {sync_key} / {setting}",
                [s / a for s, a in zip(col(sync_key, "median"), theirs, strict=True)],
                "x",
                note="per round",
            )
        )
    for key in figures:
        if key.endswith(NO_WAKE):
            with_wakes = key.removesuffix(NO_WAKE)
            out.append(
                result(
                    SCENARIO,
                    f"cost of the wake-ups, {with_wakes}, median",
                    [
                        a.median - b.median
                        for a, b in zip(figures[with_wakes], figures[key], strict=True)
                    ],
                    "µs",
                    note="per round: added median with wake-ups - without",
                )
            )
    for key in figures:
        if key.startswith("minimal"):
            continue
        out.append(
            result(
                SCENARIO,
                f"added per call, {key}, median",
                col(key, "median"),
                "µs",
                at_most=5,
                note=note,
            )
        )
        out.append(
            result(SCENARIO, f"added per call, {key}, p99", col(key, "p99"), "µs", at_most=25)
        )
        if key.split(", ")[1] != "1 thread" and "1 ms" not in key:
            out.append(
                result(
                    SCENARIO,
                    f"added CPU per call, {key} (block wall / calls)",
                    col(key, "cpu"),
                    "µs",
                )
            )
    out.append(
        result(
            SCENARIO,
            f"writer, {THREADS} threads calling (releases GIL), records written/s",
            writer_rates,
            "records/s",
            note=f"first call to flush() returning; callers made a median "
            f"{median(caller_rates):,.0f} calls/s, leaving a median {median(backlog):,.0f} queued",
        )
    )
    for key, value in wakes.items():
        out.append(result(SCENARIO, f"writer wake-ups per call, {key}", [value], "per call"))
    for key, value in pieces.items():
        out.append(result(SCENARIO, f"{key}, per operation", [value], "µs"))
    return out


# -- the instruction counts (runs valgrind) ---------------------------------------------------

LOW, HIGH = 1000, 3000
WARM_CALLS = 200
CONCURRENT_VALGRINDS = 2
PROBES = (
    "bare",
    "wrapped",
    "bare_stream",
    "wrapped_stream",
    "minimal",
    "async_bare",
    "async_wrapped",
    "nothing",
    "lock_append",
    "call_soon",
    "submit_pending",
)
WAKES_FILE = "wakes.txt"


def _quiet_llm(client: Any, workdir: Path) -> Any:
    """A sync wrapper whose writer never drains while the driver runs."""
    import majordomo_log as ml

    return ml.LoggingLLM(
        client,
        f"sqlite:///{workdir / 'calls.db'}",
        str(workdir / "bodies"),
        spool=False,
        batch_size=10**9,
        flush_interval=3600,
        max_queue_records=10**9,
        max_queue_bytes=10**12,
    )


def _count_wakes(llm: Any) -> list[int]:
    """Count the writer thread's ``_move_inbox`` runs (on the writer thread only)."""
    front = llm._writer
    original = front._move_inbox
    count = [0]

    def counted() -> None:
        count[0] += 1
        original()

    front._move_inbox = counted
    return count


def _child_op(probe: str, workdir: Path) -> tuple[Call, list[int] | None]:
    """The operation a probe repeats, and the wake counter when there is one."""
    if probe in ("nothing", "lock_append", "call_soon"):
        from majordomo_log.delivery.writer_thread import writer_thread

        thread, lock, inbox, item = writer_thread(), threading.Lock(), [], object()

        def noop() -> None:
            pass

        if probe == "nothing":
            return noop, None
        if probe == "lock_append":

            def lock_append() -> None:
                with lock:
                    inbox.append(item)

            return lock_append, None
        return (lambda: thread.call_soon(noop)), None
    client = fake_openai(None)
    create = client.chat.completions.create
    if probe == "bare":
        return plain_call(create), None
    if probe == "bare_stream":
        return stream_call(create, bare=True), None
    if probe == "minimal":
        return plain_call(MinimalSnapshotWrapper(create).create), None
    llm = _quiet_llm(client, workdir)
    if probe == "submit_pending":
        llm.flush()
        front, item = llm._writer, object()
        with front._lock:
            front._wake_pending = True  # as if a wake-up were on its way: no more are sent
        return (lambda: front.submit(item)), None
    wakes = _count_wakes(llm)
    if probe == "wrapped":
        return plain_call(llm.chat.completions.create), wakes
    return stream_call(llm.chat.completions.create, bare=False), wakes


def child(probe: str, count: int) -> None:
    from majordomo_log import _loop_turns

    _loop_turns._WORK_SECONDS = float("inf")  # as stage_instructions.py: no loop turns
    workdir = Path.cwd()
    if probe.startswith("async_"):
        import stage_instructions

        asyncio.run(stage_instructions._hot_path(probe.removeprefix("async_"), count, workdir))
        return  # _hot_path exits the process itself
    op, wakes = _child_op(probe, workdir)
    for _ in range(WARM_CALLS):
        op()
    gc.collect()
    gc.freeze()
    start = 0 if wakes is None else wakes[0]
    for _ in range(count):
        op()
    if wakes is not None:  # read on this thread: a few instructions, the same in both runs
        (workdir / WAKES_FILE).write_text(str(wakes[0] - start))
    os._exit(0)


SCRIPT = Path(__file__).resolve()


def _child_command(probe: str, count: int, script: Path = SCRIPT) -> list[str]:
    return [sys.executable, str(script), "--child", probe, str(count)]


def _child_env() -> dict[str, str]:
    # PYTHONPATH set to a checkout (an export of a commit) picks the code measured.
    return {
        **os.environ,
        "PYTHONPATH": os.environ.get("PYTHONPATH") or str(ROOT),
        "PYTHONHASHSEED": "0",
    }


def thread_totals(
    probe: str, count: int, script: Path = SCRIPT
) -> tuple[dict[int, int], int | None]:
    """Instructions per thread (1: the caller) of one driver run of ``script`` (whose
    ``--child PROBE COUNT`` is the driver), and the wake-ups seen."""
    with tempfile.TemporaryDirectory() as workdir:
        out = Path(workdir) / "callgrind.out"
        subprocess.run(
            [
                *("valgrind", "--tool=callgrind", "--separate-threads=yes"),
                f"--callgrind-out-file={out}",
                *_child_command(probe, count, script),
            ],
            cwd=workdir,
            env=_child_env(),
            check=True,
            capture_output=True,
        )
        totals: dict[int, int] = {}
        for part in Path(workdir).glob("callgrind.out-*"):
            text = part.read_text(errors="replace")
            thread = re.search(r"^thread: (\d+)$", text, re.MULTILINE)
            total = re.search(r"^totals: (\d+)$", text, re.MULTILINE)
            if thread is None or total is None:
                raise RuntimeError(f"no thread or totals line in {part.name}")
            totals[int(thread.group(1))] = totals.get(int(thread.group(1)), 0) + int(total.group(1))
        wakes_file = Path(workdir) / WAKES_FILE
        wakes = int(wakes_file.read_text()) if wakes_file.exists() else None
    return totals, wakes


def instructions(probes: Sequence[str]) -> dict[str, Any]:
    for probe in probes:  # bytecode caches written, and the driver works, before counting
        with tempfile.TemporaryDirectory() as workdir:
            subprocess.run(_child_command(probe, LOW), cwd=workdir, env=_child_env(), check=True)
    runs = [(probe, count) for probe in probes for count in (LOW, HIGH)]

    def one(run: tuple[str, int]) -> tuple[dict[int, int], int | None]:
        started = time.monotonic()
        totals, wakes = thread_totals(*run)
        took = time.monotonic() - started
        print(
            f"  {run[0]:<15} {run[1]:>5}: caller {totals.get(1, 0):>14,}, "
            f"other threads {sum(totals.values()) - totals.get(1, 0):>14,}, "
            f"wakes {wakes} ({took:.0f} s)",
            flush=True,
        )
        return totals, wakes

    with ThreadPoolExecutor(CONCURRENT_VALGRINDS) as pool:
        measured = dict(zip(runs, pool.map(one, runs), strict=True))
    per_call = {}
    for probe in probes:
        (low, low_wakes), (high, high_wakes) = measured[probe, LOW], measured[probe, HIGH]
        others_low = sum(v for k, v in low.items() if k != 1)
        others_high = sum(v for k, v in high.items() if k != 1)
        per_call[probe] = {
            "caller": (high[1] - low[1]) / (HIGH - LOW),
            "other_threads": (others_high - others_low) / (HIGH - LOW),
            "wakes": None if low_wakes is None else [low_wakes, high_wakes],
            "totals": {str(LOW): low, str(HIGH): high},
        }
    return per_call


def instruction_report(per_call: dict[str, Any]) -> str:
    def caller(probe: str) -> float:
        return float(per_call[probe]["caller"])

    def k(value: float) -> str:
        return f"{value / 1000:,.1f}k"

    lines = ["| instructions per call, caller's thread | figure |", "|---|---:|"]
    rows = []
    if "wrapped" in per_call and "bare" in per_call:
        rows.append(
            ("sync wrapper, plain: added (wrapped - bare)", caller("wrapped") - caller("bare"))
        )
    if "wrapped_stream" in per_call and "bare_stream" in per_call:
        rows.append(
            (
                "sync wrapper, streaming: added (wrapped - bare)",
                caller("wrapped_stream") - caller("bare_stream"),
            )
        )
    if "minimal" in per_call and "bare" in per_call:
        rows.append(
            ("yardstick (minimal + snapshot), sync: added", caller("minimal") - caller("bare"))
        )
    if "async_wrapped" in per_call and "async_bare" in per_call:
        rows.append(
            (
                "async wrapper, plain: added (stage_instructions' hot path)",
                caller("async_wrapped") - caller("async_bare"),
            )
        )
    if "nothing" in per_call:
        for probe, label in (
            ("lock_append", "inbox lock + append"),
            ("call_soon", "call_soon_threadsafe (one wake-up)"),
            ("submit_pending", "HostedWriter.submit, wake-up pending"),
        ):
            if probe in per_call:
                rows.append((label, caller(probe) - caller("nothing")))
    for label, value in rows:
        lines.append(f"| {label} | {k(value)} |")
    for probe in ("wrapped", "wrapped_stream"):
        if probe in per_call and per_call[probe]["wakes"]:
            low, high = per_call[probe]["wakes"]
            lines.append(
                f"\n{probe}: {low} wake-ups in {LOW} calls, {high} in {HIGH}; other threads "
                f"{k(per_call[probe]['other_threads'])} per call"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rounds", nargs="?", type=int, default=3)
    parser.add_argument(
        "--full", action="store_true", help=f"{CALLS} calls per round, not {CALLS_QUICK}"
    )
    parser.add_argument("--instructions", action="store_true", help="callgrind counts instead")
    parser.add_argument("--probes", default=",".join(PROBES), help="with --instructions")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    import majordomo_log

    print(f"majordomo_log from {Path(majordomo_log.__file__).parent}", flush=True)
    if args.instructions:
        probes = [p for p in args.probes.split(",") if p]
        unknown = set(probes) - set(PROBES)
        if unknown:
            parser.error(f"unknown probe(s) {', '.join(sorted(unknown))}")
        print(f"LOW {LOW}, HIGH {HIGH}; per thread: callgrind --separate-threads=yes", flush=True)
        per_call = instructions(probes)
        print()
        print(instruction_report(per_call))
        if args.json:
            args.json.write_text(json.dumps(per_call, indent=1) + "\n")
        return
    rows = asyncio.run(run(args.rounds, quick=not args.full))
    for row in rows:
        runs = ", ".join(f"{r:g}" for r in row["runs"])
        print(f"{row['metric']:<88} {row['value']:>10.2f} {row['unit']:<9} [{runs}]")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]))
    else:
        main()
