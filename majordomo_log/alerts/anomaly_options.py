"""``Anomalies``: which anomaly alerts to raise and where their lines are drawn.

A frozen options object, checked when it is made, so a typo or a limit of zero fails
at ``LoggingLLM(...)`` rather than as an alert storm (or silence) in production. The
rules themselves are in ``alerts/anomaly.py``; ``docs/alerts.md`` explains each one.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from .._exceptions import ConfigError

# Tag names, as a budget's scope takes them.
TAG_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")
# Caps that keep one key's memory and one call's work small: a window of costs is two
# arrays of doubles with an O(window) insertion, a baseline a ring of doubles.
MAX_SPIKE_WINDOW = 10_000
MAX_BASELINE_PERIODS = 1_000


@dataclass(frozen=True, kw_only=True)
class Anomalies:
    """The anomaly rules of ``LoggingLLM(anomalies=...)``; each is off with ``None``
    (``unpriced_models=False``).

    * ``error_rate``: alert when more than this share of calls (0 to 1) failed over the
      last ``error_window`` seconds, once at least ``min_calls`` calls are in the window
      (one error in two calls is not an alert). Only status "error" is a failure.
    * ``cost_spike``: alert when one call costs more than this many times the median of
      the last ``spike_window`` priced calls of its (model, feature), once ``min_samples``
      calls are known and the call costs at least ``min_spike_usd``; at most once per
      (model, feature) per ``spike_cooldown`` seconds.
    * ``spend_jump``: alert when a value of a ``jump_by`` tag (a feature, a user) has spent
      more than this many times its baseline in the current ``jump_period`` (the mean
      spend per period over up to ``baseline_periods`` periods before), once
      ``min_baseline_periods`` of those had spend and this period's spend reaches
      ``min_jump_usd``; once per value and period.
    * ``unpriced_models``: alert the first time a model with no price is called.
    * ``max_keys``: how many (model, feature) pairs, and how many (tag, value) pairs, are
      remembered; the least recently seen is forgotten first. Tag values come from
      callers, so this bounds the memory a flood of distinct values can take.
    """

    error_rate: float | None = 0.25
    error_window: float = 300.0
    min_calls: int = 20
    cost_spike: float | None = 10.0
    spike_window: int = 200
    min_samples: int = 20
    min_spike_usd: Decimal = Decimal("0.01")
    spike_cooldown: float = 600.0
    spend_jump: float | None = 3.0
    jump_period: float = 3600.0
    baseline_periods: int = 24
    min_baseline_periods: int = 3
    min_jump_usd: Decimal = Decimal("1.00")
    jump_by: tuple[str, ...] = ("feature", "user_id")
    unpriced_models: bool = True
    max_keys: int = 10_000

    def __post_init__(self) -> None:
        # coerced values are set back through object.__setattr__: the class is frozen
        if self.error_rate is not None:
            rate = _real("error_rate", self.error_rate)
            if not 0 < rate < 1:
                raise ConfigError(
                    f"Anomalies error_rate= is a share of calls between 0 and 1 (0.25 is 25%), "
                    f"got {self.error_rate!r}; None turns the rule off"
                )
            object.__setattr__(self, "error_rate", rate)
        for name in ("error_window", "spike_cooldown", "jump_period"):
            object.__setattr__(self, name, _seconds(name, getattr(self, name)))
        for name in ("cost_spike", "spend_jump"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _multiple(name, value))
        _count("min_calls", self.min_calls)
        _count("spike_window", self.spike_window, most=MAX_SPIKE_WINDOW)
        _count("min_samples", self.min_samples, most=self.spike_window)
        _count("baseline_periods", self.baseline_periods, most=MAX_BASELINE_PERIODS)
        _count("min_baseline_periods", self.min_baseline_periods, most=self.baseline_periods)
        _count("max_keys", self.max_keys)
        object.__setattr__(self, "min_spike_usd", _usd("min_spike_usd", self.min_spike_usd))
        object.__setattr__(self, "min_jump_usd", _usd("min_jump_usd", self.min_jump_usd))
        object.__setattr__(self, "jump_by", _tag_names(self.jump_by))
        if not isinstance(self.unpriced_models, bool):
            raise ConfigError(
                f"Anomalies unpriced_models= is True or False, got {self.unpriced_models!r}"
            )


def _real(name: str, value: Any) -> float:
    """A finite number (an int will do; a bool or a string will not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise ConfigError(f"Anomalies {name}= must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ConfigError(f"Anomalies {name}= must be a finite number, got {value!r}")
    return number


def _seconds(name: str, value: Any) -> float:
    seconds = _real(name, value)
    if seconds <= 0:
        raise ConfigError(
            f"Anomalies {name}= is a length of time in seconds above 0, got {value!r}"
        )
    return seconds


def _multiple(name: str, value: Any) -> float:
    multiple = _real(name, value)
    if multiple <= 1:
        raise ConfigError(
            f"Anomalies {name}= is how many times the usual figure counts as an anomaly, "
            f"so above 1, got {value!r}; None turns the rule off"
        )
    return multiple


def _count(name: str, value: Any, most: int | None = None) -> None:
    if type(value) is not int or value < 1:
        raise ConfigError(f"Anomalies {name}= must be a whole number of at least 1, got {value!r}")
    if most is not None and value > most:
        raise ConfigError(f"Anomalies {name}= can be at most {most}, got {value!r}")


def _usd(name: str, value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ConfigError(f"Anomalies {name}= must be an amount in dollars, got a bool")
    try:
        # a float goes through its shortest repr: 0.1 is ten cents, not 0.1000000000000000055
        amount = Decimal(repr(value) if isinstance(value, float) else value)
    except (InvalidOperation, TypeError, ValueError):
        raise ConfigError(
            f"Anomalies {name}= must be an amount in dollars, got {value!r}"
        ) from None
    if not amount.is_finite() or amount < 0:
        raise ConfigError(f"Anomalies {name}= must be an amount of at least 0, got {value!r}")
    return amount


def _tag_names(value: Any) -> tuple[str, ...]:
    names = (value,) if isinstance(value, str) else value
    try:
        names = tuple(names)
    except TypeError:
        raise ConfigError(f"Anomalies jump_by= takes tag names, got {value!r}") from None
    if not names:
        raise ConfigError(
            "Anomalies jump_by= is empty: name a tag, or turn the rule off with spend_jump=None"
        )
    for name in names:
        if not isinstance(name, str) or not TAG_NAME.match(name):
            raise ConfigError(
                f"Anomalies jump_by= takes tag names (letters, digits, _ . -), got {name!r}"
            )
    if len(set(names)) != len(names):
        raise ConfigError(f"Anomalies jump_by= names a tag twice: {names!r}")
    return names
