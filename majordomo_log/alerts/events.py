"""``AlertEvent``: what every alert sink is handed, budget crossings and anomalies alike."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

KINDS = ("budget", "error_rate", "cost_spike", "spend_jump", "unpriced_model")
SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class AlertEvent:
    """One alert. ``dedup_key`` is the same for the same crossing in every process (the
    budget, scope value, period and threshold for a budget alert), so it is sent once."""

    kind: str  # one of KINDS
    title: str  # one line, for a human: "Budget '$5.00 per day by user_id' at 80% ..."
    severity: str  # one of SEVERITIES
    dedup_key: str
    at: dt.datetime  # when it was raised (aware, UTC)
    budget: str | None = None  # the budget's name (budget alerts)
    scope: tuple[str, ...] = ()  # the budget's scope tag names; () for the whole wrapper
    scope_value: tuple[str, ...] | None = None  # their values for this alert
    period: str | None = None  # "day", "hour", ... ("call" for a per-call cap)
    period_start: dt.datetime | None = None
    period_end: dt.datetime | None = None  # None: "total"
    unit: str | None = None  # "usd", "tokens" or "requests"
    spend: Decimal | int | None = None  # counted so far, in ``unit``
    limit: Decimal | int | None = None
    threshold: float | None = None  # the fraction of the limit crossed
    details: Mapping[str, Any] = field(default_factory=dict)  # the rule's own figures

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: datetimes as ISO 8601, amounts as decimal strings."""
        return {
            "kind": self.kind,
            "title": self.title,
            "severity": self.severity,
            "dedup_key": self.dedup_key,
            "at": self.at.isoformat(),
            "budget": self.budget,
            "scope": list(self.scope),
            "scope_value": None if self.scope_value is None else list(self.scope_value),
            "period": self.period,
            "period_start": _iso(self.period_start),
            "period_end": _iso(self.period_end),
            "unit": self.unit,
            "spend": _amount(self.spend),
            "limit": _amount(self.limit),
            "threshold": self.threshold,
            "details": {k: _jsonable(v) for k, v in self.details.items()},
        }


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _amount(value: Decimal | int | None) -> str | int | None:
    return str(value) if isinstance(value, Decimal) else value


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)
