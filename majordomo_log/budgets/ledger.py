"""What each budget has counted: a ``Tally`` per scope value and period, in memory.

One ``Ledger`` per budget per metadata store, shared by every wrapper of the process
that enforces that budget on that store (``ledger_for``): an application wrapping an
OpenAI and an Anthropic client under one per-user budget counts both into one tally.

A tally's ``spent`` is the best view this process has of the period's spend: its own
calls, added as each completes, raised (never lowered) to what the store or the fleet
counter report (``budgets/reconcile.py``, ``budgets/redis_counter.py``). Raising to
the larger figure never counts a call twice (its own calls are in both figures, or
only in the local one while still queued); it can miss, until the next reconcile, the
smaller of its own calls still queued and other processes' calls since.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from decimal import Decimal
from typing import TYPE_CHECKING

from .._exceptions import ConfigError
from .fleet import to_units

if TYPE_CHECKING:
    from .budget import Budget, ScopeValue

# Tag values are attacker-controlled: a ledger keeps at most this many tallies, dropping
# the oldest (a dropped tally is read back from the store when its scope value returns).
MAX_TALLIES = 100_000
# ... and at most this many characters of scope values (a tag in the JSON column may be
# 64K characters long: 100,000 of those would be gigabytes).
MAX_VALUE_CHARS = 16_000_000
# When a hard budget has a fleet counter (Redis), a call whose tally is near its limit
# waits for the counter's figure first (budgets/guard.py). Near means any of: at this
# share of the limit or more; a fleet figure older than FRESH_SECONDS; or a fleet spending
# fast enough to reach the limit within HORIZON_SECONDS from the last figure. The last
# rule is what keeps the overshoot to the calls in flight when a fleet spends the margin
# faster than a process refreshes its figure (20 processes, 1% of the limit per call
# each). HORIZON_SECONDS is twice the staleness a figure may have without a read.
NEAR_LIMIT = Decimal("0.8")
FRESH_SECONDS = 1.0
HORIZON_SECONDS = 2.0
RATE_WINDOW = 0.05  # seconds between the two fleet figures a rate is taken from


class Tally:
    """One budget's count for one scope value in one period."""

    __slots__ = (
        "anchor_at",
        "anchor_units",
        "crossed",
        "end",
        "end_ts",
        "fleet_at",
        "fleet_rate",
        "reconciled",
        "spent",
        "start",
        "start_ts",
        "stored",
        "used",
    )

    def __init__(self, start: dt.datetime, end: dt.datetime | None) -> None:
        self.start = start
        self.end = end
        # compared with time.time() on every call: a float, not a datetime
        self.start_ts = start.timestamp()
        self.end_ts = float("inf") if end is None else end.timestamp()
        # In counter units (budgets/fleet.py: dollars as integers of 1e-10, tokens and
        # requests as they are): int arithmetic on the call's path, exact.
        self.spent = 0
        self.stored = 0  # the store's figure at the last reconcile
        self.crossed = 0  # how many of the budget's thresholds have alerted
        self.fleet_at = 0.0  # time.monotonic() of the last figure read from the fleet counter
        self.fleet_rate = 0.0  # the fleet's spend per second, in counter units
        self.anchor_at = 0.0  # the earlier figure the rate is measured from, and when
        self.anchor_units = 0
        self.reconciled = False
        self.used = False  # charged since the last reconcile: read again at the next one

    def saw_fleet(self, units: int, now: float) -> None:
        """A figure from the fleet counter (its integer units) at ``time.monotonic()``:
        freshness, and the fleet's rate over the last ``RATE_WINDOW`` or more."""
        self.fleet_at = now
        if self.anchor_at == 0.0:
            self.anchor_at, self.anchor_units = now, units
        elif now - self.anchor_at >= RATE_WINDOW:
            rate = max(0.0, (units - self.anchor_units) / (now - self.anchor_at))
            self.fleet_rate = rate if self.fleet_rate == 0.0 else (self.fleet_rate + rate) / 2
            self.anchor_at, self.anchor_units = now, units


