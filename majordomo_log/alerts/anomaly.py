"""Anomaly alerts: what the calls themselves say is going wrong, sent through the same
sinks as budget alerts.

Four rules, each turned off with ``None`` (``False`` for the last) in ``Anomalies``:

* ``error_rate``: the share of failed calls over the last ``error_window`` seconds is
  above the limit (once at least ``min_calls`` calls are in the window);
* ``cost_spike``: one call costs more than N times the rolling median of the last
  ``spike_window`` priced calls of the same model and feature;
* ``spend_jump``: a feature's or a user's spend in the current period (an hour) is more
  than N times its mean over the periods before (a day);
* ``unpriced_models``: a model the price table does not know, once per model.

``AnomalyDetector.observe`` is handed a ``CallSummary`` of every completed call, on the
alert dispatcher's thread, never on the caller's path. All its state is bounded (see
``alerts/rolling.py``), and the time is the calls' own, so a replay gives the same alerts.
Each alert's ``dedup_key`` names the occurrence the same way in every process (the rule,
the key, and the aligned window or period it fell in), so a fleet's processes seeing the
same anomaly send it once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, NamedTuple
from urllib.parse import quote

from .._exceptions import ConfigError
from .._log import logger, warn_once
from .anomaly_options import Anomalies  # re-exported: the detector's options
from .events import AlertEvent
from .rolling import ErrorWindow, KeyedLRU, RollingMedian, SpendHistory

__all__ = ["Anomalies", "AnomalyDetector", "CallSummary"]

UTC = dt.timezone.utc
# Statuses that count as calls in the error rate: "blocked" (refused by a budget before
# the provider was called) is not a call the provider saw. Only "error" is a failure:
# "incomplete" is a stream the caller stopped.
COUNTED_STATUSES = frozenset({"ok", "error", "incomplete"})
ERROR_WINDOW_SLOTS = 60
# Longer tag values are hashed in a dedup key, and shortened in a title.
KEY_PART_CHARS = 100
TITLE_VALUE_CHARS = 60
TEN_PLACES = Decimal("1e-10")
EMPTY_TAGS: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class CallSummary:
    """What the anomaly rules need to know about one completed call: plain fields, built
    once per call off the caller's path.

    ``tags`` is the call's attribution mapping as the row stores it (hashed where
    ``hash_tags`` says so, so an alert never shows a value the database does not): the
    feature is read from it (``tags["feature"]``) and the spend-jump rule reads the tags
    ``Anomalies.jump_by`` names. One mapping rather than a field per tag, so any tag can
    be watched and the caller passes the mapping it already has, without a copy."""

    at: float  # Unix time the call started
    model: str | None  # the model the caller asked for
    provider: str
    status: str  # "ok", "error", "incomplete" or "blocked"
    cost: Decimal | None  # USD; None when it could not be priced
    cost_status: str  # "computed", "unknown_model", ...
    request_id: str
    tags: Mapping[str, Any] = field(default_factory=lambda: EMPTY_TAGS)

    @property
    def feature(self) -> str | None:
        return _tag_value(self.tags, "feature")


class _Call(NamedTuple):
    """A summary after its fields were checked: the rules read only these."""

    at: float
    model: str | None
    provider: str
    status: str
    cost: Decimal | None
    cost_float: float
    cost_status: str
    request_id: str
    feature: str | None
    jump_values: tuple[tuple[str, str], ...]  # (tag, value) for the jump_by tags present


class _SpikeState:
    """A (model, feature)'s recent costs and the cooldown slot it last alerted in."""

    __slots__ = ("alerted", "costs")

    def __init__(self, size: int) -> None:
        self.costs = RollingMedian(size)
        self.alerted: int | None = None


