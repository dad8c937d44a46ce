"""A batch of rows as SQLite statements and parameters, each row converted once.

Columns that are NULL in every row of the batch are written as the literal ``NULL`` in
the INSERT and left out of the parameters. About 14 of the 45 columns of a typical row
are NULL (no stream, no error, unset tags, no outcome), and CPython 3.11's sqlite3
adapts each ``None`` parameter through a failed adapter lookup (an exception raised
and cleared): 31% of a raw insert. Measured with 1000-row batches, raw
``executemany``: 12.7 -> 8.2 µs per row (REFERENCE.md §3); bench/stall.py has ours.

One statement per distinct set of all-NULL columns, cached: a service's batches share a
handful of sets. What lands in the table is the same either way (a bound ``None`` and
a literal ``NULL`` are the same NULL).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from functools import lru_cache
from typing import Any, NamedTuple

from ..._loop_turns import LoopTurns
from ...schema import COLUMNS, MONEY_COLUMNS, Row
from .nulls import null_columns, row_getter

_UTC = dt.timezone.utc
_TIME_COLUMNS = frozenset(COLUMNS.index(c) for c in ("started_at", "ended_at", "outcome_at"))
_MONEY_COLUMNS = frozenset(i for i, c in enumerate(COLUMNS) if c in MONEY_COLUMNS)
# Rows per executemany call: the loop gets a turn between calls (bench/stall.py).
CHUNK_ROWS = 250


def sqlite_timestamp(value: dt.datetime) -> str:
    """UTC ISO 8601 with microseconds and 'Z': sorts in time order, date() understands it."""
    if value.tzinfo is _UTC:  # what rows hold: one isoformat, its '+00:00' cut off
        return value.isoformat(timespec="microseconds")[:-6] + "Z"
    utc = value.astimezone(_UTC) if value.utcoffset() else value
    return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


class EncodedBatch(NamedTuple):
    """(INSERT statement, its parameters): one list per row, in the row order. A NULL
    in a NOT NULL column fails as a literal just as it did as a parameter."""

    sql: str
    params: list[list[Any]]


@lru_cache(maxsize=64)
def insert_statement(null_columns: frozenset[int]) -> str:
    """The INSERT with a ``?`` per column, or ``NULL`` for the given columns. A request
    id already there is skipped (a batch written twice); any other constraint fails,
    as in the other dialects (``INSERT OR IGNORE`` also skipped, silently, a row with
    NULL in a NOT NULL column: such a row was lost instead of kept in rejected/)."""
    values = ", ".join("NULL" if i in null_columns else "?" for i in range(len(COLUMNS)))
    return (
        f"INSERT INTO llm_requests ({', '.join(COLUMNS)}) VALUES ({values}) "
        "ON CONFLICT (request_id) DO NOTHING"
    )


def encode_batch(rows: Sequence[Row]) -> EncodedBatch:
    """Worker thread: the batch's INSERT and its parameters, each row converted once
    (timestamps as ``sqlite_timestamp`` text, money as plain decimal text)."""
    nulls = null_columns(rows)
    kept = tuple(i for i in range(len(COLUMNS)) if i not in nulls)
    keep = row_getter(kept)
    times = tuple(k for k, i in enumerate(kept) if i in _TIME_COLUMNS)
    money = tuple(k for k, i in enumerate(kept) if i in _MONEY_COLUMNS)
    params: list[list[Any]] = []
    turns = LoopTurns()
    for row in rows:
        turns.maybe_yield()
        values = list(keep(row))
        for k in times:
            value = values[k]
            if value is not None:
                values[k] = sqlite_timestamp(value)
        for k in money:
            value = values[k]
            if value is not None:
                values[k] = _money(value)
        params.append(values)
    return EncodedBatch(insert_statement(nulls), params)


def _money(value: Decimal) -> str:
    # Plain text ('0.00000375', never '3.75E-6'): SQLite's NUMERIC affinity reads it.
    return format(value, "f")
