"""Budget periods: the calendar window a moment falls in, per minute, hour, day, week
(ISO: Monday to Monday), month or in total, in UTC or a named time zone.

A period is identified by its start, so that every process (and Redis, and the store)
agrees on which counter a call belongs to without talking to each other.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

PERIODS = ("call", "minute", "hour", "day", "week", "month", "total")
UTC = dt.timezone.utc
# "total" has one period, from the epoch, that never ends.
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


def period_bounds(
    per: str, at: float, tz: ZoneInfo | None = None
) -> tuple[dt.datetime, dt.datetime | None]:
    """``(start, end)`` of the ``per`` period holding the Unix time ``at``, as aware UTC
    datetimes (``end`` is None for ``"total"``). Local periods start at local midnight
    (or the local hour) and may be 23 or 25 hours long across a DST change."""
    if per == "total" or per == "call":
        return EPOCH, None
    zone = tz or UTC
    local = dt.datetime.fromtimestamp(at, zone)
    if per == "minute":
        start = local.replace(second=0, microsecond=0)
        end = start + dt.timedelta(minutes=1)
    elif per == "hour":
        start = local.replace(minute=0, second=0, microsecond=0)
        end = start + dt.timedelta(hours=1)
    elif per == "day":
        start = _midnight(local.date(), zone)
        end = _midnight(local.date() + dt.timedelta(days=1), zone)
    elif per == "week":
        monday = local.date() - dt.timedelta(days=local.weekday())
        start = _midnight(monday, zone)
        end = _midnight(monday + dt.timedelta(days=7), zone)
    elif per == "month":
        first = local.date().replace(day=1)
        following = (first + dt.timedelta(days=32)).replace(day=1)
        start, end = _midnight(first, zone), _midnight(following, zone)
    else:
        raise ValueError(f"unknown period {per!r}")
    # minute and hour are computed on local wall time: take them back through UTC so a
    # DST fold cannot shift them
    return start.astimezone(UTC), end.astimezone(UTC)


def _midnight(day: dt.date, zone: dt.tzinfo) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=zone)
