"""What a dashboard page is asked for: its query string, checked.

Every page takes a fixed set of parameters, each at most once, each from a fixed list
of values (or a date, a count, a tag value): anything else is a :class:`BadRequest`,
shown as a 400 page that says what was wrong, never a traceback. Times are UTC.

The window of a page ends at ``until`` (default: now), rounded up to the next whole
step (hour or day), and reaches back ``window`` from there: ``window=7d&step=day`` is
the seven whole UTC days ending with today, so every bucket of the chart is a whole one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

UTC = dt.timezone.utc
# Group-by choices: columns of llm_requests (values go in the SQL text: only these).
GROUPS: dict[str, str] = {
    "model": "model",
    "feature": "feature",
    "user_id": "user",
    "api_key_alias": "key alias",
    "provider": "provider",
    "workflow": "workflow",
}
STEPS: dict[str, dt.timedelta] = {"hour": dt.timedelta(hours=1), "day": dt.timedelta(days=1)}
WINDOWS: dict[str, dt.timedelta] = {
    "24h": dt.timedelta(hours=24),
    "7d": dt.timedelta(days=7),
    "14d": dt.timedelta(days=14),
    "30d": dt.timedelta(days=30),
    "90d": dt.timedelta(days=90),
    "365d": dt.timedelta(days=365),
}
DEFAULT_BY, DEFAULT_STEP, DEFAULT_WINDOW = "model", "day", "30d"
DEFAULT_LIMIT, MAX_LIMIT = 50, 500
MAX_VALUE_CHARS = 255  # a tag value's width in every dialect
_SHOWN = 40  # characters of a bad value quoted back in a message


class BadRequest(Exception):
    """A query the dashboard cannot answer as asked (400): the message says why."""


class NotFound(Exception):
    """No such page, asset or call (404)."""


@dataclass(frozen=True)
class Window:
    """``since <= started_at < until``, cut into ``step`` buckets (UTC, aligned)."""

    since: dt.datetime
    until: dt.datetime
    step: str

    def buckets(self) -> list[dt.datetime]:
        """Each bucket's start, oldest first."""
        size = STEPS[self.step]
        out, at = [], self.since
        while at < self.until:
            out.append(at)
            at += size
        return out

    def describe(self) -> str:
        end = self.until - dt.timedelta(microseconds=1)
        return f"{self.since:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"


@dataclass(frozen=True)
class OverviewParams:
    by: str
    window_name: str
    window: Window
    until_text: str  # as given ("" for now): kept in the form and the links


@dataclass(frozen=True)
class CallsParams:
    window_name: str
    window: Window
    until_text: str
    limit: int
    filter: tuple[str, str] | None  # (group column, value): only calls with that value


def single(query: Mapping[str, Sequence[str]], allowed: Sequence[str]) -> dict[str, str]:
    """The query's parameters, each given at most once and named in ``allowed``."""
    unknown = sorted(set(query) - set(allowed))
    if unknown:
        takes = f"this page takes {', '.join(allowed)}" if allowed else "this page takes none"
        raise BadRequest(f"unknown parameter {unknown[0]!r:.{_SHOWN}}: {takes}")
    out = {}
    for name, values in query.items():
        if len(values) != 1:
            raise BadRequest(f"parameter {name!r} is given {len(values)} times")
        out[name] = values[0]
    return out


def choice(params: Mapping[str, str], name: str, choices: Sequence[str], default: str) -> str:
    value = params.get(name, "") or default
    if value not in choices:
        raise BadRequest(f"{name}={value!r:.{_SHOWN}} is not one of {', '.join(choices)}")
    return value


def until_time(text: str, now: dt.datetime) -> dt.datetime:
    """``until``: an ISO date or date and time (UTC unless a zone is given); blank: now."""
    if not text:
        return now
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(
            f"until={text!r:.{_SHOWN}} is not a date: use 2026-11-01 or 2026-11-01T12:00"
        ) from None
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    if not dt.datetime(1971, 1, 1, tzinfo=UTC) <= when <= dt.datetime(9000, 1, 1, tzinfo=UTC):
        raise BadRequest(f"until={text!r:.{_SHOWN}} is out of range")
    return when


def window(window_name: str, step: str, until: dt.datetime) -> Window:
    """The window ending at ``until`` rounded up to a whole ``step``."""
    size = STEPS[step]
    epoch = dt.datetime(1970, 1, 1, tzinfo=UTC)
    steps, rest = divmod(until - epoch, size)
    end = epoch + size * (steps + (1 if rest else 0))
    return Window(end - WINDOWS[window_name], end, step)


def overview_params(query: Mapping[str, Sequence[str]], now: dt.datetime) -> OverviewParams:
    params = single(query, ("by", "step", "window", "until"))
    by = choice(params, "by", tuple(GROUPS), DEFAULT_BY)
    step = choice(params, "step", tuple(STEPS), DEFAULT_STEP)
    name = choice(params, "window", tuple(WINDOWS), DEFAULT_WINDOW)
    until_text = params.get("until", "")
    return OverviewParams(by, name, window(name, step, until_time(until_text, now)), until_text)


def calls_params(query: Mapping[str, Sequence[str]], now: dt.datetime) -> CallsParams:
    params = single(query, ("window", "until", "limit", *GROUPS))
    name = choice(params, "window", tuple(WINDOWS), DEFAULT_WINDOW)
    until_text = params.get("until", "")
    limit_text = params.get("limit", "") or str(DEFAULT_LIMIT)
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIMIT:
        raise BadRequest(
            f"limit={limit_text!r:.{_SHOWN}} is not a whole number from 1 to {MAX_LIMIT}"
        )
    filters = [(g, params[g]) for g in GROUPS if g in params]  # "" is a value too
    if len(filters) > 1:
        raise BadRequest("filter by one of " + ", ".join(GROUPS) + " at a time")
    if filters and len(filters[0][1]) > MAX_VALUE_CHARS:
        raise BadRequest(f"{filters[0][0]}= is longer than {MAX_VALUE_CHARS} characters")
    until = until_time(until_text, now)
    return CallsParams(
        name,
        Window(until - WINDOWS[name], until, "hour"),  # a list, not a chart: not rounded
        until_text,
        int(limit_text),
        filters[0] if filters else None,
    )
