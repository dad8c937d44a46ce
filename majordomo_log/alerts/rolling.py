"""Bounded rolling statistics for the anomaly rules (``alerts/anomaly.py``).

Every structure here holds a fixed amount of memory however many calls go through it,
and costs O(1) amortised or O(its window) per value: the detector sees every call of a
busy process, and the keys it tracks (features, users) come from the application's
callers, so nothing may grow with traffic or with the number of distinct values.

Times are Unix seconds taken from the calls themselves, never from the wall clock, so
the same calls always give the same figures (and the tests need no clock).
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, insort
from collections import OrderedDict
from collections.abc import Callable
from decimal import Decimal
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class KeyedLRU(Generic[K, V]):
    """A mapping capped at ``max_keys`` entries: the least recently used is dropped to
    make room. Keys are tag values callers choose; the cap keeps a flood of distinct
    values (one per request, an attacker's) from holding memory without bound."""

    __slots__ = ("_entries", "evicted", "max_keys")

    def __init__(self, max_keys: int) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.max_keys = max_keys
        self.evicted = 0  # entries dropped for room, for stats
        self._entries: OrderedDict[K, V] = OrderedDict()

    def get_or_create(self, key: K, create: Callable[[], V]) -> V:
        """The entry for ``key``, now the most recently used; made by ``create`` if new."""
        entries = self._entries
        value = entries.get(key)
        if value is not None:
            entries.move_to_end(key)
            return value
        value = create()
        entries[key] = value
        if len(entries) > self.max_keys:
            entries.popitem(last=False)
            self.evicted += 1
        return value

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)


class RollingMedian:
    """The median of the last ``size`` values added.

    A ring of the values in arrival order (to know which one leaves) and the same values
    kept sorted (to read the median): adding is a binary search and one insertion and one
    deletion in a C array of at most ``size`` doubles, a memmove of a few hundred bytes
    for the default window of 200. Floats, not Decimals: a key holds two arrays of 8-byte
    doubles instead of 200 Decimal objects, and a ratio against a median needs no more
    than 15 significant digits."""

    __slots__ = ("_next", "_ring", "_sorted", "size")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a rolling window holds at least one value")
        self.size = size
        self._ring = array("d")
        self._sorted = array("d")
        self._next = 0  # the ring's oldest value, once it is full

    def add(self, value: float) -> None:
        if math.isnan(value):
            raise ValueError("NaN has no place in a median")
        if len(self._ring) < self.size:
            self._ring.append(value)
        else:
            oldest = self._ring[self._next]
            self._ring[self._next] = value
            self._next = (self._next + 1) % self.size
            del self._sorted[bisect_left(self._sorted, oldest)]
        insort(self._sorted, value)

    def median(self) -> float:
        """As ``statistics.median``: the middle value, or the mean of the two middle ones."""
        values = self._sorted
        count = len(values)
        if not count:
            raise ValueError("no values yet")
        middle = count // 2
        if count % 2:
            return values[middle]
        return (values[middle - 1] + values[middle]) / 2

    def __len__(self) -> int:
        return len(self._sorted)


class ErrorWindow:
    """Calls and errors over the last ``seconds``, counted in ``slots`` equal slots.

    Slots instead of one entry per call: the memory is fixed whatever the call rate
    (a deque of calls over five minutes at 10,000 calls a second would hold three
    million). The window ends at the latest call seen and reaches back ``slots`` whole
    slots, so it spans between ``seconds - seconds/slots`` and ``seconds``. A call that
    arrives late (a long stream that started before calls already counted) goes into its
    own slot if that is still in the window, and is not counted otherwise."""

    __slots__ = ("_calls", "_errors", "_newest", "calls", "errors", "slot_seconds")

    def __init__(self, seconds: float, slots: int = 60) -> None:
        self.slot_seconds = seconds / slots
        self._calls = [0] * slots
        self._errors = [0] * slots
        self._newest: int | None = None
        self.calls = 0  # in the window
        self.errors = 0

    def add(self, at: float, error: bool) -> None:
        slot = math.floor(at / self.slot_seconds)
        size = len(self._calls)
        newest = self._newest
        if newest is None or slot > newest:
            first = slot - size + 1 if newest is None else max(newest + 1, slot - size + 1)
            for number in range(first, slot + 1):  # at most ``slots`` steps, each once
                self._clear(number % size)
            self._newest = newest = slot
        elif slot <= newest - size:
            return  # older than the window
        index = slot % size
        self._calls[index] += 1
        self.calls += 1
        if error:
            self._errors[index] += 1
            self.errors += 1

    def _clear(self, index: int) -> None:
        self.calls -= self._calls[index]
        self.errors -= self._errors[index]
        self._calls[index] = 0
        self._errors[index] = 0


class SpendHistory:
    """One key's spend per period (an hour by default): the current period's exact total
    and, in a ring of ``periods`` doubles, the totals of the periods before it.

    Periods are numbered from the Unix epoch (``floor(at / period_seconds)``), so every
    process puts a call in the same period. A period with no priced call holds 0 and
    counts in the baseline, but only from the first period the key was seen: a user who
    arrived two hours ago has a baseline of two hours, not of 24 with 22 empty ones."""

    __slots__ = ("_past", "alerted", "current", "first", "period")

    def __init__(self, periods: int) -> None:
        self._past = array("d", bytes(8 * periods))  # zeros
        self.current = Decimal(0)  # spend in period ``self.period``
        self.period: int | None = None  # the latest period seen
        self.first: int | None = None  # the earliest period seen
        self.alerted: int | None = None  # the period an alert was last raised for

    def add(self, period: int, cost: Decimal) -> bool:
        """Count ``cost`` in ``period``. True when it went into the current period (the
        one to check for a jump); a late call for an earlier period only adds to the
        baseline, and one older than the baseline is not counted."""
        past = self._past
        size = len(past)
        latest = self.period
        if latest is None:
            self.period = self.first = period
        elif period > latest:
            past[latest % size] = float(self.current)
            # the periods skipped had no spend; clearing ``size`` of them clears the ring
            for number in range(latest + 1, min(period, latest + 1 + size)):
                past[number % size] = 0.0
            self.current = Decimal(0)
            self.period = period
        elif period < latest:
            if period < latest - size:
                return False
            past[period % size] += float(cost)
            if self.first is None or period < self.first:
                self.first = period
            return False
        self.current += cost
        return True

    def baseline(self) -> tuple[float, int, int]:
        """(mean spend per period, periods averaged, periods that had spend), over the
        periods before the current one since the key was first seen, at most ``periods``."""
        if self.period is None or self.first is None:
            return 0.0, 0, 0
        counted = min(len(self._past), self.period - self.first)
        if counted <= 0:
            return 0.0, 0, 0
        # each slot holds exactly one period of the window (0 where nothing was spent,
        # including before the first period), so the window's total is the ring's total
        total = math.fsum(self._past)
        spent = sum(1 for value in self._past if value > 0)
        return total / counted, counted, spent
