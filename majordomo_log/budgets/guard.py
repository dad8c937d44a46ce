"""The budgets of one wrapper, on the call's path: ``check`` before the provider is
called, ``charge`` once the call has completed.

``check`` reads only memory: each hard budget's tally for the call's scope value and
period (``budgets/ledger.py``), compared with its limit. The one exception is a fleet
budget near its limit (``Ledger.near_limit``: 80% of it, a fleet figure over a second
old, or a fleet rate that could reach it within two seconds): with
``budget_store="redis://..."`` its counter is read before the call (one round trip), so
that processes sharing a budget stop within the calls in flight. ``charge`` prices the
call at once (``budgets/charge.py``: integer arithmetic for the common call,
``CallRecord.priced()`` for the rest), adds it to every tally it counts in (in counter
units: ints), sends the alerts of thresholds it crossed, and hands the addition to the
fleet counter in the background. The scope values are worked out once per call
(``values_of``) and kept on the record between the two.

Neither raises into the caller for its own failures: a bug here is counted and logged
through ``internal_error`` and the call goes on as if there were no budgets.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .._exceptions import BudgetExceeded, ConfigError
from .._log import warn_once
from ..record.values import MAX_CHARS, hash_value, storable_mapping, value_text
from ..schema import MAX_TAG_CHARS, PROMOTED_TAGS
from .alerting import budget_alert, format_amount
from .charge import completed_cost
from .estimate import largest_cost, largest_tokens
from .fleet import FleetCounter, counter_key, from_units
from .ledger import Ledger, Tally, ledger_for

if TYPE_CHECKING:
    from ..alerts.dispatch import AlertDispatcher
    from ..alerts.events import AlertEvent
    from ..alerts.watch import AnomalyWatch
    from ..record.call import CallRecord
    from .budget import Budget, ScopeValue
    from .reconcile import Reconciler

COLUMN_TAGS = frozenset((*PROMOTED_TAGS, "api_key_alias"))  # tags with a column of their own
READ_TIMEOUT = 0.25  # a fleet read that takes longer falls back to the local figure
HASH_CACHE_TEXT = 256  # longer tag values are hashed on each call, not cached


class BudgetGuard:
    """Checks and charges the budgets of one wrapper (and its ``with_options`` copies)."""

    def __init__(
        self,
        budgets: Iterable[Budget],
        store_url: str,
        *,
        alert: Callable[[AlertEvent], None] | None,
        fleet: FleetCounter | None,
        internal_error: Callable[[Exception], None],
    ) -> None:
        budgets = tuple(budgets)
        names = [b.name for b in budgets]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"budgets need distinct names; given twice: {duplicates}")
        self.budgets = budgets
        self.ledgers = tuple(ledger_for(store_url, b) for b in budgets if b.per != "call")
        # the hard ones, with their place in ``ledgers`` (and in values_of()'s tuple)
        self.hard = tuple(
            (i, ledger) for i, ledger in enumerate(self.ledgers) if ledger.budget.hard
        )
        self.caps = tuple(b for b in budgets if b.per == "call")
        self.hard_caps = tuple(b for b in self.caps if b.hard)
        self.alert = alert
        self.fleet = fleet
        self.internal_error = internal_error
        self.reconciler: Reconciler | None = None  # set by the wrapper's constructor
        self._hashed: dict[tuple[str, Any], str] = {}
        self.blocked = 0
        self.watcher: AnomalyWatch | None = None
        self.dispatcher: AlertDispatcher | None = None  # set by budgets/setup.py

    def close(self, timeout: float = 2.0) -> None:
        """The wrapper is closing: run the anomaly rules over what is left, send the
        alerts still pending (up to ``timeout`` seconds), stop both threads. Never raises."""
        try:
            if self.watcher is not None:
                self.watcher.close()
            if self.dispatcher is not None:
                self.dispatcher.close(timeout)
        except Exception as exc:
            self.internal_error(exc)

    def watch(self, watch: AnomalyWatch) -> None:
        """Hand every completed call to the anomaly rules too (``alerts/watch.py``)."""
        self.watcher = watch

    # -- before the call ---------------------------------------------------------------

    def check(self, record: CallRecord, request: Mapping[str, Any]) -> BudgetExceeded | None:
        """The refusal of a hard budget this call would break, or None to let it go."""
        try:
            if self.hard:
                values = self.values_of(record)
                for index, ledger in self.hard:
                    refusal = self._check_period(ledger, record, values[index])
                    if refusal is not None:
                        return refusal
            for budget in self.hard_caps:
                refusal = self._check_cap(budget, record, request)
                if refusal is not None:
                    return refusal
        except Exception as exc:  # a budget bug must not stop the call
            self.internal_error(exc)
        return None

    def _check_period(
        self, ledger: Ledger, record: CallRecord, value: ScopeValue | None
    ) -> BudgetExceeded | None:
        budget = ledger.budget
        if value is None:
            return None
        tally, new = ledger.tally(value, record.started_at)
        if new:
            self._reconcile(ledger, value, tally)
        limit = ledger.limit
        if tally.spent < limit and self.fleet is not None and ledger.near_limit(tally):
            self._read_fleet(ledger, value, tally)
        if tally.spent < limit:
            return None
        spent = from_units(tally.spent, budget.unit)
        return self._refusal(budget, value, spent, tally.end, record)

    def _check_cap(
        self, budget: Budget, record: CallRecord, request: Mapping[str, Any]
    ) -> BudgetExceeded | None:
        value = self.scope_value(budget, record)
        if value is None:
            return None
        if budget.unit == "usd":
            most: Decimal | int | None = largest_cost(
                record.ctx.prices, record.model, record.operation, request, record.started_at
            )
        else:
            most = largest_tokens(request, record.operation)
        if most is None:
            warn_once(
                "budget_estimate_unknown",
                budget.name,
                "budget %r caps each call, but a call's largest cost could not be estimated "
                "(no price for the model, no max_tokens, or images/audio in the request): "
                "it was let through and is checked when it completes",
                budget.name,
            )
            return None
        if most <= budget.limit:
            return None
        return self._refusal(budget, value, most, None, record)

    def _refusal(
        self, budget: Budget, value: ScopeValue, spend: Decimal | int, end: Any, record: CallRecord
    ) -> BudgetExceeded:
        self.blocked += 1
        scope = ", ".join(f"{t}={v}" for t, v in zip(budget.scope, value, strict=True))
        where = f" for {scope}" if scope else ""
        if budget.per == "call":
            what = f"the call could cost up to {format_amount(spend, budget.unit)}"
            until = ""
        else:
            what = f"spent {format_amount(spend, budget.unit)}"
            until = "" if end is None else f"; the period ends {end.strftime('%Y-%m-%dT%H:%M:%SZ')}"
        message = (
            f"budget {budget.name!r} refused the call{where}: {what} of "
            f"{format_amount(budget.limit, budget.unit)}{until}"
        )
        return BudgetExceeded(
            message,
            budget=budget,
            scope_value=value,
            spend=spend,
            limit=budget.limit,
            period_end=end,
            request_id=record.request_id,
        )

    # -- after the call ----------------------------------------------------------------

    def charge(self, record: CallRecord) -> None:
        """Count a completed call (ok, error or incomplete) in every budget it falls in."""
        try:
            usage, cost, cost_status = completed_cost(record)
            if self.watcher is not None:
                self.watcher.observe(record, cost, cost_status)
            values = self.values_of(record) if self.ledgers else ()
            reconciler = self.reconciler
            for ledger, value in zip(self.ledgers, values, strict=True):
                if value is None:
                    continue
                budget = ledger.budget
                amount = _amount_of(budget.unit, usage, cost)
                if not amount:
                    continue
                tally, new = ledger.tally(value, record.started_at)
                with ledger.lock:
                    tally.spent += amount
                if reconciler is not None:
                    if new:
                        reconciler.request(ledger, value, tally)
                    else:
                        tally.used = True  # read again from the store at the next interval
                    if tally.spent >= ledger.near and budget.hard:
                        reconciler.hurry()
                if self.fleet is not None:
                    self._add_to_fleet(ledger, value, tally, amount)
                self.crossed(ledger, value, tally)
            for budget in self.caps:
                self._charge_cap(budget, record, usage, cost)
            if reconciler is not None and time.monotonic() >= reconciler.due:
                reconciler.kick()
        except Exception as exc:
            self.internal_error(exc)

    def _charge_cap(self, budget: Budget, record: CallRecord, usage: Any, cost: Any) -> None:
        amount = _amount_of(budget.unit, usage, cost)
        if not amount or self.alert is None:
            return
        spent = from_units(amount, budget.unit)
        value = self.scope_value(budget, record)
        if value is None or spent < budget.limit * Decimal(repr(budget.thresholds[-1])):
            return
        self.alert(budget_alert(budget, value, None, None, spent, budget.thresholds[-1], record))

    def crossed(self, ledger: Ledger, value: ScopeValue, tally: Tally) -> None:
        """Alert each threshold the tally has reached since the last alert (once each)."""
        budget = ledger.budget
        thresholds, marks = budget.thresholds, ledger.marks
        if tally.crossed >= len(thresholds) or tally.spent < marks[tally.crossed]:
            return
        if self.alert is None:
            return
        with ledger.lock:
            first = tally.crossed
            while tally.crossed < len(thresholds) and tally.spent >= marks[tally.crossed]:
                tally.crossed += 1
            reached = thresholds[first : tally.crossed]
            spent = from_units(tally.spent, budget.unit)
        for threshold in reached:
            self.alert(budget_alert(budget, value, tally.start, tally.end, spent, threshold))

    # -- the store and the fleet ---------------------------------------------------------

    def _reconcile(self, ledger: Ledger, value: ScopeValue, tally: Tally) -> None:
        if self.reconciler is not None:
            self.reconciler.request(ledger, value, tally)

    def _add_to_fleet(self, ledger: Ledger, value: ScopeValue, tally: Tally, amount: int) -> None:
        assert self.fleet is not None
        key = counter_key(ledger.budget.name, value, tally.start)

        def on_total(total: int) -> None:
            raised = ledger.raise_to(value, tally.start, total)
            if raised is not None:
                raised.saw_fleet(total, time.monotonic())
                self.crossed(ledger, value, raised)

        self.fleet.add(key, amount, tally.stored, tally.end, on_total)

    def _read_fleet(self, ledger: Ledger, value: ScopeValue, tally: Tally) -> None:
        assert self.fleet is not None
        total = self.fleet.read(counter_key(ledger.budget.name, value, tally.start), READ_TIMEOUT)
        if total is None:
            return
        tally.saw_fleet(total, time.monotonic())
        raised = ledger.raise_to(value, tally.start, total)
        if raised is not None:
            self.crossed(ledger, value, raised)

    # -- scope values -------------------------------------------------------------------

    def values_of(self, record: CallRecord) -> tuple[ScopeValue | None, ...]:
        """The call's scope value for each of ``ledgers``, worked out once per call (the
        check and the charge both need them)."""
        values: tuple[ScopeValue | None, ...] | None = record.budget_values
        if values is None:
            values = tuple(self.scope_value(ledger.budget, record) for ledger in self.ledgers)
            record.budget_values = values
        return values

    def scope_value(self, budget: Budget, record: CallRecord) -> ScopeValue | None:
        """The call's values of the budget's scope tags, as stored on its row (a tag in
        ``hash_tags`` as its HMAC; text cleaned and cut as its column or the ``tags`` JSON
        holds it), so that the store's figures are found for it; None when one is
        missing."""
        scope = budget.scope
        if not scope:
            return ()
        ctx = record.ctx
        context = record.context_tags
        values = []
        for name in scope:
            if name == "api_key_alias":
                raw: Any = ctx.api_key_alias
            else:
                raw = context.get(name) if context else None
                if raw is None:
                    raw = ctx.tags.get(name)
            if raw is None or raw == "":
                return None
            if (
                type(raw) is str
                and len(raw) + len(name) <= MAX_CHARS
                and raw.isascii()
                and "\x00" not in raw
            ):
                text: str | None = raw
            else:  # as the row stores it: cleaned, cut (the store is read back by this value)
                text = value_text(storable_mapping({name: raw}).get(name))
            if text is None:
                return None
            if name in ctx.hash_tags:
                text = self._hash(name, text, ctx.tag_secret)
            elif len(text) > MAX_TAG_CHARS and name in COLUMN_TAGS:
                # as the row's column holds it (record/rows.py), so the store's figure
                # for this value is found when reconciling
                text = text[: MAX_TAG_CHARS - 1] + "…"
            values.append(text)
        return tuple(values)

    def _hash(self, name: str, text: str, secret: bytes) -> str:
        if len(text) > HASH_CACHE_TEXT:  # not kept: the cache's size is bounded in bytes too
            return hash_value(text, secret)
        key = (name, text)
        digest = self._hashed.get(key)
        if digest is None:
            if len(self._hashed) > 10_000:
                self._hashed.clear()
            digest = self._hashed[key] = hash_value(text, secret)
        return digest


def _amount_of(unit: str, usage: Any, cost: int | None) -> int:
    """What a completed call counts in a budget of ``unit``, in counter units (0:
    nothing): ``cost`` is the call's in units of 1e-10 USD."""
    if unit == "usd":
        return 0 if cost is None else cost
    if unit == "tokens":
        return 0 if usage is None or "unreadable_usage" in usage.flags else usage.total
    return 1