class AnomalyDetector:
    """Watches completed calls and returns the anomaly alerts they raise.

    ``observe`` is meant for one background thread (the alert dispatcher's); a lock makes
    a second caller safe, not fast. It never raises: a summary it cannot read is counted
    in ``bad_summaries`` and skipped, and the others are unaffected."""

    def __init__(self, rules: Anomalies) -> None:
        if not isinstance(rules, Anomalies):
            raise ConfigError(f"AnomalyDetector takes an Anomalies, got {type(rules).__name__}")
        self.rules = rules
        self.observed = 0  # summaries read
        self.bad_summaries = 0  # summaries skipped because a field could not be read
        self._lock = threading.Lock()
        self._errors = ErrorWindow(rules.error_window, ERROR_WINDOW_SLOTS)
        self._error_armed = True  # the rate was at or below the limit since the last alert
        self._error_alerted_at = -math.inf
        self._error_last_key: str | None = None
        self._spikes: KeyedLRU[tuple[str, str], _SpikeState] = KeyedLRU(rules.max_keys)
        self._spend: KeyedLRU[tuple[str, str], SpendHistory] = KeyedLRU(rules.max_keys)
        self._unpriced: KeyedLRU[str, bool] = KeyedLRU(rules.max_keys)

    def observe(self, summary: CallSummary) -> list[AlertEvent]:
        """The alerts this call raises (usually none)."""
        try:
            call = _read(summary, self.rules.jump_by)
        except Exception as exc:  # a bad summary costs only itself
            self._skip(exc)
            return []
        with self._lock:
            self.observed += 1
            try:
                events = [
                    event
                    for event in (
                        self._error_rate(call),
                        self._cost_spike(call),
                        self._unpriced_model(call),
                    )
                    if event is not None
                ]
                events.extend(self._spend_jumps(call))
            except Exception as exc:  # a bug here must not stop the dispatcher
                self._skip(exc)
                return []
        return events

    def tracked_keys(self) -> dict[str, int]:
        """How many keys each rule holds now (each at most ``Anomalies.max_keys``)."""
        with self._lock:
            return {
                "cost_spike": len(self._spikes),
                "spend_jump": len(self._spend),
                "unpriced_model": len(self._unpriced),
            }

    def _skip(self, exc: Exception) -> None:
        self.bad_summaries += 1
        warn_once(
            "anomaly_bad_summary",
            type(exc).__name__,
            "majordomo_log: an anomaly check skipped a call it could not read (%s: %s)",
            type(exc).__name__,
            exc,
        )
        logger.debug("anomaly check failed", exc_info=exc)

    # -- the rules -----------------------------------------------------------------------

    def _error_rate(self, call: _Call) -> AlertEvent | None:
        limit = self.rules.error_rate
        if limit is None or call.status not in COUNTED_STATUSES:
            return None
        window = self._errors
        window.add(call.at, call.status == "error")
        if window.calls < self.rules.min_calls:
            return None
        rate = window.errors / window.calls
        if rate <= limit:
            self._error_armed = True
            return None
        seconds = self.rules.error_window
        # above the limit: alert on crossing it, then remind once a window while it stays
        if not self._error_armed and call.at < self._error_alerted_at + seconds:
            return None
        start = math.floor(call.at / seconds) * seconds
        key = f"error_rate:{stamp(start)}"
        if key == self._error_last_key:
            return None
        self._error_armed = False
        self._error_alerted_at = call.at
        self._error_last_key = key
        critical = rate >= min(1.0, 2 * limit)
        return AlertEvent(
            kind="error_rate",
            title=(
                f"Error rate {percent(rate)} over the last {duration(seconds)} "
                f"({window.errors} of {window.calls} calls) is above {percent(limit)}"
            ),
            severity="critical" if critical else "warning",
            dedup_key=key,
            at=_moment(call.at),
            details={
                "rate": rate,
                "errors": window.errors,
                "calls": window.calls,
                "limit": limit,
                "window_seconds": seconds,
                "request_id": call.request_id,
            },
        )

    def _cost_spike(self, call: _Call) -> AlertEvent | None:
        multiple = self.rules.cost_spike
        if multiple is None or call.cost is None:
            return None
        model, feature = call.model or "", call.feature or ""
        size = self.rules.spike_window
        state = self._spikes.get_or_create((model, feature), lambda: _SpikeState(size))
        costs = state.costs
        event = None
        # compared with the calls before it, then added: a spike moves a median little
        if len(costs) >= self.rules.min_samples and call.cost >= self.rules.min_spike_usd:
            median = costs.median()
            cooldown = self.rules.spike_cooldown
            slot = math.floor(call.at / cooldown)
            if call.cost_float > multiple * median and (
                state.alerted is None or slot > state.alerted
            ):
                state.alerted = slot
                event = self._spike_event(call, median, len(costs), slot * cooldown)
        costs.add(call.cost_float)
        return event

    def _spike_event(self, call: _Call, median: float, samples: int, since: float) -> AlertEvent:
        assert call.cost is not None
        ratio = call.cost_float / median if median > 0 else None
        by = f" for feature {shown(call.feature)}" if call.feature else ""
        if ratio is None:  # calls that were free until now (a zero price, a cache)
            versus = f"while its median over its last {samples} calls is $0"
        else:
            versus = f"{ratio:.1f}x its median of {usd(median)} over its last {samples} calls"
        return AlertEvent(
            kind="cost_spike",
            title=f"A {shown(call.model or '(no model)')} call{by} cost {usd(call.cost)}, {versus}",
            severity="warning",
            dedup_key=(
                f"cost_spike:model={key_part(call.model or '')}:"
                f"feature={key_part(call.feature or '')}:{stamp(since)}"
            ),
            at=_moment(call.at),
            unit="usd",
            details={
                "cost": call.cost,
                "median": to_decimal(median),
                "ratio": None if ratio is None else round(ratio, 2),
                "limit": self.rules.cost_spike,
                "samples": samples,
                "model": call.model,
                "provider": call.provider,
                "feature": call.feature,
                "request_id": call.request_id,
            },
        )

    def _spend_jumps(self, call: _Call) -> list[AlertEvent]:
        multiple = self.rules.spend_jump
        if multiple is None or call.cost is None or not call.jump_values:
            return []
        seconds = self.rules.jump_period
        period = math.floor(call.at / seconds)
        periods = self.rules.baseline_periods
        events = []
        for tag, value in call.jump_values:
            history = self._spend.get_or_create((tag, value), lambda: SpendHistory(periods))
            if not history.add(period, call.cost):
                continue  # a late call, for a period already past: baseline only
            if history.alerted == period or history.current < self.rules.min_jump_usd:
                continue
            baseline, counted, spent = history.baseline()
            if spent < self.rules.min_baseline_periods:
                continue
            spend = float(history.current)
            if spend <= multiple * baseline:
                continue
            history.alerted = period
            events.append(
                self._jump_event(call, tag, value, history.current, baseline, counted, period)
            )
        return events

    def _jump_event(
        self,
        call: _Call,
        tag: str,
        value: str,
        spend: Decimal,
        baseline: float,
        counted: int,
        period: int,
    ) -> AlertEvent:
        seconds = self.rules.jump_period
        start = period * seconds
        name = period_name(seconds)
        ratio = float(spend) / baseline
        return AlertEvent(
            kind="spend_jump",
            title=(
                f"Spend of {tag} {shown(value)} is {usd(spend)} in the {name} from "
                f"{_moment(start):%Y-%m-%d %H:%M} UTC, {ratio:.1f}x its baseline of "
                f"{usd(baseline)} per {name} over the {periods(counted, name)} before"
            ),
            severity="warning",
            dedup_key=f"spend_jump:{key_part(tag)}={key_part(value)}:{stamp(start)}",
            at=_moment(call.at),
            scope=(tag,),
            scope_value=(value,),
            period=name,
            period_start=_moment(start),
            period_end=_moment(start + seconds),
            unit="usd",
            spend=spend,
            details={
                "tag": tag,
                "value": value,
                "spend": spend,
                "baseline": to_decimal(baseline),
                "ratio": round(ratio, 2),
                "limit": self.rules.spend_jump,
                "baseline_periods": counted,
                "period_seconds": seconds,
                "request_id": call.request_id,
            },
        )

    def _unpriced_model(self, call: _Call) -> AlertEvent | None:
        if not self.rules.unpriced_models or call.cost_status != "unknown_model":
            return None
        model = call.model
        if not model:
            return None
        if model in self._unpriced:
            self._unpriced.get_or_create(model, bool)  # keep it recently used
            return None
        self._unpriced.get_or_create(model, lambda: True)
        return AlertEvent(
            kind="unpriced_model",
            title=(
                f"Model {shown(model)} ({call.provider}) has no price: its calls are logged "
                "with no cost until it is added to a price file"
            ),
            severity="warning",
            dedup_key=f"unpriced_model:{key_part(model)}",
            at=_moment(call.at),
            details={"model": model, "provider": call.provider, "request_id": call.request_id},
        )


