"""Latency percentiles (p50, p95, p99) in every dialect, in one pass over the window.

SQLite has no percentile function, MySQL none and MariaDB only a window-function form,
and an ``ORDER BY latency_ms LIMIT 1 OFFSET k`` per percentile sorts the window. So the
database builds a histogram instead, the same SQL everywhere but for rounding down: each
row's value falls in a bucket of ≤5% relative width (twenty to two hundred per power of
ten, from 0.1 ms to 10^8 ms), grouped with ``COUNT``, ``MIN`` and ``MAX`` per group and
bucket. That is one linear scan, and the answer has at most a few hundred rows per group
whatever the number of calls.

Python then walks the buckets: the nearest-rank percentile (the ``ceil(p/100 * n)``-th
smallest value) is in the bucket where the running count reaches that rank, between the
bucket's smallest and largest value; it is read off by its position among the bucket's
rows, spread evenly between the two. So a bucket of one or two rows gives the exact
value, and the error is never more than the bucket's spread (≤5% of the value).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..stores.sql.text import text_sql

PERCENTILES = (50, 95, 99)
# Bucket codes: decade d (values in [10^d, 10^(d+1)) ms, d from -1 to 7) uses
# (d + 2) * 1000 + floor(value / width), width 10^d / 20; below 0.1 ms is code 0, from
# 10^8 ms on code 99_999. Each decade's factor: 1 / width as a multiplier or a divisor.
_DECADES = [(-1, "* 200"), (0, "* 20"), (1, "* 2")] + [
    (d, f"/ {5 * 10 ** (d - 2)}") for d in range(2, 8)
]
_FLOOR = {
    "sqlite": "CAST({} AS INTEGER)",  # values here are never negative: truncation is floor
    "postgresql": "FLOOR({})",
    "mysql": "FLOOR({})",
}


def bucket_sql(dialect: str, column: str) -> str:
    """SQL for the bucket code of ``column`` (a non-negative number of milliseconds)."""
    floor = _FLOOR[dialect]
    whens = [f"WHEN {column} < 0.1 THEN 0"]
    for decade, factor in _DECADES:
        upper = 10 ** (decade + 1)
        code = f"{(decade + 2) * 1000} + {floor.format(f'{column} {factor}')}"
        whens.append(f"WHEN {column} < {upper} THEN {code}")
    return f"(CASE {' '.join(whens)} ELSE 99999 END)"


@dataclass(frozen=True)
class Bucket:
    code: int
    count: int
    low: float  # the smallest value in it
    high: float  # the largest


def percentile(buckets: Sequence[Bucket], p: float) -> float | None:
    """The ``p``-th percentile (nearest rank) of the values the buckets hold, as the
    module's docstring says; None when they hold none. ``buckets`` in code order."""
    total = sum(b.count for b in buckets)
    if total == 0:
        return None
    rank = max(1, math.ceil(p / 100 * total))
    seen = 0
    for bucket in buckets:
        if seen + bucket.count >= rank:
            position = rank - seen  # 1 .. count
            if bucket.count == 1 or bucket.high == bucket.low:
                return bucket.low
            fraction = (position - 1) / (bucket.count - 1)
            return bucket.low + (bucket.high - bucket.low) * fraction
        seen += bucket.count
    return buckets[-1].high  # not reached: the ranks add up to total


def summary(buckets: Sequence[Bucket]) -> dict[int, float | None]:
    return {p: percentile(buckets, p) for p in PERCENTILES}


async def histograms(
    db: Any,
    column: str,
    group: str | None,
    where: str,
    params: Sequence[Any],
) -> dict[str | None, list[Bucket]]:
    """Each group's histogram of ``column`` over the rows ``where`` selects (a WHERE
    clause with ``?`` placeholders; rows with ``column`` NULL or negative are left out);
    ``group=None``: one histogram, keyed None, of all of them. ``column`` and ``group``
    go in the SQL text: the caller's own names, never input."""
    code = bucket_sql(db.dialect, column)
    grouped = group is not None
    grp = f"{text_sql(db.dialect, group)} AS grp, " if group is not None else ""  # exact
    rows = await db.fetch(
        f"SELECT {grp}{code} AS code, COUNT(*) AS n,"
        f" MIN({column}) AS low, MAX({column}) AS high FROM llm_requests"
        f" WHERE {where} AND {column} >= 0 GROUP BY {'1, 2' if grouped else '1'}",
        params,
    )
    out: dict[str | None, list[Bucket]] = {}
    for row in rows:
        value = row.get("grp")
        key = None if value is None else _text(value)
        out.setdefault(key, []).append(
            Bucket(int(row["code"]), int(row["n"]), float(row["low"]), float(row["high"]))
        )
    for buckets in out.values():
        buckets.sort(key=lambda b: b.code)
    return out


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)
