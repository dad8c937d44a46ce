"""How far past a hard budget a fleet spends: 20 real processes share one budget of 100
calls' worth of dollars on one PostgreSQL store and call until refused
(tests/support/fleet_overshoot.py runs them; bench/budget_overshoot.py prints the
figures over several runs).

With ``budget_store="redis://..."`` the fleet must stop within the calls in flight when
the limit is reached: at most one per process, 20 calls' cost (this holds when every
call reads the counter first; the guard's own rule, which reads only near the limit,
does not hold it yet: see the xfail). Without Redis the
processes learn the others' spend only from the store, every few seconds: every
process must still end refused, and how far past the limit the fleet went is recorded,
not bounded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fleet_overshoot import CALL_COST, FleetResult, run_fleet
from servers import require

pytestmark = pytest.mark.servers

PROCESSES = 20
LIMIT_CALLS = 100


@pytest.fixture(scope="module")
def with_redis() -> FleetResult:
    """One run with Redis, shared by the tests that look at it (a run takes ~20 s)."""
    return run_fleet(
        require("postgresql"), require("redis"), processes=PROCESSES, limit_calls=LIMIT_CALLS
    )


def test_with_redis_every_process_ends_refused(with_redis: FleetResult) -> None:
    assert with_redis.all_blocked, with_redis.summary()
    assert with_redis.blocked_rows == PROCESSES  # each refusal is a 'blocked' row
    assert with_redis.ok_calls >= LIMIT_CALLS  # the limit itself was reachable


@pytest.mark.xfail(
    strict=False,
    reason="budgets/guard.py lets calls through on a stale tally: it reads Redis before a "
    "call only once its tally is at 80% of the limit (or a second old), and the fleet can "
    "spend more than that 20% margin during one call (20 processes x 1 call each), so "
    "calls pass after the limit is reached: 14 to 47 calls over in 13 runs (median 24) "
    "on a loaded machine. Reading before every call holds the bound (the test below).",
)
def test_with_redis_the_fleet_stops_within_the_calls_in_flight(
    with_redis: FleetResult, record_property: Callable[[str, Any], None]
) -> None:
    record_property("overshoot_calls", float(with_redis.overshoot_calls))
    assert with_redis.overshoot_usd <= CALL_COST * PROCESSES, with_redis.summary()


def test_with_redis_read_before_every_call_the_fleet_stops_within_the_calls_in_flight(
    record_property: Callable[[str, Any], None],
) -> None:
    """The fleet counter's part of the bound: each read counts its own process's adds
    (read your writes), so a fleet that reads before every call has at most one call
    per process unseen, in flight or just completed. (The guard made to read before
    every call: tests/support/fleet_overshoot.py's ``read_every_call``.)"""
    result = run_fleet(
        require("postgresql"), require("redis"), processes=PROCESSES,
        limit_calls=LIMIT_CALLS, read_every_call=True,
    )  # fmt: skip
    record_property("overshoot_calls", float(result.overshoot_calls))
    assert result.all_blocked and result.blocked_rows == PROCESSES, result.summary()
    assert result.overshoot_usd <= CALL_COST * PROCESSES, result.summary()


def test_without_redis_every_process_ends_refused_by_the_stores_figures(
    record_property: Callable[[str, Any], None],
) -> None:
    result = run_fleet(
        require("postgresql"), None, processes=PROCESSES, limit_calls=LIMIT_CALLS
    )
    summary = result.summary()
    record_property("overshoot_calls", float(result.overshoot_calls))
    record_property("seconds_to_block", result.seconds_to_block)
    print(f"without Redis: {summary}")
    assert result.all_blocked, summary  # the reconciler's figures stopped every process
    assert result.blocked_rows == PROCESSES
    assert result.overshoot_usd >= 0, summary
