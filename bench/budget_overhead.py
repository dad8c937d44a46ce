"""µs that budgets add to a wrapped call (issue 16: at most 5 µs, median, pricing
included), sync and async, measured against the same wrapper without budgets.

    .venv/bin/python bench/budget_overhead.py [rounds] [--full]  # wall clock, ~15 s a round
    .venv/bin/python bench/budget_overhead.py --instructions     # callgrind, ~5-10 min

The client is bench/sync_overhead.py's: a real ``openai.OpenAI`` whose
``chat.completions.create`` answers at once with bench/_common.py's ``REPLY`` (no HTTP,
no SDK parsing); async, bench/stage_instructions.py's real ``openai.AsyncOpenAI`` whose
``create`` is an ``async def`` answering the same way, never yielding to the loop. Three
sides, in alternating blocks of ``BLOCK`` calls within each round, same process: the bare
client, a ``LoggingLLM`` without budgets, and one with the budgets below; both wrappers
share their stores and writer (sync: SQLite URL + files, writer on the library's thread;
async: adapters on the loop) and the key alias ``bench``. The writer is flushed after
each set of blocks, untimed (sync_overhead.py's and overhead.py's "hot path"), so the
figure is the caller's own path. The order of the two wrapped sides swaps every set.

The budgets (``budgets()``), with limits nothing reaches in a run (a user's $5 is 1,984
calls of this reply; a run makes a few dozen per user):
``Budget("5.00", per="day", scope="user_id", hard=True)``, ``Budget(None,
limit_tokens=10**12, per="hour")`` (soft) and ``Budget(limit_requests=10**9,
per="minute", scope="api_key_alias", hard=True)``; default alerts (``LogAlert``). Every
call of every side is made inside ``ml.tags(user_id=...)``, cycling over ``USERS`` user
ids (so the per-user tallies are 1,000 dict entries); the ``with`` is outside the timed
part. A warm-up set of blocks before the first round makes every user's tally.

A call is timed from before ``create()`` to its result. Per round: median(budgets) -
median(no budgets) and p99(budgets) - p99(no budgets), and the same for no budgets -
bare; the figure is the median over rounds. Also per round: ``record.priced()`` alone,
timed one call at a time over ``PRICED`` records of this reply made by the wrapper
without budgets (what budgets move from the writer onto the caller's thread).

``--instructions`` counts CPU instructions per operation with callgrind
(``--separate-threads=yes``), as sync_overhead.py does, with one change to the driver:
each probe's operations are made twice, LOW then HIGH of them, each time on a thread of
its own, and the figure is (that thread's total at HIGH - at LOW) / (HIGH - LOW). So one
valgrind run counts a whole group of probes and pays Python's start-up once (6.3G
instructions with openai imported: 4 minutes under valgrind on this machine), where one
run per probe and count would take half an hour. The main thread builds each probe's
wrapper and warms it (``WARM_CALLS``: every user's tally made, price tables loaded),
collects and freezes the garbage collector before each counted thread. Checked against
one process per probe and count (sync_overhead.py's driver) on the same code: 75.2k and
74.3k instructions per call without budgets, 210.1k and 207.5k with. The writer does
not drain (sync_overhead.py's quiet settings); the reconciler runs as in service (on the
writer thread). Probes, sync unless named async, in three groups (three valgrinds):
- ``wrapped``, ``budgets``: the two wrappers; ``async_wrapped``, ``async_budgets``: the
  same with the async client (its loop run by the counted thread);
- ``check_only``: budgets, with the guard's ``charge`` replaced by a no-op;
- ``charge_only``: budgets, with the guard's ``check`` replaced by a no-op;
- ``priced_only``: ``check`` a no-op, ``charge`` replaced by ``record.priced()`` alone:
  charge_only - priced_only is the tallies' and thresholds' share of ``charge``;
- ``priced``: ``record.priced()`` on records made by the wrapper without budgets, one
  record per operation;
- ``piece:NAME``: the parts of ``check``, ``charge`` and ``priced()`` one at a time
  (``_Pieces``), each figure minus an empty loop turn's.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import stage_instructions  # noqa: E402
import sync_overhead  # noqa: E402
from _common import MESSAGES, median, p99, result  # noqa: E402
from sync_overhead import BIG_QUEUE, REFERENCE_MINIMAL_US, MinimalWrapper, fake_openai  # noqa: E402

import majordomo_log as ml  # noqa: E402

SCENARIO = "budget_overhead"
CALLS = 5_000  # per side and round
CALLS_QUICK = 2_000
BLOCK = 500
USERS = 1_000
USER_IDS = tuple(f"user-{i:04d}" for i in range(USERS))
KEY_ALIAS = "bench"
PRICED = 1_000  # records priced one at a time, per round
SIDES = ("bare", "no budgets", "budgets")
YARDSTICK = "minimal wrapper"  # sync only: sync_overhead.py's MinimalWrapper


def budgets() -> list[ml.Budget]:
    """The budget set measured: a hard $ per user per day, a soft token limit per hour,
    a hard request limit per key alias per minute; none is reached in a run."""
    return [
        ml.Budget("5.00", per="day", scope="user_id", hard=True),
        ml.Budget(None, limit_tokens=10**12, per="hour"),
        ml.Budget(limit_requests=10**9, per="minute", scope="api_key_alias", hard=True),
    ]


def _call(create: Callable[..., Any]) -> Callable[[], Any]:
    def call() -> Any:
        return create(model="gpt-4o", messages=MESSAGES)

    return call


def timed(call: Callable[[], Any], n: int, first: int, out: list[float]) -> None:
    """``n`` calls, each under ``ml.tags(user_id=...)`` (entered outside the timing),
    users from ``first`` on; each call's µs appended to ``out``."""
    clock = time.perf_counter_ns
    tags = ml.tags
    for i in range(first, first + n):
        with tags(user_id=USER_IDS[i % USERS]):
            t0 = clock()
            call()
            out.append((clock() - t0) / 1000)


