"""The fleet counter: one running total per (budget, scope value, period) shared by
every process that enforces a budget (``budget_store="redis://..."``).

Amounts are integers: dollars in units of 10⁻¹⁰ (the ten places the SQL columns hold,
so sums are exact), tokens and requests as they are.

Keys are ``majordomo-log:budget:<budget>:<scope value>:<period start>`` with the budget
name and the scope value hashed (SHA-256, 16 bytes hex each): tag values are
attacker-controlled text, and a key must stay short and free of separators.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Protocol, runtime_checkable

USD_SCALE = 10**10
_USD_UNITS = Decimal(USD_SCALE)
KEY_PREFIX = "majordomo-log:"


def to_units(amount: Decimal | int, unit: str) -> int:
    """An amount as the counter's integer (dollars to 10⁻¹⁰, rounded half-even)."""
    if unit == "usd":
        return int((Decimal(amount) * USD_SCALE).to_integral_value())
    return int(amount)


def from_units(units: int, unit: str) -> Decimal | int:
    """A counter's integer as an amount: dollars as a Decimal in its shortest exact form
    (an exact division keeps no trailing zeros: 0.00135, not 0.0013500000)."""
    return Decimal(units) / _USD_UNITS if unit == "usd" else units


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def scope_text(scope_value: tuple[str, ...]) -> str:
    """A scope value as one string, distinct for distinct values: its parts joined by
    U+001F, or as JSON when a part holds U+001F itself (tag values are any text, and
    ("a\x1fb", "c") must not share a counter or an alert with ("a", "b\x1fc"))."""
    if len(scope_value) > 1 and any("\x1f" in part for part in scope_value):
        return json.dumps(scope_value, ensure_ascii=False)  # '[...]': never a plain join
    return "\x1f".join(scope_value)


def counter_key(budget_name: str, scope_value: tuple[str, ...], start: dt.datetime) -> str:
    value = scope_text(scope_value)
    stamp = start.strftime("%Y%m%dT%H%MZ")
    return f"{KEY_PREFIX}budget:{_digest(budget_name)}:{_digest(value)}:{stamp}"


def alert_key(dedup_key: str) -> str:
    return f"{KEY_PREFIX}alert:{_digest(dedup_key)}"


@runtime_checkable
class FleetCounter(Protocol):
    """What budgets need from a shared counter. ``add`` is called on the call's path and
    must not wait; ``read`` and ``claim`` wait for one round trip (with a timeout)."""

    def add(
        self,
        key: str,
        units: int,
        seed: int,
        expire_at: dt.datetime | None,
        on_total: Callable[[int], None],
    ) -> None:
        """Add ``units`` to ``key`` in the background; a key that does not exist yet (a
        new period, or a counter that lost its data) is first set to ``seed`` (what the
        metadata store had counted). ``on_total`` gets the total after the addition,
        on a background thread. Never raises; a failure is counted and logged."""
        ...

    def read(self, key: str, timeout: float) -> int | None:
        """The key's total now (0 if it does not exist), or None when the counter cannot
        answer within ``timeout`` seconds."""
        ...

    def claim(self, dedup_key: str, ttl: float) -> bool:
        """True for the first process to claim ``dedup_key`` within ``ttl`` seconds (an
        alert is sent by that process only); True also when the counter cannot answer,
        since a duplicate alert is better than a lost one."""
        ...

    def close(self) -> None:
        """Stop and release connections. Idempotent."""
        ...
