"""Percentiles from the one-pass histogram (majordomo_log/dashboard/percentiles.py): the
bucket SQL run on SQLite over chosen values, against the exact nearest-rank answer."""

from __future__ import annotations

import math
import random
import sqlite3

import pytest

from majordomo_log.dashboard.percentiles import (
    PERCENTILES,
    Bucket,
    bucket_sql,
    percentile,
    summary,
)


def histogram(values: list[float]) -> list[Bucket]:
    """The buckets SQLite makes of ``values``, as percentiles.histograms() reads them."""
    with sqlite3.connect(":memory:") as conn:
        conn.execute("CREATE TABLE t (v REAL)")
        conn.executemany("INSERT INTO t VALUES (?)", [(v,) for v in values])
        rows = conn.execute(
            f"SELECT {bucket_sql('sqlite', 'v')} AS code, COUNT(*), MIN(v), MAX(v) FROM t"
            " GROUP BY 1 ORDER BY 1"
        ).fetchall()
    return [Bucket(int(c), int(n), float(lo), float(hi)) for c, n, lo, hi in rows]


def exact(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def test_no_values_no_percentile() -> None:
    assert percentile([], 50) is None
    assert summary([]) == dict.fromkeys(PERCENTILES)


@pytest.mark.parametrize("values", [[42.0], [3.0, 3.0, 3.0], [1.0, 10.0, 100.0, 1000.0, 10_000.0]])
def test_exact_when_each_bucket_holds_one_value_or_equal_ones(values: list[float]) -> None:
    buckets = histogram(values)
    for p in (1, 25, 50, 75, 95, 99, 100):
        assert percentile(buckets, p) == exact(values, p)


@pytest.mark.parametrize("seed", range(5))
def test_within_five_percent_of_exact_on_spread_values(seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.lognormvariate(6, 1.5) for _ in range(5000)]
    values += [0.0, 0.05, 0.1, 1.0, 99_999_999.0, 3e8]  # the first, last and edge buckets
    buckets = histogram(values)
    assert len(buckets) < 1000 and sum(b.count for b in buckets) == len(values)
    for p in (*PERCENTILES, 1, 10, 90, 99.9):
        got, want = percentile(buckets, p), exact(values, p)
        assert got is not None and abs(got - want) <= 0.05 * want, (p, got, want)


def test_buckets_are_narrow_and_in_value_order() -> None:
    values = [10 ** (e / 50) for e in range(-60, 400)]  # 0.06 ms to 10^8 ms, 50 per decade
    buckets = histogram(values)
    for b in buckets:
        if 0.1 <= b.low < 1e8:
            assert b.high <= b.low * 1.05 + 1e-12, b
    lows = [b.low for b in buckets]
    assert lows == sorted(lows)


def test_work_is_one_row_per_bucket_whatever_the_rows() -> None:
    """A million calls of similar latency are a few dozen buckets: what Python walks does
    not grow with the log (the database's scan is the only linear part)."""
    small = histogram([500.0 + i % 100 for i in range(1000)])
    large = histogram([500.0 + i % 100 for i in range(100_000)])
    assert len(small) == len(large) < 30
    assert percentile(large, 50) == exact([500.0 + i % 100 for i in range(100_000)], 50)
