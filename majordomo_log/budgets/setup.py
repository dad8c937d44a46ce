"""A wrapper's budgets and alerts, assembled from ``LoggingLLM``'s arguments: the guard
(``budgets/guard.py``), its reconciler on the store's loop (``budgets/reconcile.py``),
the fleet counter (``budgets/redis_counter.py``) and the alert dispatcher
(``alerts/dispatch.py``)."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigError
from .._log import warn_once
from ..stores.base import BudgetRegistry
from .budget import Budget
from .guard import BudgetGuard
from .reconcile import PRELOAD_TIMEOUT, Reconciler, spawner_on_loop

if TYPE_CHECKING:
    from ..alerts.anomaly import Anomalies
    from ..alerts.sinks import AlertSink
    from ..delivery.writer_thread import WriterThread
    from ..stores.base import MetadataStore


def spend_guard(
    db: MetadataStore,
    budgets: Iterable[Budget],
    alerts: Iterable[AlertSink] | None,
    anomalies: Anomalies | None,
    budget_store: str | None,
    thread: WriterThread | None,
    internal_error: Callable[[Exception], None],
) -> BudgetGuard | None:
    """The guard for a wrapper with budgets, alerts or anomaly rules; None without."""
    budgets = tuple(budgets)
    for budget in budgets:
        if not isinstance(budget, Budget):
            raise ConfigError(f"budgets= takes ml.Budget objects, got {type(budget).__name__}")
    if not budgets and not alerts and anomalies is None:
        if budget_store is not None:
            raise ConfigError("budget_store= is given but no budgets= to keep in it")
        return None
    if alerts is None:  # budgets or anomaly rules with nowhere said: the log, not silence
        from ..alerts.sinks import LogAlert

        alerts = (LogAlert(),)
    sinks = tuple(alerts)
    fleet = None
    if budget_store is not None:
        from .redis_counter import fleet_counter

        fleet = fleet_counter(budget_store)
    dispatcher = None
    if sinks:
        from ..alerts.dispatch import AlertDispatcher

        dispatcher = AlertDispatcher(
            sinks, claim=None if fleet is None else (lambda key: fleet.claim(key, 86_400.0))
        )
    guard = BudgetGuard(
        budgets,
        db.url,
        alert=None if dispatcher is None else dispatcher.submit,
        fleet=fleet,
        internal_error=internal_error,
    )
    guard.dispatcher = dispatcher
    if anomalies is not None:
        from ..alerts.watch import anomaly_watch

        if dispatcher is None:
            raise ConfigError("anomalies= needs somewhere to send its alerts: give alerts=[...]")
        guard.watch(anomaly_watch(anomalies, dispatcher.submit))
    if guard.ledgers:
        loop = thread.loop if thread is not None else asyncio.get_running_loop()
        spawn = spawner_on_loop(loop)
        guard.reconciler = Reconciler(db, guard.ledgers, spawn, guard.crossed)
        if thread is not None:  # the store is the writer thread's: wait for its figures
            try:
                thread.run(guard.reconciler.preload(), PRELOAD_TIMEOUT)
            except (concurrent.futures.TimeoutError, TimeoutError):
                warn_once(
                    "budget_preload_slow",
                    db.url,
                    "budgets: the metadata store did not give this period's spend within "
                    "%.0f s; counting from zero until it does",
                    PRELOAD_TIMEOUT,
                )
        else:
            spawn(guard.reconciler.preload)
        _record_definitions(db, budgets, spawn)
    return guard


def _record_definitions(
    db: MetadataStore, budgets: tuple[Budget, ...], spawn: Callable[[Any], None]
) -> None:
    """Write the budgets to ``llm_budgets`` for ``majordomo-log budgets status``."""
    if not isinstance(db, BudgetRegistry):  # a store of the user's own, without the table
        return
    save = db.save_budgets
    definitions = [budget.definition() for budget in budgets]

    async def record() -> None:
        try:
            await save(definitions)
        except Exception as exc:
            warn_once(
                "budget_definitions",
                type(exc).__name__,
                "budgets could not be recorded in the store for `budgets status` (%s)",
                type(exc).__name__,
            )

    spawn(record)