class Ledger:
    """A budget's tallies, by scope value; the current period's only."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        unit = budget.unit
        # the limit, the near-limit mark and each threshold in counter units, computed once
        self.limit = to_units(budget.limit, unit)
        self.near = to_units(budget.limit * NEAR_LIMIT, unit)
        self.marks: tuple[int, ...] = tuple(
            to_units(budget.limit * Decimal(repr(t)), unit) for t in budget.thresholds
        )
        self.tallies: dict[ScopeValue, Tally] = {}
        self.chars = 0  # characters of the scope values kept
        self.lock = threading.Lock()  # charges come from any thread; checks only read

    def near_limit(self, tally: Tally) -> bool:
        """Whether a call under this tally should read the fleet counter first."""
        if tally.spent >= self.near:
            return True
        now = time.monotonic()
        if now - tally.fleet_at > FRESH_SECONDS or tally.anchor_at == 0.0:
            return True
        if tally.fleet_rate == 0.0 and now - tally.anchor_at < RATE_WINDOW:
            return True  # the fleet's rate is not known yet: it may be spending fast
        return tally.spent + tally.fleet_rate * HORIZON_SECONDS >= self.limit

    def tally(self, value: ScopeValue, at: float) -> tuple[Tally, bool]:
        """The tally of ``value`` for the period holding ``at``, and whether it is new (a
        new one starts at zero and is to be reconciled from the store)."""
        tally = self.tallies.get(value)
        if tally is not None and tally.start_ts <= at < tally.end_ts:
            return tally, False
        start, end = self.budget.bounds(at)
        with self.lock:
            tally = self.tallies.get(value)
            if tally is not None and tally.start == start:
                return tally, False
            if tally is not None and tally.start > start:
                # a call that started in the previous period, finishing after the turn:
                # counted in a tally of its own, not kept (the store has its row)
                return Tally(start, end), False
            if value in self.tallies:  # of a period that has ended
                self._drop(value)
            size = sum(map(len, value))
            if len(self.tallies) >= MAX_TALLIES or self.chars + size > MAX_VALUE_CHARS:
                self._forget(at)
            tally = self.tallies[value] = Tally(start, end)
            self.chars += size
            return tally, True

    def _drop(self, value: ScopeValue) -> None:
        del self.tallies[value]
        self.chars -= sum(map(len, value))

    def _forget(self, now: float) -> None:
        """Make room (under the lock): drop the tallies of periods that have ended, then
        the oldest, down to nine tenths of either cap."""
        for value in [v for v, t in self.tallies.items() if t.end_ts <= now]:
            self._drop(value)
        while self.tallies and (
            len(self.tallies) >= MAX_TALLIES * 9 // 10 or self.chars >= MAX_VALUE_CHARS * 9 // 10
        ):
            self._drop(next(iter(self.tallies)))

    def raise_to(self, value: ScopeValue, start: dt.datetime, figure: int) -> Tally | None:
        """Raise a tally to a figure counted elsewhere (the store, the fleet counter)."""
        with self.lock:
            tally = self.tallies.get(value)
            if tally is None or tally.start != start:
                return None
            if figure > tally.spent:
                tally.spent = figure
            return tally


_ledgers: dict[tuple[str, str], Ledger] = {}
_ledgers_lock = threading.Lock()


def ledger_for(store_url: str, budget: Budget) -> Ledger:
    """The process's ledger of ``budget`` on the store at ``store_url``. Two wrappers
    giving the same name to different budgets on one store is a configuration error:
    their rows could not be told apart by ``budgets status``."""
    key = (store_url, budget.name)
    with _ledgers_lock:
        ledger = _ledgers.get(key)
        if ledger is None:
            ledger = _ledgers[key] = Ledger(budget)
        elif ledger.budget != budget:
            raise ConfigError(
                f"two different budgets are named {budget.name!r} on {store_url}: "
                "give each its own name="
            )
        return ledger
