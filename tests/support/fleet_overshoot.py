"""A fleet of processes sharing one hard budget, run to exhaustion: how far past the
limit does the fleet spend? Used by tests/budgets/test_fleet_overshoot.py and
bench/budget_overshoot.py.

Each of ``processes`` real processes wraps a fake OpenAI client (every call costs
``CALL_COST`` and takes ``latency`` seconds at the provider) with one shared hard budget
of ``limit_calls`` calls' worth of dollars, logging to one PostgreSQL schema, and calls
in a loop until the budget refuses (``ml.BudgetExceeded``). All start together. The
spend is then read from the store: ``SUM(total_cost)`` of the ``ok`` rows.

With ``budget_store=redis://...`` each process sees the others' spend within a round
trip; without, only through the store, read back every few seconds (the reconciler).

Run as a script (``python fleet_overshoot.py --worker CONFIG``) it is one worker.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parents[2]
MODEL = "gpt-4o-mini"  # $0.15 per million input tokens, $0.60 per million output tokens
USAGE = {"prompt_tokens": 1000, "completion_tokens": 100}
CALL_COST = Decimal("0.00021")  # 1000 × 0.15e-6 + 100 × 0.60e-6
WORKER_DEADLINE = 90.0  # a worker still not refused by then reports it and stops


@dataclass
class FleetResult:
    """One run: what the fleet spent against its limit, and how each process ended."""

    processes: int
    limit_calls: int
    with_redis: bool
    ok_calls: int = 0  # rows with status 'ok' in the store
    spend: Decimal = Decimal(0)  # their SUM(total_cost)
    blocked_rows: int = 0
    workers: list[dict[str, Any]] = field(default_factory=list)

    @property
    def limit(self) -> Decimal:
        return CALL_COST * self.limit_calls

    @property
    def overshoot_usd(self) -> Decimal:
        return self.spend - self.limit

    @property
    def overshoot_calls(self) -> Decimal:
        return self.overshoot_usd / CALL_COST

    @property
    def all_blocked(self) -> bool:
        return len(self.workers) == self.processes and all(w["blocked"] for w in self.workers)

    def calls(self) -> list[tuple[float, float]]:
        """(start, end) of every call let through, across the fleet, by start."""
        return sorted((start, end) for w in self.workers for start, end in w["trace"])

    @property
    def in_flight_at_limit(self) -> int:
        """Calls under way when the fleet's spend reached the limit (the limit-th call
        ended): the overshoot no counter can prevent, one per other process at most."""
        calls = self.calls()
        ends = sorted(end for _, end in calls)
        if len(ends) < self.limit_calls:
            return 0
        reached = ends[self.limit_calls - 1]
        return sum(1 for start, end in calls if start < reached < end)

    @property
    def late_starts(self) -> int:
        """Calls let through after the limit was reached: their check saw a figure without
        the last calls (at most one per other process when each check reads the counter:
        its call in flight or its add on the way)."""
        calls = self.calls()
        ends = sorted(end for _, end in calls)
        if len(ends) < self.limit_calls:
            return 0
        return sum(1 for start, _ in calls if start > ends[self.limit_calls - 1])

    @property
    def seconds_to_block(self) -> float:
        """From the start signal to the last process refused."""
        return max((w["seconds"] for w in self.workers), default=float("nan"))

    def summary(self) -> dict[str, Any]:
        return {
            **{k: v for k, v in asdict(self).items() if k not in ("workers", "spend")},
            "spend": str(self.spend),
            "limit": str(self.limit),
            "overshoot_usd": str(self.overshoot_usd),
            "overshoot_calls": float(self.overshoot_calls),
            "all_blocked": self.all_blocked,
            "in_flight_at_limit": self.in_flight_at_limit,
            "late_starts": self.late_starts,
            "fleet_reads": sum((w["counter"] or {}).get("reads", 0) for w in self.workers),
            "seconds_to_block": round(self.seconds_to_block, 3),
        }


def run_fleet(
    postgres_url: str,
    redis_url: str | None,
    *,
    processes: int = 20,
    limit_calls: int = 100,
    latency: float = 0.01,
    read_every_call: bool = False,
) -> FleetResult:
    """Run the fleet once, on a schema and budget name of its own (dropped afterwards)."""
    run = uuid.uuid4().hex[:12]
    schema = f"mdl_overshoot_{run}"
    budget_name = f"overshoot-{run}"
    db_url = _with_query(postgres_url, schema=schema)
    asyncio.run(_migrate(db_url))  # once, before the workers open it
    result = FleetResult(processes, limit_calls, redis_url is not None)
    config = {
        "db": db_url,
        "redis": redis_url,
        "budget": budget_name,
        "limit": str(CALL_COST * limit_calls),
        "latency": latency,
        "read_every_call": read_every_call,
    }
    try:
        result.workers = _run_workers(config, processes)
        result.ok_calls, result.spend, result.blocked_rows = asyncio.run(_measure(db_url))
    finally:
        asyncio.run(_drop(postgres_url, schema))
        if redis_url is not None:
            _forget_counter(redis_url, budget_name)
    return result


def _run_workers(config: dict[str, Any], processes: int) -> list[dict[str, Any]]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    workers = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", json.dumps(config)],
            env={**os.environ, "PYTHONPATH": path},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        for worker in workers:  # built, store preloaded, Redis connected
            assert worker.stdout is not None
            line = worker.stdout.readline()
            if line != "ready\n":
                raise RuntimeError(f"a worker did not start: {line!r} {worker.communicate()[1]}")
        for worker in workers:  # then all at once
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        reports = []
        for worker in workers:
            out, err = worker.communicate(timeout=WORKER_DEADLINE + 60)
            if worker.returncode != 0:
                raise RuntimeError(f"a worker failed ({worker.returncode}): {err[-2000:]}")
            reports.append(json.loads(out.strip().splitlines()[-1]))
        return reports
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()


async def _migrate(db_url: str) -> None:
    import majordomo_log as ml

    db = await ml.open_db(db_url)
    await db.close()


async def _measure(db_url: str) -> tuple[int, Decimal, int]:
    import majordomo_log as ml

    db = await ml.open_db(db_url, read_only=True)
    try:
        ok = await db.fetch(
            "SELECT COUNT(*) AS n, SUM(total_cost) AS spend FROM llm_requests WHERE status = 'ok'"
        )
        blocked = await db.fetch("SELECT COUNT(*) AS n FROM llm_requests WHERE status = 'blocked'")
    finally:
        await db.close()
    return int(ok[0]["n"]), Decimal(str(ok[0]["spend"] or 0)), int(blocked[0]["n"])


async def _drop(postgres_url: str, schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def _forget_counter(redis_url: str, budget_name: str) -> None:
    import redis

    from majordomo_log.budgets.fleet import counter_key
    from majordomo_log.budgets.periods import EPOCH

    client = redis.Redis.from_url(redis_url)
    try:
        client.delete(counter_key(budget_name, (), EPOCH))
    finally:
        client.close()


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return parts._replace(query=query).geturl()


def _read_fleet_before_every_call() -> None:
    """The what-if of bench/budget_overshoot.py: the guard reads the fleet counter before
    every call, not only once its tally is near the limit (its near-limit share set to
    zero, wherever this version of the guard keeps it)."""
    import majordomo_log.budgets.guard as guard_module
    import majordomo_log.budgets.ledger as ledger_module

    patched = [m for m in (guard_module, ledger_module) if hasattr(m, "NEAR_LIMIT")]
    if not patched:
        raise RuntimeError("the guard keeps its near-limit share elsewhere now: update this")
    for module in patched:
        module.NEAR_LIMIT = Decimal(0)  # type: ignore[attr-defined]


def worker(config: dict[str, Any]) -> None:
    """One process of the fleet: call until refused, then report as a JSON line."""
    import majordomo_log as ml
    from majordomo_log.testing import FakeProvider, fake_sync_openai_client

    if config["read_every_call"]:
        _read_fleet_before_every_call()
    provider = FakeProvider(openai_usage=USAGE, first_chunk_delay=config["latency"])  # type: ignore[typeddict-item]
    budget = ml.Budget(config["limit"], per="total", hard=True, name=config["budget"])
    llm = ml.LoggingLLM(
        fake_sync_openai_client(provider),
        config["db"],
        budgets=[budget],
        alerts=[],
        budget_store=config["redis"],
    )
    print("ready", flush=True)
    sys.stdin.readline()
    began = time.monotonic()
    ok = 0
    refusal: ml.BudgetExceeded | None = None
    trace = []  # (start, end) of each call let through, Unix time
    while time.monotonic() - began < WORKER_DEADLINE:
        try:
            t0 = time.time()
            llm.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
            trace.append((t0, time.time()))
            ok += 1
        except ml.BudgetExceeded as exc:
            refusal = exc
            break
    seconds = time.monotonic() - began
    counter_stats = None
    if config["redis"] is not None:
        from majordomo_log.budgets.redis_counter import fleet_counter

        counter = fleet_counter(config["redis"])
        counter_stats = counter.stats()  # type: ignore[union-attr]
    llm.close()
    report = {
        "ok": ok,
        "blocked": refusal is not None,
        "seconds": seconds,
        "spend_seen": None if refusal is None else str(refusal.spend),
        "trace": trace,
        "counter": counter_stats,
    }
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] != ["--worker"]:
        raise SystemExit("usage: fleet_overshoot.py --worker CONFIG_JSON")
    worker(json.loads(sys.argv[2]))
