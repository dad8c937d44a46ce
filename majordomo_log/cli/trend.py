"""The trend beside the figures of ``majordomo-log report``: each group's calls and spend
against the same group's in the period of the same length just before.

* With ``--since``, the report's window is ``[since, until or now)`` and the previous
  period is as long, ending at ``since``: ``--since 7d`` compares the last 7 days with the
  7 before.
* Without ``--since``, the figures cover the whole log (up to ``--until``), which has no
  period before it: the trend is then the last ``DEFAULT_SPAN`` (7 days, ending at
  ``--until`` or now) against the 7 days before. The footer says which.
* ``--by day`` (alone or with other columns): each day against the day before it, for
  the same values of the other columns (when that day is in the report).

Several columns (``--by model --by feature``): each group is the combination of their
values, compared with the same combination in the previous period.

A trend reads ``+12%``, ``-3%``, ``0%``, ``new`` (nothing in the previous period), or is
blank (nothing in either).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from ..stores.base import MetadataStore
from .reports import Grouping, group_columns, group_key, spend_report

DEFAULT_SPAN = dt.timedelta(days=7)
TREND_COLUMNS = {"calls": "calls_trend", "total_cost": "cost_trend"}  # figure: its trend


@dataclass(frozen=True)
class Comparison:
    """The period a trend is measured over, and the one it is measured against."""

    start: dt.datetime
    end: dt.datetime
    previous_start: dt.datetime
    whole_report: bool  # the period is the report's own window (it had --since)

    def describe(self) -> str:
        span = _span(self.end - self.start)
        period = f"{self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M} UTC"
        if self.whole_report:
            return f"trend: {period} against the {span} before"
        return f"trend: the last {span} ({period}) against the {span} before"


def comparison(
    since: dt.datetime | None, until: dt.datetime | None, now: dt.datetime
) -> Comparison | None:
    """The periods a report's trend compares (see the module's docstring); None when there
    are none: an empty window, or one reaching back past the year 1."""
    end = until or now
    try:
        start = since if since is not None else end - DEFAULT_SPAN
        span = end - start
        previous_start = start - span
    except OverflowError:
        return None
    if span <= dt.timedelta(0):
        return None
    return Comparison(start, end, previous_start, whole_report=since is not None)


def change(now: Decimal | int | None, before: Decimal | int | None) -> str | None:
    """``now`` against ``before`` in whole percent: ``+12%``, ``-3%``, ``0%``, ``new``, or
    None when both are nothing."""
    current, previous = Decimal(now or 0), Decimal(before or 0)
    if previous == 0:
        return None if current == 0 else "new"
    percent = ((current - previous) * 100 / previous).quantize(Decimal(1), ROUND_HALF_UP)
    return "0%" if percent == 0 else f"{int(percent):+d}%"


async def spend_report_with_trend(
    db: MetadataStore,
    by: Grouping = "model",
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> tuple[list[dict[str, Any]], Comparison | None]:
    """``reports.spend_report``'s rows, each with ``calls_trend`` beside ``calls`` and
    ``cost_trend`` beside ``total_cost``, and the periods they compare (None when ``day``
    is a grouping column, whose rows compare with each other, or when there are none)."""
    columns = group_columns(by)
    rows = await spend_report(db, columns, since=since, until=until)
    if "day" in columns:
        return _day_over_day(rows, columns), None
    periods = comparison(since, until, now or dt.datetime.now(dt.timezone.utc))
    if periods is None:
        return [_with_trend(row, None) for row in rows], None
    current = rows
    if not periods.whole_report:
        current = await spend_report(db, columns, since=periods.start, until=periods.end)
    previous = await spend_report(db, columns, since=periods.previous_start, until=periods.start)
    now_by_key = {group_key(row, columns): row for row in current}
    before_by_key = {group_key(row, columns): row for row in previous}
    out = []
    for row in rows:
        key = group_key(row, columns)
        out.append(_with_trend(row, (now_by_key.get(key, {}), before_by_key.get(key, {}))))
    return out, periods


def _with_trend(
    row: dict[str, Any], pair: tuple[dict[str, Any], dict[str, Any]] | None
) -> dict[str, Any]:
    """The row with each trend column right after its figure."""
    out: dict[str, Any] = {}
    for name, value in row.items():
        out[name] = value
        trend = TREND_COLUMNS.get(name)
        if trend is not None:
            out[trend] = None if pair is None else change(pair[0].get(name), pair[1].get(name))
    return out


def _day_over_day(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> list[dict[str, Any]]:
    """Each row against the row of the day before with the other columns' values alike."""
    at = columns.index("day")
    by_key = {group_key(row, columns): row for row in rows}
    out = []
    for row in rows:
        key = list(group_key(row, columns))
        try:
            key[at] = (dt.date.fromisoformat(str(key[at])) - dt.timedelta(days=1)).isoformat()
            before = by_key.get(tuple(key))
        except (ValueError, OverflowError):
            before = None
        out.append(_with_trend(row, None if before is None else (row, before)))
    return out


def _span(length: dt.timedelta) -> str:
    """A period's length in words: ``7 days``, ``24 hours``, ``30 minutes``."""
    seconds = round(length.total_seconds())  # "7d" was parsed a moment before now
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return str(length)
