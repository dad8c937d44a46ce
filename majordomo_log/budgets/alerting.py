"""A budget's threshold crossing as an ``AlertEvent`` (``alerts/events.py``)."""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal
from typing import TYPE_CHECKING

from ..alerts.events import AlertEvent
from .fleet import scope_text

if TYPE_CHECKING:
    from ..record.call import CallRecord
    from .budget import Budget, ScopeValue


def format_amount(value: Decimal | int, unit: str) -> str:
    """Dollars to the cent, or to four places below a cent; tokens and requests with
    thousands separators."""
    if unit != "usd":
        return f"{int(value):,} {unit}"
    amount = Decimal(value)
    if amount >= 1 or amount == amount.quantize(Decimal("0.01")):
        return f"${amount.quantize(Decimal('0.01')):,}"
    # below a dollar, to the millionth: a budget of a tenth of a cent still reads right
    return f"${amount.quantize(Decimal('0.000001')).normalize():f}"


def budget_alert(
    budget: Budget,
    value: ScopeValue,
    start: dt.datetime | None,
    end: dt.datetime | None,
    spend: Decimal | int,
    threshold: float,
    record: CallRecord | None = None,
) -> AlertEvent:
    """The alert for ``budget`` reaching ``threshold`` of its limit for ``value`` in the
    period starting at ``start`` (a per-call cap: the call ``record``). Its dedup key is
    the same in every process for the same crossing."""
    scope = ", ".join(f"{t}={v}" for t, v in zip(budget.scope, value, strict=True))
    percent = round(threshold * 100)
    if budget.per == "call":
        assert record is not None
        occurrence = record.request_id
        title = (
            f"A call cost {format_amount(spend, budget.unit)}, {percent}% of the per-call "
            f"budget {budget.name!r}"
        )
    else:
        occurrence = "total" if start is None else start.strftime("%Y-%m-%dT%H:%MZ")
        title = (
            f"Budget {budget.name!r} at {percent}% "
            f"({format_amount(spend, budget.unit)} of {format_amount(budget.limit, budget.unit)})"
        )
    if scope:
        title += f" for {scope}"
    scope_key = scope_text(value)
    if len(scope_key) > 64:  # tag values are attacker-controlled: keep the key short
        scope_key = hashlib.sha256(scope_key.encode("utf-8", "surrogatepass")).hexdigest()
    hard = budget.hard and threshold >= 1.0
    return AlertEvent(
        kind="budget",
        title=title,
        severity="critical" if hard else "warning" if threshold >= 0.8 else "info",
        dedup_key=f"budget:{budget.name}:{scope_key}:{occurrence}:{threshold:g}",
        at=dt.datetime.now(dt.timezone.utc),
        budget=budget.name,
        scope=budget.scope,
        scope_value=value,
        period=budget.per,
        period_start=start,
        period_end=end,
        unit=budget.unit,
        spend=spend,
        limit=budget.limit,
        threshold=threshold,
        details={"hard": budget.hard}
        if record is None
        else {
            "hard": budget.hard,
            "request_id": record.request_id,
            "model": record.model,
        },
    )