async def timed_async(
    call: Callable[[], Awaitable[Any]], n: int, first: int, out: list[float]
) -> None:
    clock = time.perf_counter_ns
    tags = ml.tags
    for i in range(first, first + n):
        with tags(user_id=USER_IDS[i % USERS]):
            t0 = clock()
            await call()
            out.append((clock() - t0) / 1000)


def added(times: dict[str, list[float]]) -> dict[str, float]:
    """One round's figures from each side's call times (µs)."""
    out = {
        "budgets, median": median(times["budgets"]) - median(times["no budgets"]),
        "budgets, p99": p99(times["budgets"]) - p99(times["no budgets"]),
        "wrapper, median": median(times["no budgets"]) - median(times["bare"]),
        "wrapper, p99": p99(times["no budgets"]) - p99(times["bare"]),
    }
    if YARDSTICK in times:
        out["yardstick, median"] = median(times[YARDSTICK]) - median(times["bare"])
    return out


def order(block: int, sides: Sequence[str]) -> list[str]:
    """The sides of one set of blocks: the two wrappers swap places every other set."""
    sides = list(sides)
    if block % 2:
        i, j = sides.index("no budgets"), sides.index("budgets")
        sides[i], sides[j] = sides[j], sides[i]
    return sides


def priced_us(records: Sequence[Any]) -> list[float]:
    clock = time.perf_counter_ns
    out = []
    for record in records:
        t0 = clock()
        record.priced()
        out.append((clock() - t0) / 1000)
    return out


