"""The columns of a batch that are NULL in every row: the stores leave them out of what
they send (SQLite binds them as the literal ``NULL``, PostgreSQL leaves them out of the
COPY), so no per-value work is spent on them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from operator import itemgetter
from typing import Any

from ...schema import Row


def null_columns(rows: Sequence[Row]) -> frozenset[int]:
    """The indexes of the columns that are None in every row (none for no rows)."""
    if not rows:
        return frozenset()
    candidates = tuple(i for i, value in enumerate(rows[0]) if value is None)
    for row in rows:
        if not candidates:
            break
        # One C-level comparison per row while the candidates hold (the common case:
        # a service's rows are NULL in the same columns).
        if row_getter(candidates)(row) != (None,) * len(candidates):
            candidates = tuple(i for i in candidates if row[i] is None)
    return frozenset(candidates)


@lru_cache(maxsize=128)
def row_getter(indexes: tuple[int, ...]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """``row -> tuple(row[i] for i in indexes)`` at C speed (a tuple even for one index
    or none, unlike ``itemgetter``)."""
    if len(indexes) == 1:
        (only,) = indexes
        return lambda row: (row[only],)
    if not indexes:
        return lambda row: ()
    getter: Callable[[Sequence[Any]], tuple[Any, ...]] = itemgetter(*indexes)
    return getter
