"""The anomaly rules' rolling statistics agree with the plain computation they replace
(a sorted copy of the window, a list of every call, a dict of every period), on random
sequences, including late values and long gaps."""

from __future__ import annotations

import math
import statistics
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from majordomo_log.alerts.rolling import ErrorWindow, KeyedLRU, RollingMedian, SpendHistory

costs = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)


@given(st.integers(1, 30), st.lists(costs, min_size=1, max_size=200))
def test_the_rolling_median_is_the_median_of_the_last_values(
    size: int, values: list[float]
) -> None:
    rolling = RollingMedian(size)
    for index, value in enumerate(values):
        rolling.add(value)
        window = values[max(0, index + 1 - size) : index + 1]
        assert len(rolling) == len(window)
        assert rolling.median() == statistics.median(window)


@given(st.lists(st.sampled_from([0.0, -0.0, 0.01, 0.01, 5.0]), min_size=1, max_size=100))
def test_repeated_values_leave_the_window_one_at_a_time(values: list[float]) -> None:
    rolling = RollingMedian(7)
    for index, value in enumerate(values):
        rolling.add(value)
        assert rolling.median() == statistics.median(values[max(0, index - 6) : index + 1])


def test_a_median_takes_no_nan_and_needs_a_value() -> None:
    rolling = RollingMedian(3)
    with pytest.raises(ValueError):
        rolling.median()
    with pytest.raises(ValueError):
        rolling.add(math.nan)
    with pytest.raises(ValueError):
        RollingMedian(0)


calls = st.lists(
    st.tuples(st.floats(min_value=0, max_value=5_000, allow_nan=False), st.booleans()),
    max_size=150,
)


@given(st.integers(1, 12), st.sampled_from([1.0, 7.5, 60.0]), calls)
def test_the_error_window_counts_the_calls_of_its_slots(
    slots: int, seconds: float, seen: list[tuple[float, bool]]
) -> None:
    window = ErrorWindow(seconds, slots)
    kept: list[tuple[int, bool]] = []  # every call counted, by slot
    newest: int | None = None
    for at, error in seen:
        window.add(at, error)
        slot = math.floor(at / window.slot_seconds)
        newest = slot if newest is None else max(newest, slot)
        if slot > newest - slots:
            kept.append((slot, error))
        in_window = [error for number, error in kept if number > newest - slots]
        assert (window.calls, window.errors) == (len(in_window), sum(in_window))


spends = st.lists(
    st.tuples(st.integers(0, 80), st.integers(0, 300).map(lambda c: Decimal(c) / 100)),
    max_size=120,
)


@given(st.integers(1, 10), spends)
@settings(max_examples=300)
def test_a_spend_history_keeps_the_totals_of_its_periods(
    size: int, seen: list[tuple[int, Decimal]]
) -> None:
    history = SpendHistory(size)
    totals: dict[int, Decimal] = {}  # every period's spend, as counted
    latest: int | None = None
    first: int | None = None
    for period, cost in seen:
        current = history.add(period, cost)
        assert current == (latest is None or period >= latest)
        if latest is None or period >= latest - size:
            totals[period] = totals.get(period, Decimal(0)) + cost
            first = period if first is None else min(first, period)
        latest = period if latest is None else max(latest, period)
        assert first is not None
        assert history.current == totals[latest]
        counted = min(size, latest - first)
        before = [totals.get(p, Decimal(0)) for p in range(latest - counted, latest)]
        mean, averaged, spent = history.baseline()
        assert (averaged, spent) == (counted, sum(1 for t in before if t > 0))
        expected = float(sum(before)) / counted if counted else 0.0
        assert mean == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_a_keyed_lru_forgets_the_least_recently_used() -> None:
    lru: KeyedLRU[str, list[str]] = KeyedLRU(2)
    a = lru.get_or_create("a", list)
    lru.get_or_create("b", list)
    assert lru.get_or_create("a", list) is a  # "a" is now the most recent
    lru.get_or_create("c", list)
    assert ("a" in lru, "b" in lru, "c" in lru) == (True, False, True)
    assert (len(lru), lru.evicted) == (2, 1)
    with pytest.raises(ValueError):
        KeyedLRU(0)