# -- reading a summary -------------------------------------------------------------------


def _read(summary: CallSummary, jump_by: tuple[str, ...]) -> _Call:
    """The summary's fields, checked: raises on anything the rules could not use."""
    at = summary.at
    if isinstance(at, bool) or not isinstance(at, (int, float)) or not math.isfinite(at):
        raise TypeError(f"CallSummary.at must be a finite Unix time, got {at!r}")
    cost = summary.cost
    cost_float = 0.0
    if cost is not None:
        if not isinstance(cost, Decimal) or not cost.is_finite() or cost < 0:
            raise TypeError(f"CallSummary.cost must be a Decimal of at least 0, got {cost!r}")
        cost_float = float(cost)
    tags = summary.tags
    if not isinstance(tags, Mapping):
        raise TypeError(f"CallSummary.tags must be a mapping, got {type(tags).__name__}")
    jump_values = tuple(
        (tag, value) for tag in jump_by if (value := _tag_value(tags, tag)) is not None
    )
    return _Call(
        at=float(at),
        model=_optional_text(summary.model, "model"),
        provider=_text(summary.provider, "provider"),
        status=_text(summary.status, "status"),
        cost=cost,
        cost_float=cost_float,
        cost_status=_text(summary.cost_status, "cost_status"),
        request_id=_text(summary.request_id, "request_id"),
        feature=_tag_value(tags, "feature"),
        jump_values=jump_values,
    )


