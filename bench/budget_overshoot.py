"""How far past a shared hard budget a fleet of processes spends, with and without Redis.

    .venv/bin/python bench/budget_overshoot.py [--runs 3] [--processes 20] [--limit-calls 100]
                                               [--latency 0.01] [--no-what-if] [--json FILE]
                                               [--only redis|store|what-if]

``processes`` real processes each wrap a fake OpenAI client (every call costs $0.00021
and takes ``latency`` seconds at the provider) under one hard budget of
``limit_calls`` calls' worth of dollars (``per="total"``), logging to one PostgreSQL
schema, and call until refused; they start together (tests/support/fleet_overshoot.py).
The overshoot is the store's ``SUM(total_cost)`` of the ``ok`` rows less the limit, in
dollars and in calls; the figure shown is the median of ``runs`` runs.

Scenarios:

* ``redis``: ``budget_store=`` the Redis of ``MAJORDOMO_TEST_REDIS_URL``; each process
  sees the others' spend through the fleet counter.
* ``store only``: no Redis; each process learns the others' spend from the store, read
  back every few seconds (budgets/reconcile.py).
* ``redis, read every call`` (the what-if, unless ``--no-what-if``): as ``redis``, with
  the guard reading the fleet counter before every call instead of only near the limit.

"in flight" is how many calls were under way when the limit-th call ended (the part no
counter can prevent); "late" is how many calls were let through after that (a check that
saw a stale figure). PostgreSQL and Redis as the tests find them
(``MAJORDOMO_TEST_POSTGRES_URL``, ``MAJORDOMO_TEST_REDIS_URL``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))  # servers.py, fleet_overshoot.py

from fleet_overshoot import CALL_COST, FleetResult, run_fleet  # noqa: E402
from servers import POSTGRES_URL, REDIS_URL, answers  # noqa: E402


def scenario(
    name: str, runs: int, redis_url: str | None, read_every_call: bool, args: argparse.Namespace
) -> dict[str, Any]:
    results: list[FleetResult] = []
    for run in range(runs):
        began = time.monotonic()
        options = dict(
            processes=args.processes,
            limit_calls=args.limit_calls,
            latency=args.latency,
            read_every_call=read_every_call,
        )
        try:
            result = run_fleet(POSTGRES_URL, redis_url, **options)
        except RuntimeError as exc:  # a worker that could not start: the run is void
            print(f"  {name} run {run + 1} void, run again: {str(exc)[:300]}", file=sys.stderr)
            result = run_fleet(POSTGRES_URL, redis_url, **options)
        results.append(result)
        print(
            f"  {name} run {run + 1}: {float(result.overshoot_calls):+.0f} calls "
            f"(${result.overshoot_usd}), in flight {result.in_flight_at_limit}, "
            f"late {result.late_starts}, all refused: {result.all_blocked}, "
            f"last refused after {result.seconds_to_block:.2f} s "
            f"({time.monotonic() - began:.0f} s with start-up)",
            file=sys.stderr,
        )
    return {
        "scenario": name,
        "runs": [r.summary() for r in results],
        "overshoot_calls": statistics.median(float(r.overshoot_calls) for r in results),
        "overshoot_usd": str(statistics.median(r.overshoot_usd for r in results)),
        "in_flight_at_limit": statistics.median(r.in_flight_at_limit for r in results),
        "late_starts": statistics.median(r.late_starts for r in results),
        "seconds_to_block": statistics.median(r.seconds_to_block for r in results),
        "all_blocked": all(r.all_blocked for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--processes", type=int, default=20)
    parser.add_argument("--limit-calls", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.01)
    parser.add_argument("--no-what-if", action="store_true")
    parser.add_argument(
        "--only", choices=("redis", "store", "what-if"), help="run this scenario alone"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if not answers(POSTGRES_URL):
        raise SystemExit("no PostgreSQL answers: set MAJORDOMO_TEST_POSTGRES_URL")
    redis_url = REDIS_URL if answers(REDIS_URL) else None
    plan: list[tuple[str, str | None, bool]] = [("store only", None, False)]
    if redis_url is None:
        print("no Redis answers (MAJORDOMO_TEST_REDIS_URL): store only", file=sys.stderr)
    else:
        plan.insert(0, ("redis", redis_url, False))
        if not args.no_what_if:
            plan.append(("redis, read every call", redis_url, True))
    if args.only is not None:
        names = {"redis": "redis", "store": "store only", "what-if": "redis, read every call"}
        plan = [step for step in plan if step[0] == names[args.only]]
    figures = [scenario(name, args.runs, url, every, args) for name, url, every in plan]

    limit = CALL_COST * args.limit_calls
    print(
        f"\n{args.processes} processes, one hard budget of {args.limit_calls} calls "
        f"(${limit}), {args.latency * 1000:.0f} ms per call; median of {args.runs} runs\n"
    )
    print(f"{'scenario':<24} {'over, calls':>11} {'over, $':>12} {'in flight':>9} "
          f"{'late':>5} {'refused after':>13} {'all refused':>11}")  # fmt: skip
    for f in figures:
        print(
            f"{f['scenario']:<24} {f['overshoot_calls']:>11.0f} {f['overshoot_usd']:>12} "
            f"{f['in_flight_at_limit']:>9.0f} {f['late_starts']:>5.0f} "
            f"{f['seconds_to_block']:>12.2f}s {('yes' if f['all_blocked'] else 'NO'):>11}"
        )
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
