"""Budgets read back from the metadata store: so a budget holds across restarts and
across processes that share the store.

* At start, each budget's current period is read in one query (``preload``): spend per
  scope value so far. A wrapper whose writer runs on the library's thread waits for it
  (up to ``PRELOAD_TIMEOUT``); one on the application's event loop cannot wait in a
  constructor, and its first calls are checked against what is counted until it lands.
* A scope value seen for the first time in a period is read at once, in the background.
* Every ``interval`` seconds, the scope values used since are read again, which is how
  one process learns what the others have spent.

The queries run where the store lives: the library's writer thread, or the event loop
the store was opened on. A tally is raised to the store's figure, never lowered
(``budgets/ledger.py`` says why that counts nothing twice).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from .._log import warn_once
from ..stores.sql.spend import spend_by_scope
from .fleet import to_units
from .ledger import MAX_TALLIES, Ledger, Tally

if TYPE_CHECKING:
    from ..stores.base import MetadataStore
    from .budget import ScopeValue

PRELOAD_TIMEOUT = 5.0
DEFAULT_INTERVAL = 5.0
MAX_VALUES_PER_QUERY = 500

Spawn = Callable[[Callable[[], Coroutine[Any, Any, None]]], None]
Raised = Callable[[Ledger, "ScopeValue", Tally], None]


def spawner_on_loop(loop: asyncio.AbstractEventLoop) -> Spawn:
    """Run coroutines as tasks of ``loop``, from any thread (tasks kept until done)."""
    tasks: set[asyncio.Task[None]] = set()

    def create(make: Callable[[], Coroutine[Any, Any, None]]) -> None:
        task = loop.create_task(make())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def spawn(make: Callable[[], Coroutine[Any, Any, None]]) -> None:
        if loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(create, make)
        except RuntimeError:  # closed in between
            pass

    return spawn


class Reconciler:
    """Reads the store's figures for the tallies of some ledgers, in the background."""

    def __init__(
        self,
        store: MetadataStore,
        ledgers: tuple[Ledger, ...],
        spawn: Spawn,
        on_raised: Raised,
        interval: float = DEFAULT_INTERVAL,
    ) -> None:
        self.store = store
        self.ledgers = ledgers
        self.spawn = spawn
        self.on_raised = on_raised
        self.interval = interval
        self._lock = threading.Lock()
        self._now: dict[Ledger, dict[ScopeValue, Tally]] = {}  # new tallies: read at once
        self._running = False
        self.due = time.monotonic() + interval  # when the used tallies are read again
        self.failures = 0

    def request(self, ledger: Ledger, value: ScopeValue, tally: Tally) -> None:
        """Read this (new) tally's figure from the store as soon as possible."""
        with self._lock:
            self._now.setdefault(ledger, {})[value] = tally
            start = not self._running
            self._running = True
        if start:
            self.spawn(self._drain)

    def hurry(self) -> None:
        """A hard budget is near its limit: read the used tallies within a tenth of the
        interval (the others' spend, learnt sooner, is what stops this process in time)."""
        soon = time.monotonic() + self.interval / 10
        if soon < self.due:
            self.due = soon

    def kick(self) -> None:
        """The interval is up: read the tallies used since, in the background."""
        with self._lock:
            start = not self._running
            self._running = True
        if start:
            self.spawn(self._drain)

    async def preload(self) -> None:
        """Every scope value's figure for each budget's current period."""
        now = time.time()
        for ledger in self.ledgers:
            budget = ledger.budget
            start, end = budget.bounds(now)
            try:
                figures = await spend_by_scope(self.store, budget.scope, budget.unit, start, end)
            except Exception as exc:
                self._failed(exc)
                continue
            for value, figure in list(figures.items())[:MAX_TALLIES]:
                tally, _ = ledger.tally(value, now)
                if tally.start != start:
                    continue
                tally.stored = to_units(figure, budget.unit)
                ledger.raise_to(value, start, tally.stored)
                tally.reconciled = True
                # crossed before this process started: alerted then, not again on every deploy
                while (
                    tally.crossed < len(ledger.marks) and tally.spent >= ledger.marks[tally.crossed]
                ):
                    tally.crossed += 1

    async def _drain(self) -> None:
        try:
            while True:
                with self._lock:
                    batch, self._now = self._now, {}
                    if not batch and time.monotonic() >= self.due:
                        batch, near = self._used()
                        # a hard budget near its limit is read ten times as often: the
                        # others' spend, learnt sooner, is what stops this process in time
                        interval = self.interval / 10 if near else self.interval
                        self.due = time.monotonic() + interval
                    if not batch:
                        self._running = False
                        return
                await self._read(batch)
        except BaseException:
            with self._lock:
                self._running = False
            raise

    def _used(self) -> tuple[dict[Ledger, dict[ScopeValue, Tally]], bool]:
        """The tallies charged since the last interval, their flags cleared, and whether
        one of them is a hard budget's at 80% of its limit or more (called under the lock,
        on the store's loop: a scan of the ledgers, off the callers' path)."""
        used: dict[Ledger, dict[ScopeValue, Tally]] = {}
        near = False
        for ledger in self.ledgers:
            hard = ledger.budget.hard
            for value, tally in list(ledger.tallies.items()):
                if tally.used:
                    tally.used = False
                    used.setdefault(ledger, {})[value] = tally
                    near = near or (hard and tally.spent >= ledger.near)
        return used, near

    async def _read(self, batch: dict[Ledger, dict[ScopeValue, Tally]]) -> None:
        for ledger, tallies in batch.items():
            budget = ledger.budget
            by_period: dict[Any, list[tuple[ScopeValue, Tally]]] = {}
            for value, tally in tallies.items():
                by_period.setdefault(tally.start, []).append((value, tally))
            for start, items in by_period.items():
                for first in range(0, len(items), MAX_VALUES_PER_QUERY):
                    chunk = items[first : first + MAX_VALUES_PER_QUERY]
                    try:
                        figures = await spend_by_scope(
                            self.store,
                            budget.scope,
                            budget.unit,
                            start,
                            chunk[0][1].end,
                            values=[value for value, _ in chunk],
                        )
                    except Exception as exc:
                        self._failed(exc)
                        continue
                    for value, tally in chunk:
                        figure = to_units(figures.get(value, 0), budget.unit)
                        tally.stored = figure
                        tally.reconciled = True
                        raised = ledger.raise_to(value, start, figure)
                        if raised is not None:
                            self.on_raised(ledger, value, raised)

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        warn_once(
            "budget_reconcile_failed",
            type(exc).__name__,
            "budgets could not read spend from the metadata store (%s): counting this "
            "process's calls only until it answers",
            type(exc).__name__,
        )
