"""The application's side of ``writer="process"``, below its public surface
(``delivery/process.py``): the sender thread, the writer processes it starts and
buries, and the bookkeeping of what they acknowledged. See ``delivery/process.py``
for the design.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import os
import pickle
import threading
import time
import weakref
from typing import Any

from .._log import logger
from ..record.call import CallRecord
from ..stores.base import BodyStore, MetadataStore
from ..telemetry.observer import observe_shipped
from . import launch, wire
from .delivery import Delivery, QueueItem
from .options import ProcessOptions, QueueOptions, StartMethod
from .prepare import prepare, release
from .spool import Spool

_MAX_BACKOFF = 30.0  # between tries to start a child that keeps failing
_JOIN_GRACE = 5.0  # after close: how long the child gets to exit before it is killed
live: weakref.WeakSet[Shipper] = weakref.WeakSet()  # every writer's pipe: a fork closes them
closed_holding: set[Shipper] = set()  # closed, with late calls held for the spool


class Shipper:
    """Queue, sender thread and children; ``ProcessWriter`` adds the public surface."""

    db: MetadataStore
    storage: BodyStore | None
    spool: Spool | None
    queue_options: QueueOptions
    process_options: ProcessOptions
    method: StartMethod
    _recipes: tuple[launch.Recipe | None, launch.Recipe | None] | None
    _setup: launch.Setup
    _delivery: Delivery
    _lock: threading.Lock
    _closing: bool
    start_seconds: float = 0.0

    def _reset_state(self) -> None:
        self._pid = os.getpid()
        self._queue: collections.deque[tuple[QueueItem, int]] = collections.deque()
        self._overflow: list[QueueItem] = []  # over budget: for the spool
        self._unacked: dict[int, list[tuple[QueueItem, int]]] = {}
        self._requests: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = {}
        self._control: collections.deque[tuple[bytes, int, bytes]] = collections.deque()
        self._waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._bytes_in = self._bytes_out = 0  # queued + unacknowledged bytes: in - out
        self._enqueued = self._done = 0
        self._seq = itertools.count(1)
        self._child: launch.Child | None = None
        self._encoder: wire.Encoder | None = None
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._stop = False
        self._urgent = False  # a flush waits: send what is queued now
        self._failures = 0  # starts failed in a row
        self._next_start = 0.0
        self._gave_up = False  # no child could be started: the parent spools
        self._past: collections.Counter[str] = collections.Counter()  # earlier children's
        self._past_reasons: collections.Counter[str] = collections.Counter()
        self._child_stats: dict[str, Any] = {}
        self._bodies_dropped = self._internal_errors = 0
        self.starts = 0  # children started (for tests and stats)

    # -- the sender thread ---------------------------------------------------------------

    def _start_thread(self) -> None:
        with self._lock:
            if self._thread is not None or self._stop:
                return
            self._thread = threading.Thread(
                target=self._run, name="majordomo-log-sender", daemon=True
            )
        self._thread.start()

    def _stop_thread(self, child: launch.Child | None) -> None:
        if child is not None and not child.join(_JOIN_GRACE):
            logger.warning("the writer process %d did not exit: killed", child.pid)
            child.kill()
        self._stop = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(_JOIN_GRACE)

    def _run(self) -> None:
        interval = self.queue_options.flush_interval
        while not self._stop:
            queued = len(self._queue)
            if (
                (self._child is not None or not queued)  # else: start one now
                and queued < self.queue_options.batch_size
                and not self._overflow
                and not self._control
                and not (self._urgent and queued)  # a flush waits: nothing to send yet
            ):
                # Woken by a full batch (submit sets it once per batch), a flush, a
                # control message, an acknowledgement a waiter needs, or the timer.
                self._wake.wait(interval)
            self._wake.clear()
            try:
                self._cycle()
            except Exception as exc:  # a bug here: counted, and the sender goes on
                self._internal_errors += 1
                logger.exception("the writer process's sender failed", exc_info=exc)
                time.sleep(0.1)

    def _cycle(self) -> None:
        if self._overflow:
            self._spill_overflow()
        child = self._child
        if child is not None and child.dead:
            self._buried(child)
            child = None
        if child is None:
            if not (self._queue or self._unacked or self._control):
                self._urgent = False
                return
            if self._gave_up or time.monotonic() < self._next_start:
                if self._gave_up:
                    self._spool_held("writer_down")
                time.sleep(min(0.05, max(0.0, self._next_start - time.monotonic())))
                self._wake.set()  # try again soon
                return
            child = self._start_child()
            if child is None:
                return
        self._send_queued(child)

    def _send_queued(self, child: launch.Child) -> None:
        budget = self.queue_options
        while self._queue and not child.dead:
            count = min(budget.batch_size, len(self._queue))
            if count < budget.batch_size and not (self._urgent or self._control):
                break  # wait for a full batch, or the timer
            taken = [self._queue.popleft() for _ in range(count)]
            seq = next(self._seq)
            with self._lock:
                self._unacked[seq] = taken
            self._send_batch(child, seq, taken)
        if not self._queue:
            self._urgent = False
        while self._control and not child.dead:
            with self._lock:
                kind, seq, body = self._control.popleft()
            self._send(child, kind, seq, body)
        if not self._queue:
            with self._lock:
                self._urgent = bool(self._waiters) and self._done < self._enqueued

    def _send_batch(
        self, child: launch.Child, seq: int, taken: list[tuple[QueueItem, int]]
    ) -> None:
        assert self._encoder is not None
        items = [item for item, _ in taken]
        observe_shipped(items)  # this process's spans and metrics: the child has neither
        try:
            data = self._encoder.encode(items)
        except wire.NeedsRestart:
            # A hook the forked child does not know: a new child inherits it. This one
            # is closed after what it holds; the batch goes with the rest on restart.
            self._send(child, b"C", 0, pickle.dumps(10.0))
            return
        except Exception:
            self._make_picklable(items)
            try:
                data = self._encoder.encode(items)
            except Exception as exc:  # still not: kept in the spool rather than lost
                logger.error(
                    "a batch could not be sent to the writer process: %s", type(exc).__name__
                )
                with self._lock:
                    self._unacked.pop(seq, None)
                self._spill(items, "internal_error")
                self._finish(taken)
                return
        self._send(child, b"B", seq, *data)

    def _make_picklable(self, items: list[QueueItem]) -> None:
        """A response object that does not pickle (a custom client's): price it and build
        its body here, so that only plain values cross."""
        for item in items:
            if isinstance(item, CallRecord):
                try:
                    pickle.dumps(wire.encode_values(item), wire.PROTOCOL)
                except Exception:
                    prepare([item], self.storage is not None)
                    item.stream_chunks = None

    def _send(self, child: launch.Child, kind: bytes, seq: int, *body: bytes) -> None:
        """One message: ``kind``, ``seq``, then the body's parts, not joined first (only
        the sender thread writes to the pipe)."""
        try:
            wire.write_parts(child.conn.fileno(), [kind + seq.to_bytes(8, "big"), *body])
        except (OSError, ValueError):
            child.dead = True  # the receiver sees it too; the batch waits unacknowledged

    # -- children --------------------------------------------------------------------------

    def _start_child(self) -> launch.Child | None:
        others = [w._child.conn for w in list(live) if w is not self and w._child is not None]
        started = time.monotonic()
        try:
            child = launch.start(
                self.method,
                self.db,
                self.storage,
                self._recipes,
                self._setup,
                others,
                self.process_options.start_timeout,
            )
        except launch.ChildFailed as exc:
            self._failures += 1
            delay = min(_MAX_BACKOFF, 0.1 * 2 ** (self._failures - 1))
            self._next_start = time.monotonic() + delay
            logger.error(
                "the writer process could not be started (%s); next try in %.1f s", exc, delay
            )
            if self._failures > self.process_options.max_restarts and not self._gave_up:
                self._gave_up = True
                logger.error("no writer process: records are spooled until one starts")
            self._gave_up = self._gave_up or self._failures > self.process_options.max_restarts
            return None
        self.starts += 1
        self.start_seconds = time.monotonic() - started
        self._gave_up = False
        self._encoder = wire.Encoder(child.forked)
        self._child = child
        self._child_stats = {}
        threading.Thread(
            target=self._receive, args=(child,), name="majordomo-log-receiver", daemon=True
        ).start()
        for seq in sorted(self._unacked):  # what the last child did not acknowledge
            self._send_batch(child, seq, self._unacked[seq])
        return child

    def _buried(self, child: launch.Child) -> None:
        """The child's pipe closed: count it, keep its batches for the next one."""
        self._child = None
        child.close_pipe()
        if not child.join(1.0):
            child.kill()
        code = child.exitcode()
        stats = self._child_stats
        for name in ("written", "failed", "bodies_written", "bodies_failed", "outcomes_written",
                     "outcomes_unmatched", "internal_errors", "spilled", "replayed",
                     "bodies_dropped"):  # fmt: skip
            self._past[name] += stats.get(name, 0)
        self._past_reasons.update(stats.get("dropped_by_reason", {}))
        self._child_stats = {}
        with self._lock:
            requests, self._requests = self._requests, {}
        for loop, future in requests.values():
            resolve(loop, future, None)
        if self._stop or self._closing:
            return
        if child.acked:
            self._failures = 0
        self._failures += 1
        delay = 0.0 if self._failures == 1 else min(_MAX_BACKOFF, 0.1 * 2 ** (self._failures - 2))
        self._next_start = time.monotonic() + delay
        if self._failures > self.process_options.max_restarts + 1:
            self._gave_up = True
        logger.warning(
            "the writer process %d exited (code %s) with %d batches unacknowledged: %s",
            child.pid, code, len(self._unacked),
            "spooling them" if self._gave_up else "restarting it",
        )  # fmt: skip

    def _receive(self, child: launch.Child) -> None:
        while True:
            try:
                message = child.conn.recv()
            except (EOFError, OSError, pickle.UnpicklingError):
                break
            kind = message[0]
            if kind == "ack":
                _, seq, stats, value = message
                self._child_stats = stats
                child.acked += 1
                with self._lock:
                    taken = self._unacked.pop(seq, None)
                    request = self._requests.pop(seq, None)
                if taken is not None:
                    self._finish(taken, shipped=True)
                if request is not None:
                    resolve(request[0], request[1], value)
            elif kind == "log":
                logger.log(message[1], "writer process: %s", message[2])
            elif kind == "bad":
                with self._lock:
                    taken = self._unacked.pop(message[1], None)
                if taken is not None:
                    self._spill([item for item, _ in taken], "internal_error")
                    self._finish(taken)
        child.dead = True
        self._wake.set()

    # -- bookkeeping -------------------------------------------------------------------

    def _finish(self, taken: list[tuple[QueueItem, int]], shipped: bool = False) -> None:
        """``shipped``: acknowledged by a child, whose encoder read each record's
        provider request id already (``release`` would look again: 2 µs a record
        when the response has none)."""
        for item, _ in taken:
            if isinstance(item, CallRecord):
                if shipped:
                    item.response = item.request_json = item.envelope = None
                else:
                    release(item)
        self._bytes_out += sum(size for _, size in taken)
        self._advance(len(taken))

    def _advance(self, count: int) -> None:
        with self._lock:
            self._done += count
            done = self._done
            ready = [w for w in self._waiters if done >= w[0]]
            self._waiters = [w for w in self._waiters if done < w[0]]
        for _, loop, future in ready:
            resolve(loop, future, None)

    def _spool_held(self, reason: str) -> None:
        with self._lock:
            held = [b for b in self._unacked.values()]
            self._unacked.clear()
        while self._queue:
            held.append([self._queue.popleft() for _ in range(min(len(self._queue), 1000))])
        for taken in held:
            self._spill([item for item, _ in taken], reason)
            self._finish(taken)

    def _spill_overflow(self) -> None:
        items, self._overflow = self._overflow, []
        if items:
            self._spill(items, "overflow")
            self._advance(len(items))
        if not self._overflow:
            closed_holding.discard(self)

    def _spill(self, items: list[QueueItem], reason: str) -> None:
        try:
            self._delivery.spill_items(items, reason)
        except Exception as exc:  # a bug here: counted, never raised into the caller
            self._internal_errors += 1
            self._delivery.drop(items, "internal_error")
            logger.error("spooling %d records failed: %s", len(items), type(exc).__name__)


def resolve(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], value: Any) -> None:
    def settle() -> None:
        if not future.done():
            future.set_result(value)

    try:
        loop.call_soon_threadsafe(settle)
    except RuntimeError:
        pass  # that loop is closed: nobody waits any more