def _tag_value(tags: Mapping[str, Any], tag: str) -> str | None:
    """A tag's value as text (as a budget scope reads it); None when absent or empty."""
    value = tags.get(tag)
    if value is None:
        return None
    text = value if type(value) is str else str(value)
    return text or None


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"CallSummary.{name} must be text, got {type(value).__name__}")
    return value


def _optional_text(value: Any, name: str) -> str | None:
    return None if value is None else _text(value, name)


# -- formatting: dedup keys and titles ----------------------------------------------------


def stamp(seconds: float) -> str:
    """A window's or period's start in a dedup key: ``2026-12-05T10:00Z``."""
    moment = _moment(seconds)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if moment.second:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.strftime("%Y-%m-%dT%H:%MZ")


def key_part(value: str) -> str:
    """A name or tag value in a dedup key: percent-encoded, so a value holding ``:`` or
    ``=`` cannot pass for another key; hashed when long, so a key stays short."""
    if len(value) > KEY_PART_CHARS:
        digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
        return f"sha256-{digest[:32]}"
    return quote(value, safe="", errors="surrogatepass")


def shown(value: str | None) -> str:
    """A caller-chosen value in a title: quoted and escaped (no line breaks or control
    characters reach a chat message), and shortened."""
    text = "" if value is None else value
    if len(text) > TITLE_VALUE_CHARS:
        text = text[: TITLE_VALUE_CHARS - 1] + "…"
    return repr(text)


def usd(amount: Decimal | float) -> str:
    value = float(amount)
    if value >= 1:
        return f"${value:,.2f}"
    if value >= 0.0001 or value == 0:
        return f"${value:.4f}"
    return f"${value:.8f}"


def percent(fraction: float) -> str:
    text = f"{fraction * 100:.1f}"
    return (text[:-2] if text.endswith(".0") else text) + "%"


def duration(seconds: float) -> str:
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            if unit == "day":
                return "day" if count == 1 else f"{count} days"
            return f"{count} {unit}"
    return f"{seconds:g} s"


def period_name(seconds: float) -> str:
    """The period in a title: "hour" for 3600 seconds, "day", "minute", else "30 min"."""
    names = {60.0: "minute", 3600.0: "hour", 86400.0: "day"}
    return names.get(float(seconds)) or duration(seconds)


def periods(count: int, name: str) -> str:
    """A count of periods in a title: "5 hours", "1 day", "3 periods of 30 min"."""
    if name in ("minute", "hour", "day"):
        return f"{count} {name}" if count == 1 else f"{count} {name}s"
    return f"{count} period of {name}" if count == 1 else f"{count} periods of {name}"


def to_decimal(value: float) -> Decimal:
    """A float figure (a median, a mean) as dollars to 10 places, as costs are stored."""
    try:
        return Decimal(repr(value)).quantize(TEN_PLACES)
    except InvalidOperation:  # too large for the context's precision at 10 places
        return Decimal(repr(value))


def _moment(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, UTC)
