"""``Budget``: a limit on spend, tokens or requests, per period, per scope value.

A budget is a plain, immutable description; what it has counted so far lives in a
ledger (``budgets/ledger.py``), and the check before a call and the charge after it
in ``budgets/guard.py``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .._exceptions import ConfigError
from ..record.values import storable, value_text
from .periods import PERIODS, period_bounds

UNITS = ("usd", "tokens", "requests")
# Scope names other than tags: the wrapper's key alias is a column of its own.
_TAG_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")
ScopeValue = tuple[str, ...]


class Budget:
    """A limit on what calls may spend, per period, for each value of a scope.

    ``Budget("5.00", per="day", scope="user_id", hard=True)``: five dollars per user per
    UTC day, and a user's call is refused (``ml.BudgetExceeded``, before the provider is
    called) once their spend today has reached five dollars. Count tokens or requests
    instead with ``limit_tokens=`` or ``limit_requests=`` (and ``limit_usd=None``).

    * ``per``: ``"call"`` (a cap on one call, checked against an estimate of its largest
      possible cost before it is sent), ``"minute"``, ``"hour"``, ``"day"``, ``"week"``
      (Monday to Monday), ``"month"`` or ``"total"``; calendar periods in UTC, or in
      ``tz`` (an IANA name such as ``"Europe/Paris"``).
    * ``scope``: None for everything the wrapper logs; a tag name (``"user_id"``,
      ``"feature"``, ``"api_key_alias"``, any tag) for one budget per value of that tag;
      a tuple of tag names for one per combination (``("org_id", "user_id")``). A call
      without a value for every scope tag is not counted by that budget.
    * ``hard``: refuse calls once the limit is reached; otherwise only alert.
    * ``thresholds``: fractions of the limit at which an alert is sent, once per scope
      value and period.
    """

    __slots__ = ("hard", "limit", "name", "per", "scope", "thresholds", "tz", "unit")

    def __init__(
        self,
        limit_usd: Decimal | str | int | float | None = None,
        per: str = "",
        scope: str | Iterable[str] | None = None,
        hard: bool = False,
        thresholds: Iterable[float] = (0.5, 0.8, 1.0),
        name: str | None = None,
        *,
        limit_tokens: int | None = None,
        limit_requests: int | None = None,
        tz: str | None = None,
    ) -> None:
        given = [
            (unit, value)
            for unit, value in zip(UNITS, (limit_usd, limit_tokens, limit_requests), strict=True)
            if value is not None
        ]
        if len(given) != 1:
            raise ConfigError(
                "a Budget takes exactly one of limit_usd, limit_tokens and limit_requests"
            )
        self.unit, raw = given[0]
        self.limit: Decimal | int = _limit(self.unit, raw)
        if per not in PERIODS:
            raise ConfigError(f"Budget per= must be one of {', '.join(PERIODS)}, got {per!r}")
        if per == "call" and self.unit == "requests":
            raise ConfigError("a per-call budget counts dollars or tokens, not requests")
        self.per = per
        self.scope: tuple[str, ...] = _scope(scope)
        self.hard = bool(hard)
        self.thresholds: tuple[float, ...] = _thresholds(thresholds)
        try:
            self.tz = None if tz in (None, "UTC") else ZoneInfo(str(tz))
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"Budget tz= is not a known time zone: {tz!r}") from None
        self.name = _name(name) if name is not None else self._default_name()

    def _default_name(self) -> str:
        amount = f"${self.limit}" if self.unit == "usd" else f"{self.limit} {self.unit}"
        by = f" by {'/'.join(self.scope)}" if self.scope else ""
        return f"{amount} per {self.per}{by}"

    def __repr__(self) -> str:
        kind = "hard" if self.hard else "soft"
        return f"<Budget {self.name!r} {kind}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Budget) and self.definition() == other.definition()

    def __hash__(self) -> int:
        return hash(self.name)

    def bounds(self, at: float) -> tuple[dt.datetime, dt.datetime | None]:
        """The period holding Unix time ``at``: ``(start, end)`` in UTC."""
        return period_bounds(self.per, at, self.tz)

    def scope_value(self, tags: Mapping[str, Any]) -> ScopeValue | None:
        """The values of the scope tags in ``tags``, as text (``()`` for an unscoped
        budget); None when one is missing: the budget does not count this call."""
        values = []
        for tag in self.scope:
            value = tags.get(tag)
            if value is None or value == "":
                return None
            # non-text values as the rows hold them: JSON text (true, 42), not str()
            values.append(value if type(value) is str else value_text(storable(value)) or "")
        return tuple(values)

    def definition(self) -> dict[str, Any]:
        """What the budget is, as JSON-able values: stored in ``llm_budgets`` for
        ``majordomo-log budgets status``, read back by ``Budget.from_definition``."""
        return {
            "name": self.name,
            "unit": self.unit,
            "limit": str(self.limit),
            "per": self.per,
            "scope": list(self.scope),
            "hard": self.hard,
            "thresholds": list(self.thresholds),
            "tz": None if self.tz is None else self.tz.key,
        }

    @classmethod
    def from_definition(cls, data: Mapping[str, Any]) -> Budget:
        unit = data.get("unit")
        if unit not in UNITS:
            raise ConfigError(f"a budget definition's unit must be one of {UNITS}, got {unit!r}")
        limits: dict[str, Any] = {"limit_usd": None}
        limits[f"limit_{unit}"] = data.get("limit") if unit == "usd" else int(data["limit"])
        return cls(
            per=str(data.get("per", "")),
            scope=data.get("scope") or None,
            hard=bool(data.get("hard", False)),
            thresholds=data.get("thresholds", (0.5, 0.8, 1.0)),
            name=data.get("name"),
            tz=data.get("tz"),
            **limits,
        )


def _limit(unit: str, value: Any) -> Decimal | int:
    if unit == "usd":
        if isinstance(value, bool):
            raise ConfigError("Budget limit_usd must be an amount in dollars, got a bool")
        try:
            # a float goes through its shortest repr: 0.1 is ten cents, not 0.1000000000000000055
            amount = Decimal(repr(value) if isinstance(value, float) else value)
        except (InvalidOperation, TypeError, ValueError):
            raise ConfigError(
                f"Budget limit_usd must be an amount in dollars, got {value!r}"
            ) from None
        if not amount.is_finite() or amount <= 0:
            raise ConfigError(f"Budget limit_usd must be above zero, got {value!r}")
        return amount
    if type(value) is not int or value <= 0:
        raise ConfigError(f"Budget limit_{unit} must be a whole number above zero, got {value!r}")
    return value


def _scope(scope: str | Iterable[str] | None) -> tuple[str, ...]:
    if scope is None:
        return ()
    names = (scope,) if isinstance(scope, str) else tuple(scope)
    if not names:
        raise ConfigError("Budget scope= is empty: give a tag name, a tuple of them, or None")
    for name in names:
        if not isinstance(name, str) or not _TAG_NAME.match(name):
            raise ConfigError(
                f"Budget scope= takes tag names (letters, digits, _ . -), got {name!r}"
            )
    if len(set(names)) != len(names):
        raise ConfigError(f"Budget scope= names a tag twice: {names!r}")
    return names


def _thresholds(values: Iterable[float]) -> tuple[float, ...]:
    try:
        fractions = tuple(sorted({float(v) for v in values}))
    except (TypeError, ValueError):
        raise ConfigError(
            f"Budget thresholds= must be fractions of the limit, got {values!r}"
        ) from None
    for fraction in fractions:
        if not math.isfinite(fraction) or fraction <= 0:
            raise ConfigError(f"Budget thresholds must be above zero, got {fraction!r}")
    return fractions


def _name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise ConfigError(
            f"Budget name= must be non-empty text of at most 200 characters, got {name!r}"
        )
    return name
