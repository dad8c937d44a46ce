"""``majordomo-log budgets status``: every budget recorded in the log (``llm_budgets``:
a wrapper built with ``budgets=[...]`` records them when it starts), and for each scope
value its standing in the current period: spend against the limit, percent used, hard
or soft, and when the period ends.

The figures are the store's (``stores/sql/spend.py``), so they include every process
that logs there, and only calls already written: a running wrapper's latest calls may
still be in its queue. A ``per="call"`` budget has no period: its line shows the cap
and the largest single call of the last day instead.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .._exceptions import ConfigError
from ..stores.base import BudgetRegistry, MetadataStore
from ..stores.sql.spend import largest_call_by_scope, spend_by_scope
from .budget import Budget, ScopeValue

# How far back a per-call cap's largest call is looked for.
CALL_LOOKBACK = dt.timedelta(days=1)
NO_BUDGETS = (
    "no budgets recorded in {url}: a wrapper records the budgets it enforces when it "
    "starts (LoggingLLM(..., budgets=[ml.Budget(...)])); a log from before budgets needs "
    "`majordomo-log migrate` first"
)


@dataclass(frozen=True)
class BudgetLine:
    """One budget and one scope value, now."""

    budget: Budget
    # The scope tags' values; () for an unscoped budget; None for a scoped one that has no
    # calls in the period yet.
    scope_value: ScopeValue | None
    spent: Decimal | int  # in the period; per="call": the largest call in CALL_LOOKBACK
    period_start: dt.datetime  # per="call": the start of the lookback
    period_end: dt.datetime | None  # None: "total" never ends, "call" has no period

    @property
    def used_pct(self) -> float:
        """Percent of the limit used (of the cap, for the largest call of a per-call cap)."""
        return round(float(Decimal(self.spent) * 100 / Decimal(self.budget.limit)), 1)


@dataclass(frozen=True)
class BudgetStatus:
    lines: list[BudgetLine]  # by percent used, highest first
    recorded: int  # budget definitions found
    unreadable: list[str]  # why a recorded definition is no budget, one line each


async def budget_status(store: MetadataStore, now: dt.datetime | None = None) -> BudgetStatus:
    """Each recorded budget's lines at ``now`` (aware UTC; default: the current time)."""
    if not isinstance(store, BudgetRegistry):
        raise ConfigError(f"{store.url} does not record budgets (no BudgetRegistry)")
    now = now or dt.datetime.now(dt.timezone.utc)
    definitions = await store.budget_definitions()
    lines: list[BudgetLine] = []
    unreadable: list[str] = []
    for definition in definitions:
        try:
            budget = Budget.from_definition(definition)
        except (ConfigError, KeyError, TypeError, ValueError) as exc:
            unreadable.append(f"budget {definition.get('name')!r:.80} skipped: {exc}")
            continue
        lines += await _lines(store, budget, now)
    lines.sort(key=lambda line: (-line.used_pct, line.budget.name, line.scope_value or ()))
    return BudgetStatus(lines, len(definitions), unreadable)


async def _lines(store: MetadataStore, budget: Budget, now: dt.datetime) -> list[BudgetLine]:
    if budget.per == "call":
        start, end = now - CALL_LOOKBACK, None
        figures = await largest_call_by_scope(store, budget.scope, budget.unit, start)
    else:
        start, end = budget.bounds(now.timestamp())
        figures = await spend_by_scope(store, budget.scope, budget.unit, start, end)
    if not figures:
        zero: Decimal | int = Decimal(0) if budget.unit == "usd" else 0
        return [BudgetLine(budget, () if not budget.scope else None, zero, start, end)]
    return [BudgetLine(budget, value, spent, start, end) for value, spent in figures.items()]


def status_rows(lines: list[BudgetLine], now: dt.datetime, fmt: str) -> list[dict[str, Any]]:
    """The lines as rows to print in ``fmt``: for a ``"table"``, amounts as text (``$4.25``,
    ``1,200 tokens``) and times in words; otherwise plain values (the scope as a mapping
    in JSON, as ``tag=value`` text in CSV)."""
    if fmt == "table":
        return [_readable(line, now) for line in lines]
    rows = [_plain(line) for line in lines]
    if fmt != "json":
        for row, line in zip(rows, lines, strict=True):
            row["scope"] = _scope_text(line)
    return rows


def _scope_text(line: BudgetLine) -> str:
    if line.scope_value is None:
        return "(no calls this period)"
    if not line.scope_value:
        return "(all calls)"
    return ", ".join(f"{t}={v}" for t, v in zip(line.budget.scope, line.scope_value, strict=True))


def _readable(line: BudgetLine, now: dt.datetime) -> dict[str, Any]:
    budget = line.budget
    period = budget.per + (f" ({budget.tz.key})" if budget.tz is not None else "")
    if budget.per == "call":
        ends = "per call: largest in the last 24h"
    elif line.period_end is None:
        ends = "never"
    else:
        ends = f"{line.period_end:%Y-%m-%d %H:%M} UTC (in {_until(now, line.period_end)})"
    return {
        "budget": budget.name,
        "scope": _scope_text(line),
        "kind": "hard" if budget.hard else "soft",
        "spent": _amount(budget.unit, line.spent),
        "limit": _amount(budget.unit, budget.limit),
        "used": f"{line.used_pct:.1f}%",
        "period": period,
        "ends": ends,
    }


def _plain(line: BudgetLine) -> dict[str, Any]:
    budget = line.budget
    return {
        "budget": budget.name,
        "scope": dict(zip(budget.scope, line.scope_value or (), strict=False)),
        "has_calls": line.scope_value is not None,
        "kind": "hard" if budget.hard else "soft",
        "unit": budget.unit,
        "spent": str(line.spent),
        "limit": str(budget.limit),
        "used_pct": line.used_pct,
        "per": budget.per,
        "tz": budget.tz.key if budget.tz is not None else "UTC",
        "measured": "largest_call_last_24h" if budget.per == "call" else "period_spend",
        "period_start": line.period_start.isoformat(),
        "period_end": line.period_end.isoformat() if line.period_end is not None else None,
    }


def _amount(unit: str, value: Decimal | int) -> str:
    if unit != "usd":
        return f"{value:,} {unit}"
    text = f"{Decimal(value):,.10f}".rstrip("0")  # every place the cost columns hold
    whole, _, cents = text.partition(".")
    return f"${whole}.{cents.ljust(2, '0')}"


def _until(now: dt.datetime, end: dt.datetime) -> str:
    """How long from now to the end, in words: ``2d 5h``, ``5h 03m``, ``42m``, ``<1m``."""
    minutes = int((end - now).total_seconds() // 60)
    if minutes < 1:
        return "<1m"
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m"
