"""Anomaly rules fed from the call path without slowing it: a completed call is one
``deque.append`` here; a daemon thread (``majordomo-log-anomalies``) turns the records
into ``CallSummary`` objects, runs ``AnomalyDetector.observe`` (``alerts/anomaly.py``:
some 16-32 µs a call, too much for the caller's path) and hands the alerts it raises to
the dispatcher.

The thread wakes every ``POLL_SECONDS`` to drain what arrived, rather than being woken
per call: waking a thread costs the caller a system call each time, and an anomaly alert
half a second later is as good. The backlog is bounded; a call that finds it full is
not watched, and counted.
"""

from __future__ import annotations

import atexit
import collections
import os
import threading
import weakref
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigError
from .._log import warn_once
from ..record.rows import merged_tags
from .anomaly import Anomalies, AnomalyDetector, CallSummary

if TYPE_CHECKING:
    from ..record.call import CallRecord
    from .events import AlertEvent

POLL_SECONDS = 0.5
USD_UNITS = Decimal(10**10)
MAX_BACKLOG = 100_000

_watches: weakref.WeakSet[AnomalyWatch] = weakref.WeakSet()


class AnomalyWatch:
    """Watches the completed calls of one wrapper for the ``Anomalies`` rules."""

    def __init__(self, rules: Anomalies, alert: Callable[[AlertEvent], None]) -> None:
        self.detector = AnomalyDetector(rules)
        self.alert = alert
        self.backlog: collections.deque[tuple[CallRecord, int | None, str]] = collections.deque()
        self.unwatched = 0  # calls not watched: the backlog was full
        self._pid = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        _watches.add(self)

    def observe(self, record: CallRecord, cost: int | None, cost_status: str) -> None:
        """On the caller's path: keep the call for the thread (``cost`` in units of
        1e-10 USD, made a Decimal there)."""
        if len(self.backlog) >= MAX_BACKLOG:
            self.unwatched += 1
            return
        self.backlog.append((record, cost, cost_status))
        if self._pid != os.getpid():  # first call, or a child after fork(): its own thread
            self._start()

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, name="majordomo-log-anomalies", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self.drain()

    def drain(self) -> None:
        """Run the rules over every call kept so far (also called at exit)."""
        backlog = self.backlog
        while backlog:
            try:
                record, cost, cost_status = backlog.popleft()
            except IndexError:
                return
            try:
                summary = CallSummary(
                    at=record.started_at,
                    model=record.model,
                    provider=record.provider,
                    status=record.status,
                    cost=None if cost is None else Decimal(cost) / USD_UNITS,
                    cost_status=cost_status,
                    request_id=record.request_id,
                    tags=merged_tags(record),
                )
                events = self.detector.observe(summary)
            except Exception as exc:  # one odd record costs only its own watching
                warn_once(
                    "anomaly_watch",
                    type(exc).__name__,
                    "anomaly rules could not read a call (%s)",
                    type(exc).__name__,
                )
                continue
            for event in events:
                self.alert(event)

    def close(self) -> None:
        self._stop.set()
        self.drain()


def _drain_at_exit() -> None:
    for watch in list(_watches):
        try:
            watch.drain()
        except Exception:  # exit must go on
            pass


atexit.register(_drain_at_exit)


def anomaly_watch(rules: Any, alert: Callable[[AlertEvent], None]) -> AnomalyWatch:
    if not isinstance(rules, Anomalies):
        raise ConfigError(f"anomalies= takes an ml.Anomalies, got {type(rules).__name__}")
    return AnomalyWatch(rules, alert)
