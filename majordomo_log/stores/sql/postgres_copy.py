"""A batch of rows as the bytes of one PostgreSQL ``COPY ... FROM STDIN (FORMAT csv)``.

Built in a worker thread, each row converted once, then handed to asyncpg as finished
bytes (``copy_to_table(source=...)``): asyncpg's ``copy_records_to_table`` encodes
every value on the event loop, which stalled it 6-28 ms per 1000-row batch even in
pieces of 100 rows (bench/stall.py, bench/throughput.py).

The CSV is written by the stdlib's C writer with ``QUOTE_NONNUMERIC``: text, JSON,
UUIDs and timestamps are quoted (an empty string stays an empty string), numbers,
booleans and Decimals are not, and NULL is an unquoted empty field, which is what
PostgreSQL's CSV format reads as NULL. The server parses each value into the same one
the binary COPY sent: ``repr`` of a float round-trips exactly, a Decimal's text is
exact and rounded to the column's scale like the binary form, timestamps carry their
UTC offset and microseconds.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Sequence
from typing import Any, NamedTuple

from ..._loop_turns import LoopTurns
from ...schema import COLUMNS, Row
from .nulls import null_columns, row_getter

_UTC = dt.timezone.utc
_TIME_COLUMNS = frozenset(COLUMNS.index(c) for c in ("started_at", "ended_at", "outcome_at"))
# NOT NULL columns with a DEFAULT: left out of a COPY they would get the default, so
# they stay in it even when NULL in every row, and a NULL there fails as it always did.
_DEFAULTED = frozenset(COLUMNS.index(c) for c in ("stream", "currency", "tags"))
# Rows per call into the C writer: it holds the GIL for the whole call.
_WRITE_ROWS = 50


class _Null:
    """A NULL for the CSV writer: "numeric" to ``QUOTE_NONNUMERIC`` (so never quoted)
    and empty as text: an unquoted empty field."""

    __slots__ = ()

    def __float__(self) -> float:
        return 0.0

    def __str__(self) -> str:
        return ""


_NULL = _Null()


class CopyBatch(NamedTuple):
    """The columns the COPY names (all-NULL ones left out) and its CSV bytes."""

    columns: tuple[str, ...]
    data: bytes


def copy_batch(rows: Sequence[Row]) -> CopyBatch:
    """Worker thread: the rows as CSV for ``COPY llm_requests (columns) FROM STDIN``.
    Raises ``UnicodeEncodeError`` for text that is not valid UTF-8 (a lone surrogate)."""
    nulls = null_columns(rows) - _DEFAULTED
    kept = tuple(i for i in range(len(COLUMNS)) if i not in nulls)
    keep = row_getter(kept)
    times = tuple(k for k, i in enumerate(kept) if i in _TIME_COLUMNS)
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    turns = LoopTurns()
    pending: list[Sequence[Any]] = []
    for row in rows:
        turns.maybe_yield()
        values: Sequence[Any] = keep(row)
        if None in values or not all(values[k].tzinfo is _UTC for k in times):
            values = [_cell(v, k in times) for k, v in enumerate(values)]
        pending.append(values)
        if len(pending) >= _WRITE_ROWS:
            writer.writerows(pending)
            pending.clear()
    writer.writerows(pending)
    return CopyBatch(tuple(COLUMNS[i] for i in kept), out.getvalue().encode("utf-8"))


def _cell(value: Any, is_time: bool) -> Any:
    if value is None:
        return _NULL
    if is_time and value.tzinfo is not _UTC:
        # As asyncpg's binary COPY took it: a naive datetime in local time.
        return value.astimezone(_UTC)
    return value
