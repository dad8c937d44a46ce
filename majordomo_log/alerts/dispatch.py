"""``AlertDispatcher``: alerts leave the caller's path at once and reach every sink in the
background, each sink on its own retry schedule, each dedup key once.

The call path only calls ``submit()``: a dict lookup and a deque append under a lock that
the sending thread holds only for bookkeeping (``pending.py``), never during I/O. So a
Slack outage or a PagerDuty that hangs never slows an LLM call, and nothing raises into it.

One daemon thread (``majordomo-log-alerts``), started with the first alert, sends. New
alerts go to the sinks that are up first; a sink that failed is tried again on its own
schedule (exponential backoff with jitter; ``Retry-After`` honoured up to ``max_backoff``)
through one heap of due attempts, so a sink that is down costs the others at most one of
its timeouts at a time. An alert is given up on a sink after ``max_attempts``, or at once
when the sink refused it for good (a 4xx): nothing is retried forever.

Dedupe: a ``dedup_key`` is sent at most once per process (the last ``dedup_memory`` keys
are remembered). Across processes, ``claim(dedup_key) -> bool`` (e.g. Redis ``SET NX``) is
asked on the sending thread: False means another process has it. If ``claim`` raises, the
alert is sent anyway: better a duplicate than a lost alert.
"""

from __future__ import annotations

import atexit
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import cast

from .._exceptions import ConfigError
from .._log import logger, warn_once
from .events import AlertEvent
from .pending import Attempt, Delivery, DispatchStats, Pending
from .sinks import AlertSink, SinkError

THREAD_NAME = "majordomo-log-alerts"
DEDUP_MEMORY = 100_000
EXIT_FLUSH_SECONDS = 2.0

# This process's dispatchers, for the exit flush and the reset after fork. Weak: one that
# was never used may simply go (a running thread keeps its dispatcher alive anyway).
_LIVE: weakref.WeakSet[AlertDispatcher] = weakref.WeakSet()
_exit_hook_registered = [False]


