"""The alert dispatcher's bookkeeping, under one lock: the alerts not yet finished, the
new ones, the attempts due later, and the counts.

No I/O happens here, so the lock is only ever held for a few dict and heap operations:
``submit()`` on the caller's path never waits behind a send. Apart from ``next_work()``
(which takes the lock to wait on it), every method expects the caller to hold ``lock``.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from .events import AlertEvent


@dataclass(frozen=True)
class SinkStats:
    """One sink's counts. ``failed``: alerts given up (refused for good, or still failing
    after ``max_attempts``); ``retried``: attempts after the first; ``dropped``: alerts
    still unfinished when the dispatcher was closed."""

    sent: int = 0
    failed: int = 0
    retried: int = 0
    dropped: int = 0


@dataclass(frozen=True)
class DispatchStats:
    """The dispatcher's counts. ``submitted``: alerts accepted for delivery;
    ``duplicates``: dedup key already submitted in this process; ``dropped``: refused
    because ``max_pending`` alerts were unfinished, or after ``close()``;
    ``claimed_elsewhere``: ``claim`` said another process sends it; ``claim_errors``:
    ``claim`` raised (the alert was sent anyway); ``pending``: accepted, unfinished;
    ``sinks``: per sink name."""

    submitted: int = 0
    duplicates: int = 0
    dropped: int = 0
    claimed_elsewhere: int = 0
    claim_errors: int = 0
    pending: int = 0
    sinks: Mapping[str, SinkStats] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(eq=False)
class Delivery:
    """One accepted alert, until every sink is done with it."""

    seq: int
    event: AlertEvent
    unfinished_sinks: int


@dataclass(order=True)
class Attempt:
    """A later try of one alert on one sink."""

    due: float  # time.monotonic()
    order: int  # ties keep scheduling order; the fields below are never compared
    sink: int = field(compare=False)
    delivery: Delivery = field(compare=False)
    number: int = field(compare=False)  # 1 for the first try


@dataclass
class SinkCounts:
    sent: int = 0
    failed: int = 0
    retried: int = 0
    dropped: int = 0
    down: bool = False  # its last attempt failed in a way worth retrying
    next_try: float = 0.0  # while down: its earliest next attempt (time.monotonic())


class Pending:
    """What the dispatcher has accepted and not finished."""

    def __init__(self, sink_count: int) -> None:
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.inbox: deque[Delivery] = deque()  # accepted, not yet picked up by the thread
        self.due: list[Attempt] = []  # heap: retries, and first tries of a sink that is down
        self.unfinished: dict[int, Delivery] = {}  # by seq, so in ascending seq order
        self.sinks = [SinkCounts() for _ in range(sink_count)]
        self.stopping = False
        self.seq = self.order = 0
        self.submitted = self.duplicates = self.dropped = 0
        self.claimed_elsewhere = self.claim_errors = 0

    def add(self, event: AlertEvent) -> None:
        self.seq += 1
        delivery = Delivery(self.seq, event, len(self.sinks))
        self.unfinished[delivery.seq] = delivery
        self.inbox.append(delivery)
        self.changed.notify()

    def next_work(
        self, deadline: float | None = None, upto: int | None = None
    ) -> tuple[list[Delivery], Attempt | None] | None:
        """New alerts first, else the earliest attempt that is due; waits for either. None:
        stop (closing; or the deadline passed; or every alert up to ``upto`` is done).
        Takes the lock itself."""
        with self.lock:
            while True:
                if self.stopping or (upto is not None and self.done_upto(upto)):
                    return None
                if self.inbox:
                    batch = list(self.inbox)
                    self.inbox.clear()
                    return batch, None
                now = time.monotonic()
                if self.due and self.due[0].due <= now:
                    return [], heapq.heappop(self.due)
                wait = self.due[0].due - now if self.due else None
                if deadline is not None:
                    if now >= deadline:
                        return None
                    wait = deadline - now if wait is None else min(wait, deadline - now)
                self.changed.wait(wait)

    def schedule(self, sink: int, delivery: Delivery, number: int, due: float) -> None:
        self.order += 1
        heapq.heappush(self.due, Attempt(due, self.order, sink, delivery, number))
        self.changed.notify()

    def finish(self, delivery: Delivery, sinks: int = 1) -> None:
        """``sinks`` more sinks are done with ``delivery``."""
        delivery.unfinished_sinks -= sinks
        if delivery.unfinished_sinks <= 0 and self.unfinished.pop(delivery.seq, None) is not None:
            self.changed.notify_all()

    def abandon(self) -> None:
        """Closing: whatever still waits is counted dropped, per sink."""
        for delivery in self.inbox:
            for counts in self.sinks:
                counts.dropped += 1
            self.unfinished.pop(delivery.seq, None)
        self.inbox.clear()
        for attempt in self.due:
            self.sinks[attempt.sink].dropped += 1
            self.unfinished.pop(attempt.delivery.seq, None)
        self.due.clear()
        self.changed.notify_all()

    def done_upto(self, seq: int) -> bool:
        """Every alert accepted up to ``seq`` is delivered or given up."""
        return not self.unfinished or next(iter(self.unfinished)) > seq

    def stats(self, names: Sequence[str]) -> DispatchStats:
        sinks = {
            name: SinkStats(c.sent, c.failed, c.retried, c.dropped)
            for name, c in zip(names, self.sinks, strict=True)
        }
        return DispatchStats(
            submitted=self.submitted,
            duplicates=self.duplicates,
            dropped=self.dropped,
            claimed_elsewhere=self.claimed_elsewhere,
            claim_errors=self.claim_errors,
            pending=len(self.unfinished),
            sinks=MappingProxyType(sinks),
        )