class SyncSides:
    """The sync client bare, wrapped, and wrapped with budgets; one writer thread. Also
    the yardstick of sync_overhead.py (two clocks, a slots record, a deque append), to
    scale the figures to the machine where the targets were set."""

    def __init__(self, tmp: Path) -> None:
        db, storage = f"sqlite:///{tmp / 'sync.db'}", str(tmp / "bodies")
        self.client = fake_openai(None)
        common: dict[str, Any] = {"api_key_alias": KEY_ALIAS, "spool": tmp / "spool", **BIG_QUEUE}
        self.plain = ml.LoggingLLM(self.client, db, storage, **common)
        self.guarded = ml.LoggingLLM(self.client, db, storage, budgets=budgets(), **common)
        assert self.plain._writer is self.guarded._writer  # one writer for both
        self.calls = {
            "bare": _call(self.client.chat.completions.create),
            "no budgets": _call(self.plain.chat.completions.create),
            "budgets": _call(self.guarded.chat.completions.create),
        }
        self.minimal = MinimalWrapper(self.client.chat.completions.create)
        self.calls[YARDSTICK] = _call(self.minimal.create)

    def one_round(self, calls: int) -> dict[str, float]:
        sides = (*SIDES, YARDSTICK)
        times: dict[str, list[float]] = {side: [] for side in sides}
        for block in range(calls // BLOCK):
            for side in order(block, sides):
                timed(self.calls[side], BLOCK, block * BLOCK, times[side])
            self.plain.flush()
            self.minimal.drain()
        return added(times)

    def priced(self) -> list[float]:
        """``record.priced()`` µs over PRICED new records of the wrapper without budgets."""
        self.plain.flush()
        front = self.plain._writer
        records: list[Any] = []
        front.submit = records.append  # kept here, not queued
        try:
            timed(self.calls["no budgets"], PRICED, 0, [])
        finally:
            del front.submit
        return priced_us(records)

    def check(self) -> None:
        """Every budget counted the calls, and none refused one."""
        guard = self.guarded._guard
        assert guard.blocked == 0, guard.blocked
        for ledger in guard.ledgers:
            assert ledger.tallies, ledger.budget.name

    def close(self) -> Any:
        self.guarded.close()
        return self.plain.close()


class AsyncSides:
    """The async client bare, wrapped, and wrapped with budgets; the writer on this loop."""

    @classmethod
    async def create(cls, tmp: Path) -> AsyncSides:
        self = cls()
        db = await ml.SqliteAdapter.create(tmp / "async.db")
        storage = await ml.FileStorageAdapter.create(tmp / "async-bodies", mode="segment")
        self.client = stage_instructions._openai_client()
        common: dict[str, Any] = {"api_key_alias": KEY_ALIAS, "spool": tmp / "async-spool"}
        self.plain = ml.LoggingLLM(self.client, db, storage, **common, **BIG_QUEUE)
        self.guarded = ml.LoggingLLM(
            self.client, db, storage, budgets=budgets(), **common, **BIG_QUEUE
        )
        self.calls = {
            "bare": _call(self.client.chat.completions.create),
            "no budgets": _call(self.plain.chat.completions.create),
            "budgets": _call(self.guarded.chat.completions.create),
        }
        return self

    async def one_round(self, calls: int) -> dict[str, float]:
        times: dict[str, list[float]] = {side: [] for side in SIDES}
        for block in range(calls // BLOCK):
            for side in order(block, SIDES):
                await timed_async(self.calls[side], BLOCK, block * BLOCK, times[side])
            await self.plain.flush()
        return added(times)

    async def close(self) -> Any:
        assert self.guarded._guard.blocked == 0
        await self.guarded.close()
        return await self.plain.close()


async def run(rounds: int = 5, quick: bool = False) -> list[dict[str, Any]]:
    calls = CALLS_QUICK if quick else CALLS
    tmp = Path(tempfile.mkdtemp(prefix="bench-budget-overhead-"))
    sync = await asyncio.to_thread(SyncSides, tmp)
    async_sides = await AsyncSides.create(tmp)
    figures: dict[str, list[float]] = {}
    priced: list[float] = []
    priced_p99: list[float] = []
    try:
        # warm-up: every user's tally made, price tables and caches loaded
        await asyncio.to_thread(sync.one_round, max(BLOCK, USERS))
        await async_sides.one_round(max(BLOCK, USERS))
        for _ in range(rounds):
            for key, value in (await asyncio.to_thread(sync.one_round, calls)).items():
                figures.setdefault(f"sync, {key}", []).append(value)
            for key, value in (await async_sides.one_round(calls)).items():
                figures.setdefault(f"async, {key}", []).append(value)
            times = await asyncio.to_thread(sync.priced)
            priced.append(median(times))
            priced_p99.append(p99(times))
        await asyncio.to_thread(sync.check)
    finally:
        sync_stats = await asyncio.to_thread(sync.close)
        async_stats = await async_sides.close()
    lost = sum(s.dropped + s.spilled + s.failed for s in (sync_stats, async_stats))
    note = (
        f"{sync_stats.written + async_stats.written:,} records written, "
        f"{lost} dropped/spilled/refused, 0 blocked"
    )
    out = []
    for mode, client in (("sync", "1 thread"), ("async", "one loop")):
        out.append(
            result(
                SCENARIO,
                f"added by budgets per call, {mode}, {client}, hot path, median",
                figures[f"{mode}, budgets, median"],
                "µs",
                at_most=5,
                note=f"median(budgets) - median(no budgets), per round; {note}",
            )
        )
        out.append(
            result(
                SCENARIO,
                f"added by budgets per call, {mode}, {client}, hot path, p99",
                figures[f"{mode}, budgets, p99"],
                "µs",
            )
        )
        out.append(
            result(
                SCENARIO,
                f"added by the wrapper without budgets, {mode}, median",
                figures[f"{mode}, wrapper, median"],
                "µs",
                note="for scale: median(no budgets) - median(bare), same rounds",
            )
        )
    yardstick = figures["sync, yardstick, median"]
    out.append(result(SCENARIO, "minimal wrapper (yardstick), sync, median", yardstick, "µs"))
    out.append(
        result(
            SCENARIO,
            "added by budgets per call, sync, median, scaled to the targets' machine",
            [
                b * REFERENCE_MINIMAL_US / y
                for b, y in zip(figures["sync, budgets, median"], yardstick, strict=True)
            ],
            "µs",
            note=f"x {REFERENCE_MINIMAL_US} µs / the yardstick, per round (as sync_overhead.py)",
        )
    )
    out.append(
        result(
            SCENARIO,
            "record.priced() alone, the reply, median",
            priced,
            "µs",
            note=f"each of {PRICED} records timed alone; on the caller's thread under budgets",
        )
    )
    out.append(result(SCENARIO, "record.priced() alone, the reply, p99", priced_p99, "µs"))
    return out


# -- the instruction counts (runs valgrind) -----------------------------------------------

# Each probe's operations are counted twice, LOW then HIGH of them, each time on a thread
# of its own: every thread is started (and waits) before anything else, so callgrind
# numbers them 2, 3, ... in order (1 is the main thread, which builds and warms each
# probe's wrapper). One valgrind run counts a group of probes (see the docstring).
LOW, HIGH = 200, 1_200
WARM_CALLS = USERS + 200  # every user's tally exists before counting


class _Counted:
    """A thread that waits, runs one piece of work when given it, then waits forever
    (never exiting: callgrind would give its number to the next thread started)."""

    def __init__(self) -> None:
        self._go = threading.Event()
        self._done = threading.Event()
        self._work: Callable[[], Any] | None = None
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        self._go.wait()
        assert self._work is not None
        self._work()
        self._done.set()
        threading.Event().wait()

    def run(self, work: Callable[[], Any]) -> None:
        gc.collect()
        gc.freeze()  # everything made so far (records queued before) out of the collector's way
        self._work = work
        self._go.set()
        self._done.wait()


def _quiet(client: Any, db: Any, storage: Any, guarded: bool) -> Any:
    """A wrapper whose writer never drains while the driver runs (sync_overhead.py's
    settings), with or without the budgets."""
    return ml.LoggingLLM(
        client,
        db,
        storage,
        api_key_alias=KEY_ALIAS,
        budgets=budgets() if guarded else (),
        spool=False,
        batch_size=10**9,
        flush_interval=3600,
        max_queue_records=10**9,
        max_queue_bytes=10**12,
    )


def _calls(create: Callable[..., Any]) -> Callable[[int], None]:
    def calls(count: int) -> None:
        tags = ml.tags
        for i in range(count):
            with tags(user_id=USER_IDS[i % USERS]):
                create(model="gpt-4o", messages=MESSAGES)

    return calls


def _sync_probe(probe: str, workdir: Path) -> Callable[[int], None]:
    """``count`` -> that many of the probe's operations; the wrapper built and warmed."""
    db = f"sqlite:///{workdir / probe}.db"
    llm = _quiet(fake_openai(None), db, str(workdir / probe), guarded=probe != "wrapped")
    guard = llm._guard
    if probe in ("charge_only", "priced_only"):
        guard.check = lambda record, request: None
    if probe == "check_only":
        guard.charge = lambda record: None
    elif probe == "priced_only":
        guard.charge = lambda record: record.priced()
    calls = _calls(llm.chat.completions.create)
    calls(WARM_CALLS)
    return calls


def _priced_probe(workdir: Path) -> Callable[[int], None]:
    llm = _quiet(fake_openai(None), f"sqlite:///{workdir / 'priced.db'}", None, guarded=False)
    records: list[Any] = []
    llm._writer.submit = records.append  # kept, not queued
    _calls(llm.chat.completions.create)(WARM_CALLS + LOW + HIGH)
    for record in records[:WARM_CALLS]:
        record.priced()
    unpriced = iter(records[WARM_CALLS:])

    def price(count: int) -> None:
        for _ in range(count):
            next(unpriced).priced()

    return price


def _async_probe(probe: str, workdir: Path) -> Callable[[int], None]:
    """The async wrapper on a loop of its own, run by whichever thread makes the calls."""
    loop = asyncio.new_event_loop()

    async def build() -> Any:
        db = await ml.SqliteAdapter.create(workdir / f"{probe}.db")
        return _quiet(stage_instructions._openai_client(), db, None, probe == "async_budgets")

    llm = loop.run_until_complete(build())
    create = llm.chat.completions.create

    async def calls(count: int) -> None:
        tags = ml.tags
        for i in range(count):
            with tags(user_id=USER_IDS[i % USERS]):
                await create(model="gpt-4o", messages=MESSAGES)

    loop.run_until_complete(asyncio.sleep(0.2))  # the budgets' preload, on this loop
    loop.run_until_complete(calls(WARM_CALLS))
    loop.run_until_complete(asyncio.sleep(0.2))  # the reconciler's reads of the new tallies
    return lambda count: loop.run_until_complete(calls(count))


class _Pieces:
    """The parts of ``check``, ``charge`` and ``priced()``, each repeated alone (probes
    named ``piece:NAME``). Over 1,000 priced records of the wrapper without budgets (one
    per user, each already charged once: its tallies exist), cycled through; a budget
    guard of its own (the same budgets, on its own store)."""

    def __init__(self, workdir: Path) -> None:
        from majordomo_log.budgets.charge import completed_cost
        from majordomo_log.budgets.fleet import to_units
        from majordomo_log.budgets.guard import _amount_of
        from majordomo_log.record.billing import read_billing
        from majordomo_log.record.prices_compiled import amounts
        from majordomo_log.record.tool_calls import count_tool_calls
        from majordomo_log.record.usage_shapes import fast_buckets

        plain = _quiet(fake_openai(None), f"sqlite:///{workdir / 'pieces.db'}", None, False)
        guarded = _quiet(fake_openai(None), f"sqlite:///{workdir / 'guard.db'}", None, True)
        guard = guarded._guard
        records: list[Any] = []
        plain._writer.submit = records.append  # kept, not queued
        _calls(plain.chat.completions.create)(USERS + WARM_CALLS + 2 * (LOW + HIGH))
        first_fresh = USERS + WARM_CALLS
        # read_response and completed_cost: one unread record per op, each its own
        fresh = iter(records[first_fresh : first_fresh + LOW + HIGH])
        fresh_cost = iter(records[first_fresh + LOW + HIGH :])
        for record in records[USERS : USERS + WARM_CALLS]:
            record.read_response()
        done = records[:USERS]
        for record in done:
            guard.charge(record)  # priced here; every tally made
        first = done[0]
        usage, cost, _ = first.priced()
        raw, response, started = first.usage, first.response, first.started_at
        prices = first.ctx.prices
        entry = prices.resolve(first.served_model)
        rates = prices._compiled[next(iter(prices._compiled))].rates
        buckets = fast_buckets(raw, "openai")
        assert buckets is not None and rates is not None
        assert amounts(rates, *buckets)[5] == cost.total, "not the reply's price"
        request = {"model": "gpt-4o", "messages": MESSAGES}
        by_unit = {ledger.budget.unit: ledger for ledger in guard.ledgers}
        user = by_unit["usd"]
        values = [guard.scope_value(user.budget, r) for r in done]
        tallies = [user.tally(v, started)[0] for v in values]
        units = to_units(cost.total, "usd")

        def add(i: int) -> None:
            with user.lock:
                tallies[i].spent += units

        self.ops: dict[str, Callable[[int], Any]] = {
            "empty": lambda i: None,
            "check": lambda i: guard.check(done[i], request),
            "charge (priced already)": lambda i: guard.charge(done[i]),
            "scope_value (user_id)": lambda i: guard.scope_value(user.budget, done[i]),
            "scope_value (api_key_alias)": lambda i: guard.scope_value(
                by_unit["requests"].budget, done[i]
            ),
            "scope_value (unscoped)": lambda i: guard.scope_value(
                by_unit["tokens"].budget, done[i]
            ),
            "ledger.tally": lambda i: user.tally(values[i], started),
            "lock + add": add,
            "completed_cost": lambda i: completed_cost(next(fresh_cost)),
            "crossed": lambda i: guard.crossed(user, values[i], tallies[i]),
            "_amount_of (usd)": lambda i: _amount_of("usd", usage, units),
            "_amount_of (tokens)": lambda i: _amount_of("tokens", usage, units),
            "_amount_of (requests)": lambda i: _amount_of("requests", usage, units),
            "priced: read_response": lambda i: next(fresh).read_response(),
            "priced: count_tool_calls": lambda i: count_tool_calls(response),
            "priced: normalized_usage": lambda i: done[i].normalized_usage(),
            "priced: read_billing": lambda i: read_billing(response, raw, None, entry),
            "priced: cost_at": lambda i: prices.cost_at(entry, usage, started),
            "fast_buckets (usage_shapes.py)": lambda i: fast_buckets(raw, "openai"),
            "amounts (prices_compiled.py)": lambda i: amounts(rates, *buckets),
        }

    def probe(self, name: str) -> Callable[[int], None]:
        op = self.ops[name]  # names have no commas: probes are given comma-separated

        def run(count: int) -> None:
            for i in range(count):
                op(i % USERS)

        return run


PIECES = tuple(
    f"piece:{name}"
    for name in (
        "empty",
        "check",
        "charge (priced already)",
        "scope_value (user_id)",
        "scope_value (api_key_alias)",
        "scope_value (unscoped)",
        "ledger.tally",
        "lock + add",
        "completed_cost",
        "crossed",
        "_amount_of (usd)",
        "_amount_of (tokens)",
        "_amount_of (requests)",
        "priced: read_response",
        "priced: count_tool_calls",
        "priced: normalized_usage",
        "priced: read_billing",
        "priced: cost_at",
        "fast_buckets (usage_shapes.py)",
        "amounts (prices_compiled.py)",
    )
)


def child(probes: Sequence[str]) -> None:
    """Count ``probes`` (see LOW, HIGH above): thread 2 + 2 i makes probe i's LOW
    operations, thread 3 + 2 i its HIGH ones."""
    assert len(os.listdir("/proc/self/task")) == 1, "a thread was started before the probes'"
    threads = [_Counted() for _ in range(2 * len(probes))]
    from majordomo_log import _loop_turns

    _loop_turns._WORK_SECONDS = float("inf")  # as stage_instructions.py: no loop turns
    workdir = Path.cwd()
    pieces: _Pieces | None = None
    for i, probe in enumerate(probes):
        if probe.startswith("piece:"):
            pieces = pieces or _Pieces(workdir)
            op = pieces.probe(probe.removeprefix("piece:"))
        elif probe == "priced":
            op = _priced_probe(workdir)
        elif probe.startswith("async_"):
            op = _async_probe(probe, workdir)
        else:
            op = _sync_probe(probe, workdir)
        threads[2 * i].run(lambda op=op: op(LOW))
        threads[2 * i + 1].run(lambda op=op: op(HIGH))
    os._exit(0)  # no teardown: closing would write the queued records


# One valgrind each, run in parallel.
GROUPS = (
    ("wrapped", "budgets", "check_only", "charge_only"),
    ("priced_only", "priced", "async_wrapped", "async_budgets"),
    PIECES,
)
PROBES = tuple(probe for group in GROUPS for probe in group)


def count_group(probes: Sequence[str]) -> dict[str, Any]:
    """One valgrind run of ``child(probes)``: instructions per operation of each probe."""
    totals, _ = sync_overhead.thread_totals(",".join(probes), HIGH, Path(__file__).resolve())
    out = {}
    for i, probe in enumerate(probes):
        low, high = totals[2 + 2 * i], totals[3 + 2 * i]
        out[probe] = {"caller": (high - low) / (HIGH - LOW), "totals": [low, high]}
    return out


def instructions(probes: Sequence[str]) -> dict[str, Any]:
    groups = [[p for p in group if p in probes] for group in GROUPS]
    groups = [group for group in groups if group]
    for group in groups:  # bytecode caches written, and the driver works, before counting
        with tempfile.TemporaryDirectory() as workdir:
            command = sync_overhead._child_command(",".join(group), HIGH, Path(__file__).resolve())
            subprocess.run(command, cwd=workdir, env=sync_overhead._child_env(), check=True)
    with ThreadPoolExecutor(len(groups)) as pool:
        counted = list(pool.map(count_group, groups))
    return {probe: figures for group in counted for probe, figures in group.items()}


def instruction_report(per_call: dict[str, Any]) -> str:
    def caller(probe: str) -> float:
        return float(per_call[probe]["caller"])

    def k(value: float) -> str:
        return f"{value / 1000:,.1f}k"

    rows = []
    pairs = (
        ("sync: budgets - no budgets", "budgets", "wrapped"),
        ("sync: check only - no budgets", "check_only", "wrapped"),
        ("sync: charge only - no budgets", "charge_only", "wrapped"),
        ("sync: record.priced() in charge's place - no budgets", "priced_only", "wrapped"),
        (
            "sync: charge's tallies and thresholds (charge only - priced only)",
            "charge_only",
            "priced_only",
        ),
        ("async: budgets - no budgets", "async_budgets", "async_wrapped"),
    )
    for label, a, b in pairs:
        if a in per_call and b in per_call:
            rows.append((label, caller(a) - caller(b)))
    for probe, label in (
        ("wrapped", "sync wrapper without budgets, whole call (bare call and tags included)"),
        ("budgets", "sync wrapper with budgets, whole call"),
        ("async_wrapped", "async wrapper without budgets, whole call"),
        ("async_budgets", "async wrapper with budgets, whole call"),
        ("priced", "record.priced() alone, the reply"),
    ):
        if probe in per_call:
            rows.append((label, caller(probe)))
    if "piece:empty" in per_call:
        empty = caller("piece:empty")
        for probe in PIECES[1:]:
            if probe in per_call:
                rows.append((f"{probe} (minus an empty loop turn)", caller(probe) - empty))
    lines = ["| instructions per call, caller's thread | figure |", "|---|---:|"]
    lines += [f"| {label} | {k(value)} |" for label, value in rows]
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
        print(f"LOW {LOW}, HIGH {HIGH}; callgrind --separate-threads=yes", flush=True)
        started = time.monotonic()
        per_call = instructions(probes)
        print(f"({time.monotonic() - started:.0f} s)")
        print()
        print(instruction_report(per_call))
        if args.json:
            args.json.write_text(json.dumps(per_call, indent=1) + "\n")
        return
    rows = asyncio.run(run(args.rounds, quick=not args.full))
    for row in rows:
        runs = ", ".join(f"{r:g}" for r in row["runs"])
        print(f"{row['metric']:<72} {row['value']:>8.2f} {row['unit']:<3} [{runs}]")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":  # --child PROBES HIGH
        assert int(sys.argv[3]) == HIGH
        child(sys.argv[2].split(","))
    else:
        main()