class AlertDispatcher:
    """Delivers alerts to ``sinks`` off the call path. ``submit(event)`` never blocks and
    never raises; ``flush()`` waits for what was submitted; ``close()`` flushes and stops.

    ``claim(dedup_key) -> bool``: the fleet-wide dedupe (optional). ``max_attempts``: tries
    per sink and alert. Retries wait ``backoff * 2**n`` seconds, jittered, at most
    ``max_backoff``. ``max_pending``: alerts unfinished at once; more are dropped, counted.
    """

    def __init__(
        self,
        sinks: Iterable[AlertSink] | AlertSink,
        *,
        claim: Callable[[str], bool] | None = None,
        max_attempts: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_pending: int = 1000,
        dedup_memory: int = DEDUP_MEMORY,
    ) -> None:
        listed = (
            [cast(AlertSink, sinks)] if _is_sink(sinks) else list(cast(Iterable[AlertSink], sinks))
        )
        for index, sink in enumerate(listed):
            if not _is_sink(sink):
                raise ConfigError(
                    f"alert sink #{index} ({type(sink).__name__}) has no send(event) method"
                )
        if claim is not None and not callable(claim):
            raise ConfigError("claim must be a callable taking a dedup key")
        for name, number, least in (
            ("max_attempts", max_attempts, 1),
            ("max_pending", max_pending, 1),
            ("dedup_memory", dedup_memory, 0),
        ):
            if isinstance(number, bool) or not isinstance(number, int) or number < least:
                raise ConfigError(f"{name} must be a whole number of at least {least}")
        for name, seconds in (("backoff", backoff), ("max_backoff", max_backoff)):
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
                raise ConfigError(f"{name} must be a number of seconds")
            if not 0 <= seconds < float("inf"):
                raise ConfigError(f"{name} must be a number of seconds, 0 or more")
        self._sinks: tuple[AlertSink, ...] = tuple(listed)
        self._names = _unique_names(self._sinks)
        self._claim = claim
        self._max_attempts = max_attempts
        self._backoff = float(backoff)
        self._max_backoff = float(max_backoff)
        self._max_pending = max_pending
        self._dedup_memory = dedup_memory
        self._seen: dict[str, None] = {}  # insertion-ordered: the oldest key is forgotten
        self._closed = False
        self._reset()
        _LIVE.add(self)

    def _reset(self) -> None:
        """Delivery state, fresh: at creation, and in a forked child (where the parent's
        thread does not exist and its lock may have been held at the fork)."""
        self._pid = os.getpid()
        self._pending = Pending(len(self._sinks))
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"AlertDispatcher(sinks={list(self._names)!r})"

    @property
    def sink_names(self) -> tuple[str, ...]:
        """The names ``stats().sinks`` uses (a repeated name gets ``#2``, ``#3``...)."""
        return self._names

    # -- the call path ------------------------------------------------------------------

    def submit(self, event: AlertEvent) -> None:
        """Queue ``event`` for every sink. O(1); never waits on I/O; never raises."""
        try:
            self._submit(event)
        except Exception:  # a bug here may cost an alert, never the caller's LLM call
            warn_once("alert_submit_failed", "", "An alert could not be queued; it is lost")

    def _submit(self, event: AlertEvent) -> None:
        if os.getpid() != self._pid:
            self._reset()
        pending, key = self._pending, event.dedup_key
        starting = None
        with pending.lock:
            if key and key in self._seen:
                pending.duplicates += 1
                return
            if self._closed or len(pending.unfinished) >= self._max_pending:
                pending.dropped += 1
                dropped = "closed" if self._closed else "full"
            else:
                dropped = ""
                pending.submitted += 1
                if key and self._dedup_memory:
                    self._seen[key] = None
                    if len(self._seen) > self._dedup_memory:
                        del self._seen[next(iter(self._seen))]
                if self._sinks:
                    pending.add(event)
                    starting = self._thread_to_start()
        if dropped:
            warn_once(
                "alert_dropped",
                f"{id(self)}:{dropped}",
                "Alerts are being dropped (%s); counted in AlertDispatcher.stats()",
                "the dispatcher is closed"
                if dropped == "closed"
                else f"{self._max_pending} are waiting for their sinks, max_pending",
            )
        elif starting is not None:
            self._start(starting)

    # -- the thread -----------------------------------------------------------------------

    def _thread_to_start(self) -> threading.Thread | None:
        """Under the lock: a new thread if none is running (started outside the lock)."""
        if self._thread is not None and self._thread.is_alive():
            return None
        self._thread = threading.Thread(target=self._serve, name=THREAD_NAME, daemon=True)
        return self._thread

    def _start(self, thread: threading.Thread) -> bool:
        if not _exit_hook_registered[0]:
            _exit_hook_registered[0] = True
            atexit.register(_flush_all_at_exit)
        try:
            thread.start()
            return True
        except RuntimeError:  # no new thread at interpreter shutdown: flush() sends inline
            with self._pending.lock:
                if self._thread is thread:
                    self._thread = None
            return False

    def _serve(self) -> None:
        pending = self._pending
        try:
            while (work := pending.next_work()) is not None:
                self._process(*work)
        finally:
            with pending.lock:
                if pending.stopping:
                    pending.abandon()

    def _process(self, batch: list[Delivery], retry: Attempt | None) -> None:
        for delivery in batch:
            try:
                if self._claimed(delivery):
                    # Sinks that are up go first: one that is down may take its whole timeout.
                    order = sorted(range(len(self._sinks)), key=self._is_down)
                    for sink in order:
                        self._try(sink, delivery, 1)
            except Exception:  # a bug of ours must not end the thread that sends every alert
                logger.exception("Alert dispatch failed unexpectedly")
        if retry is not None:
            try:
                self._try(retry.sink, retry.delivery, retry.number)
            except Exception:
                logger.exception("Alert dispatch failed unexpectedly")

    def _is_down(self, sink: int) -> bool:
        return self._pending.sinks[sink].down

    def _claimed(self, delivery: Delivery) -> bool:
        key = delivery.event.dedup_key
        if self._claim is None or not key:
            return True
        pending = self._pending
        try:
            ours = bool(self._claim(key))
        except Exception as exc:
            with pending.lock:
                pending.claim_errors += 1
            warn_once(
                "alert_claim_failed",
                type(exc).__name__,
                "The alert claim raised %s; alerts are sent without it (one may go twice)",
                type(exc).__name__,
            )
            return True
        if not ours:
            with pending.lock:
                pending.claimed_elsewhere += 1
                pending.finish(delivery, len(self._sinks))
        return ours

    def _try(self, sink: int, delivery: Delivery, number: int) -> None:
        """Attempt ``number`` of ``delivery`` on ``sink``; or, while the sink is down and
        its next try has not come, put it off until then."""
        pending, counts = self._pending, self._pending.sinks[sink]
        with pending.lock:
            if pending.stopping:  # closed while this batch was being sent
                counts.dropped += 1
                pending.finish(delivery)
                return
            if counts.down and counts.next_try > time.monotonic():
                pending.schedule(sink, delivery, number, counts.next_try)
                return
            if number > 1:
                counts.retried += 1
        try:
            self._sinks[sink].send(delivery.event)
        except SinkError as exc:  # its message names no secret (sinks.py)
            self._failed(sink, delivery, number, exc.transient, exc.retry_after, str(exc))
        except Exception as exc:  # a user's sink: its message might hold its secrets
            reason = f"{type(exc).__name__} raised by the sink"
            self._failed(sink, delivery, number, True, None, reason)
        else:
            with pending.lock:
                counts.sent += 1
                counts.down = False
                pending.finish(delivery)

    def _failed(
        self,
        sink: int,
        delivery: Delivery,
        number: int,
        transient: bool,
        retry_after: float | None,
        reason: str,
    ) -> None:
        name, pending, counts = self._names[sink], self._pending, self._pending.sinks[sink]
        logger.debug("Alert sink %s failed (attempt %d): %s", name, number, reason)
        with pending.lock:
            counts.down = transient  # a refusal is an answer: the sink is up
            if pending.stopping:
                counts.dropped += 1
                pending.finish(delivery)
                return
            if transient:
                # The sink's own schedule: its other alerts wait for this time too.
                due = time.monotonic() + self._delay(number, retry_after)
                counts.next_try = max(counts.next_try, due)
                if number < self._max_attempts:
                    pending.schedule(sink, delivery, number + 1, due)
                    return
        # Logged before it counts as finished, so a flush() that returned has seen it.
        what = f"gave up on an alert after {number} attempts" if transient else "refused an alert"
        warn_once(
            "alert_sink_down" if transient else "alert_sink_refused",
            name,
            "Alert sink %s %s: %s (not retried; later ones are counted in "
            "AlertDispatcher.stats(), not logged)",
            name,
            what,
            reason,
        )
        with pending.lock:
            counts.failed += 1
            pending.finish(delivery)

    def _delay(self, number: int, retry_after: float | None) -> float:
        """The wait after failed attempt ``number``: doubling, jittered (a fleet that failed
        together does not retry together), capped; at least ``Retry-After``, capped too (a
        server asking for an hour must not hold an alert for an hour)."""
        base = min(self._max_backoff, self._backoff * 2.0 ** min(number - 1, 60))
        delay = base * random.uniform(0.5, 1.0)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self._max_backoff))
        return delay

    # -- flush, close, stats --------------------------------------------------------------

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every alert submitted so far is delivered or given up on every sink.
        False if ``timeout`` seconds passed first (delivery goes on)."""
        if os.getpid() != self._pid:
            self._reset()
        pending = self._pending
        deadline = time.monotonic() + max(timeout, 0.0)
        with pending.lock:
            upto = pending.seq
            if pending.done_upto(upto):
                return True
            if threading.current_thread() is self._thread:
                return False  # a sink flushing inside send(): waiting would deadlock
            starting = self._thread_to_start()
        if starting is not None and not self._start(starting):
            while (work := pending.next_work(deadline, upto)) is not None:
                self._process(*work)  # at shutdown, on this thread
        with pending.lock:
            while not pending.done_upto(upto):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                pending.changed.wait(left)
            return True

    def close(self, timeout: float = 5.0) -> bool:
        """Flush (up to ``timeout``), then stop the thread; what is still unfinished is
        counted dropped. Idempotent; a later ``submit()`` is dropped and counted. True if
        everything was delivered or given up in time."""
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._pending.lock:
            if self._closed:
                return not self._pending.unfinished
        flushed = self.flush(timeout)
        pending = self._pending
        with pending.lock:
            self._closed = pending.stopping = True
            pending.changed.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(deadline - time.monotonic(), 0.0))
        with pending.lock:
            pending.abandon()  # an alert still in a send() is the thread's to count
        _LIVE.discard(self)
        return flushed

    def stats(self) -> DispatchStats:
        with self._pending.lock:
            return self._pending.stats(self._names)

    def _after_fork_in_child(self) -> None:
        """The parent sends what it had queued; the child starts empty, keeping the dedup
        keys seen (what the parent sent is not sent again)."""
        if os.getpid() != self._pid:
            self._reset()

    def _flush_at_exit(self, timeout: float) -> None:
        if os.getpid() == self._pid:
            self.flush(timeout)


def _is_sink(value: object) -> bool:
    return callable(getattr(value, "send", None))


def _unique_names(sinks: tuple[AlertSink, ...]) -> tuple[str, ...]:
    names: list[str] = []
    for sink in sinks:
        try:
            base = str(sink.name)
        except Exception:  # a user's sink without a name still gets counted
            base = ""
        base = base or type(sink).__name__
        name, count = base, 1
        while name in names:
            count += 1
            name = f"{base}#{count}"
        names.append(name)
    return tuple(names)


def _flush_all_at_exit() -> None:
    """Alerts raised just before exit still go out (the daemon thread would be killed
    mid-send): one short wait shared by every dispatcher, never a hang."""
    deadline = time.monotonic() + EXIT_FLUSH_SECONDS
    for dispatcher in list(_LIVE):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            dispatcher._flush_at_exit(left)
        except Exception:
            pass


def _reset_after_fork() -> None:
    for dispatcher in list(_LIVE):
        dispatcher._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
