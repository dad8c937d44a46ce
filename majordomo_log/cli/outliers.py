"""``majordomo-log report --outliers``: the views a spend review starts from.

Over a window (``--since``, by default the last 7 days, up to ``--until`` or now):

* the highest-cost workflows and users;
* sudden jumps: features and users whose spend rose the most against the period of the
  same length just before;
* high retry rates (``retry_count``: calls the SDK had to retry), by model;
* high tool-call rates (``tool_call_count``: tool calls per call), by workflow;
* low-acceptance prompt versions (``outcome``: accepted among all outcomes recorded).

Every section can be ordered by spend (a jump: by how much it rose) or by cost per
accepted result (total cost / accepted outcomes), and shows its top ``limit`` groups.
Cost per accepted is None when a group has no accepted outcome: ordered first when
outcomes were recorded and none was accepted (money spent for nothing accepted), last
when no outcome was recorded at all (not known). Blocked attempts are left out (they
cost nothing), and so are groups without a value (calls without a workflow are not a
workflow). Each group is read from the database, one query per dimension and window,
and ordered here, the same way whatever the dialect.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .._exceptions import ConfigError
from ..stores.base import MetadataStore
from .render import render
from .reports import as_decimal, window_where
from .trend import change

SORTS = ("spend", "cost_per_accepted")
DEFAULT_SPAN = dt.timedelta(days=7)
DEFAULT_LIMIT = 10
_FIGURES = (
    "COUNT(*) AS calls, SUM(total_cost) AS total_cost,"
    " SUM(CASE WHEN outcome = 'accepted' THEN 1 ELSE 0 END) AS accepted,"
    " COUNT(outcome) AS outcomes,"
    " SUM(CASE WHEN retry_count > 0 THEN 1 ELSE 0 END) AS retried_calls,"
    " SUM(retry_count) AS retries, COUNT(retry_count) AS retry_known,"
    " SUM(CASE WHEN tool_call_count > 0 THEN 1 ELSE 0 END) AS tool_calling_calls,"
    " SUM(tool_call_count) AS tool_calls, COUNT(tool_call_count) AS tool_known"
)
_COUNTS = (
    "calls",
    "accepted",
    "outcomes",
    "retried_calls",
    "retries",
    "retry_known",
    "tool_calling_calls",
    "tool_calls",
    "tool_known",
)
Group = dict[str, Any]


@dataclass(frozen=True)
class Section:
    """One view of the review: its rows, ordered and cut to the limit."""

    name: str  # e.g. "top_workflows": the key in JSON
    title: str
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class OutlierReport:
    since: dt.datetime
    until: dt.datetime
    previous_since: dt.datetime  # the period jumps are measured against: [previous_since, since)
    sort: str
    sections: list[Section]


async def outliers(
    db: MetadataStore,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    sort: str = "spend",
    limit: int = DEFAULT_LIMIT,
    now: dt.datetime | None = None,
) -> OutlierReport:
    """The outlier sections over ``[since, until)`` (default: the 7 days up to now)."""
    if sort not in SORTS:
        raise ConfigError(f"outliers sort by {' or '.join(SORTS)}, got {sort!r}")
    until = until or now or dt.datetime.now(dt.timezone.utc)
    since = since if since is not None else until - DEFAULT_SPAN
    try:
        previous_since = since - (until - since)
    except OverflowError:
        previous_since = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
    groups = {
        key: await _groups(db, key, since, until)
        for key in ("workflow", "user_id", "feature", "model", "prompt_version")
    }
    before = {key: await _groups(db, key, previous_since, since) for key in ("feature", "user_id")}
    order = _by_spend if sort == "spend" else _by_cost_per_accepted
    sections = [
        Section("top_workflows", "Highest-cost workflows", _top(groups["workflow"], "workflow")),
        Section("top_users", "Highest-cost users", _top(groups["user_id"], "user_id")),
        Section(
            "jumps_by_feature",
            "Spend jumps by feature, against the period before",
            _jumps(groups["feature"], before["feature"], "feature"),
        ),
        Section(
            "jumps_by_user",
            "Spend jumps by user, against the period before",
            _jumps(groups["user_id"], before["user_id"], "user_id"),
        ),
        Section("retry_rates", "Retry rates by model", _retries(groups["model"])),
        Section("tool_call_rates", "Tool-call rates by workflow", _tools(groups["workflow"])),
        Section(
            "low_acceptance",
            "Acceptance by prompt version",
            _acceptance(groups["prompt_version"]),
        ),
    ]
    ordered = [
        Section(s.name, s.title, sorted(s.rows, key=order(s.name))[:limit]) for s in sections
    ]
    return OutlierReport(since, until, previous_since, sort, ordered)


async def _groups(
    db: MetadataStore, key: str, since: dt.datetime, until: dt.datetime
) -> dict[str, Group]:
    """The figures of each value of ``key`` (a column) in the window, by value."""
    where, params = window_where(since, until)
    rows = await db.fetch(
        f"SELECT {key} AS group_key, {_FIGURES} FROM llm_requests{where}"
        f" AND status <> 'blocked' AND {key} IS NOT NULL GROUP BY {key}",
        params,
    )
    out = {}
    for row in rows:
        group: Group = {name: int(row[name] or 0) for name in _COUNTS}
        group["total_cost"] = as_decimal(row["total_cost"])
        group["cost_per_accepted"] = _per_accepted(group)
        out[str(row["group_key"])] = group
    return out


def _per_accepted(group: Group) -> Decimal | None:
    cost, accepted = group["total_cost"], group["accepted"]
    if not accepted:
        return None
    return as_decimal((cost or Decimal(0)) / accepted)


def _money_tail(group: Group) -> dict[str, Any]:
    """The columns every section ends with."""
    return {
        "total_cost": group["total_cost"],
        "outcomes": group["outcomes"],
        "accepted": group["accepted"],
        "cost_per_accepted": group["cost_per_accepted"],
    }


def _top(groups: dict[str, Group], key: str) -> list[dict[str, Any]]:
    return [{key: value, "calls": g["calls"], **_money_tail(g)} for value, g in groups.items()]


def _jumps(now: dict[str, Group], before: dict[str, Group], key: str) -> list[dict[str, Any]]:
    """Groups whose spend rose against the period before (new ones included)."""
    rows = []
    for value, group in now.items():
        cost = group["total_cost"] or Decimal(0)
        previous = (before.get(value) or {}).get("total_cost") or Decimal(0)
        if cost <= previous:
            continue
        rows.append(
            {
                key: value,
                "previous_cost": previous,
                "increase": cost - previous,
                "change": change(cost, previous),
                "calls": group["calls"],
                **_money_tail(group),
            }
        )
    return rows


def _retries(groups: dict[str, Group]) -> list[dict[str, Any]]:
    return [
        {
            "model": value,
            "calls": g["calls"],
            "retried_calls": g["retried_calls"],
            "retries": g["retries"],
            "retried_pct": _percent(g["retried_calls"], g["retry_known"]),
            **_money_tail(g),
        }
        for value, g in groups.items()
        if g["retried_calls"]
    ]


def _tools(groups: dict[str, Group]) -> list[dict[str, Any]]:
    return [
        {
            "workflow": value,
            "calls": g["calls"],
            "tool_calling_calls": g["tool_calling_calls"],
            "tool_calls": g["tool_calls"],
            "tool_calls_per_call": round(g["tool_calls"] / g["tool_known"], 2),
            **_money_tail(g),
        }
        for value, g in groups.items()
        if g["tool_calls"]
    ]


def _acceptance(groups: dict[str, Group]) -> list[dict[str, Any]]:
    return [
        {
            "prompt_version": value,
            "calls": g["calls"],
            "accepted_pct": _percent(g["accepted"], g["outcomes"]),
            **_money_tail(g),
        }
        for value, g in groups.items()
        if g["outcomes"]
    ]


def _percent(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def _name_of(row: dict[str, Any]) -> str:
    return str(next(iter(row.values())))  # the group's value comes first


def _by_spend(section: str) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """Most spent first (a jump: the largest increase first), then by name."""
    figure = "increase" if section.startswith("jumps_") else "total_cost"
    return lambda row: (-(row[figure] or 0), _name_of(row))


def _by_cost_per_accepted(section: str) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """Dearest accepted result first: spent with outcomes but none accepted, then by cost
    per accepted, then groups without outcomes (by spend)."""

    def key(row: dict[str, Any]) -> tuple[Any, ...]:
        per = row["cost_per_accepted"]
        if per is not None:
            return (1, -per, _name_of(row))
        rank = 0 if row["outcomes"] else 2
        return (rank, -(row["total_cost"] or 0), _name_of(row))

    return key


def render_outliers(report: OutlierReport, fmt: str) -> str:
    """The report as the CLI prints it: a table per section, one JSON document, or one
    CSV table whose first column names the section."""
    if fmt == "json":
        document = {
            "since": report.since.isoformat(),
            "until": report.until.isoformat(),
            "previous_since": report.previous_since.isoformat(),
            "sort": report.sort,
            "sections": {s.name: s.rows for s in report.sections},
        }
        return json.dumps(document, default=str, indent=2, ensure_ascii=False)
    if fmt == "csv":
        rows = [{"section": s.name, **row} for s in report.sections for row in s.rows]
        return render(rows, "csv", _union(list(r) for r in rows))
    window = f"{report.since:%Y-%m-%d %H:%M} to {report.until:%Y-%m-%d %H:%M} UTC"
    order = "spend" if report.sort == "spend" else "cost per accepted result"
    parts = [f"Outliers, {window}, by {order}"]
    for section in report.sections:
        body = render(section.rows, "table") if section.rows else "(none)"
        parts.append(f"{section.title}\n{body}")
    return "\n\n".join(parts)


def _union(columns: Iterable[list[str]]) -> list[str]:
    """Every column name, in the order first seen."""
    out = ["section"]
    for names in columns:
        out += [n for n in names if n not in out]
    return out
