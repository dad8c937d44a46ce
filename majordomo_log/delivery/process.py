"""``writer="process"``: the application only captures and ships; a child process
(``delivery/child.py``) prices, redacts, compresses and writes.

The caller appends to a deque, as with ``BatchWriter`` and to the same budgets
(``QueueOptions``: records and bytes, counting batches the child has not acknowledged).
A sender thread (no event loop needed: sync programs ship too) starts the child on
first use, takes batches off the queue, encodes them (``delivery/wire.py``) and sends
them; a receiver thread per child reads its acknowledgements, each sent once the child's
writer has written, spooled or refused the whole batch.

Nothing is lost when the child dies: a batch leaves the parent's memory only when it is
acknowledged. A dead child is restarted (``ProcessOptions.max_restarts`` times in a row,
with backoff) and every unacknowledged batch is sent again; a row already written is
skipped by the store (request_id is the key), so the resend is harmless. While no child
can be started, what is held goes to the spool from the parent (``Delivery.spill_items``,
the spool's format: replayed later as today), and starting is tried again every 30 s.
Exit: ``rescue("exit")`` hands what is queued to the child and waits for it (10 s at
most), then spools what is left; a signal or a failed hand-off spools at once.
"""

from __future__ import annotations

import asyncio
import collections
import os
import pickle
import threading
import time
from typing import Any

from ..record.call import CallContext, CallRecord
from ..stores.base import BodyStore, MetadataStore
from . import launch, lifecycle, wire
from .delivery import Delivery, QueueItem
from .memory import drop_body, held_bytes
from .options import OnFull, ProcessOptions, QueueOptions, RetryOptions
from .ship import Shipper, closed_holding, live
from .spool import Spool
from .stats import WriterStats

_EXIT_HANDOFF_SECONDS = 10.0  # at exit: how long the child gets to take what is queued
_SPILL_CHUNK = 250


class ProcessWriter(Shipper):
    """The application's side of a writer process: the same surface as ``BatchWriter``."""

    def __init__(
        self,
        db: MetadataStore,
        storage: BodyStore | None,
        *,
        queue: QueueOptions,
        retries: RetryOptions,
        spool: Spool | None,
        handle_sigterm: bool,
        process: ProcessOptions,
    ) -> None:
        self.db = db
        self.storage = storage
        self.queue_options = queue
        self.retry_options = retries
        self.spool = spool
        self.process_options = process
        self.handles_sigterm = handle_sigterm
        self.method = process.start_method or launch.default_method()
        self._recipes = None
        if self.method == "spawn":  # fails here, not in the child: ConfigError
            self._recipes = (launch.store_recipe(db), launch.store_recipe(storage))
        self._setup = launch.Setup(
            queue,
            retries,
            None if spool is None else (str(spool.directory), spool.max_bytes, spool.fsync),
        )
        self._delivery = Delivery(db, storage, spool, retries.max_retries, retries.delay)
        self._lock = threading.Lock()
        self._reset_state()
        self._users = 0
        self._closing = self._closed = False
        live.add(self)
        lifecycle.register(self, handle_sigterm)

    def __repr__(self) -> str:
        pending = self._enqueued - self._done
        return f"<ProcessWriter {self.method} db={self.db.url!r} pending={pending}>"

    @property
    def on_full(self) -> OnFull:
        return self.queue_options.on_full

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def queue_records(self) -> int:
        """Records accepted and not yet acknowledged by the child (cheap to read)."""
        return self._enqueued - self._done

    @property
    def queue_bytes(self) -> int:
        return self._bytes_in - self._bytes_out

    @property
    def users(self) -> int:
        return self._users

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def child_pid(self) -> int | None:
        child = self._child
        return None if child is None or child.dead else child.pid

    def register_context(self, ctx: CallContext) -> None:
        """A wrapper's context: its hooks pinned for a forked child, or checked to pickle
        for a spawned one (ConfigError now rather than lost records later)."""
        if self.method == "spawn":
            wire.check_picklable(ctx)
        else:
            for obj in wire.context_objects(ctx):
                wire.pin(obj)

    # -- the caller's path ------------------------------------------------------------

    def submit(self, item: QueueItem) -> bool:
        if isinstance(item, CallRecord):
            try:
                wire.detach_response(item)
            except Exception:  # a bug here costs the GC time, never the call
                self._internal_errors += 1
        size = held_bytes(item)
        budget = self.queue_options
        if (
            self._bytes_in - self._bytes_out + size > budget.max_bytes
            or self._enqueued - self._done >= budget.max_records
            or self._closing
        ):
            return self._over_budget(item, size)
        self._queue.append((item, size))
        self._bytes_in += size
        self._enqueued += 1
        if self._thread is None:
            self._start_thread()
        elif len(self._queue) >= budget.batch_size and not self._wake.is_set():
            self._wake.set()  # once per batch: the sender takes every full batch it finds
        return True

    def is_full(self) -> bool:
        budget = self.queue_options
        return (
            self._enqueued - self._done >= budget.max_records
            or self._bytes_in - self._bytes_out >= budget.max_bytes
        )

    async def wait_for_room(self) -> None:
        while self.is_full() and not self._closing:
            self._wake.set()
            await asyncio.sleep(0.005)

    def _over_budget(self, item: QueueItem, size: int) -> bool:
        if (
            self.on_full == "drop_bodies_first"
            and isinstance(item, CallRecord)
            and not self._closing
            and self._enqueued - self._done < self.queue_options.max_records
            and drop_body(item)
        ):
            self._bodies_dropped += 1
            return self.submit(item)
        if self.spool is None:
            self._delivery.drop([item], "closed" if self._closing else "queue_full")
            return False
        self._overflow.append(item)
        self._enqueued += 1
        if self._closed or self._thread is None:
            closed_holding.add(self)
            if len(self._overflow) >= _SPILL_CHUNK:
                self._spill_overflow()
        else:
            self._wake.set()
        return True

    # -- control ------------------------------------------------------------------------

    def attach(self) -> None:
        self._users += 1

    def detach(self) -> int:
        self._users -= 1
        return self._users

    def count_internal_error(self) -> None:
        self._internal_errors += 1

    def stats(self) -> WriterStats:
        now = self._child_stats
        past = self._past

        def total(name: str) -> int:
            return int(past[name] + now.get(name, 0))

        reasons = collections.Counter(self._past_reasons)
        reasons.update(now.get("dropped_by_reason", {}))
        reasons.update(self._delivery.dropped)
        return WriterStats(
            written=total("written"),
            failed=total("failed") + self._delivery.failed,
            dropped=sum(reasons.values()),
            pending=self._enqueued - self._done,
            bodies_written=total("bodies_written"),
            bodies_failed=total("bodies_failed"),
            outcomes_written=total("outcomes_written"),
            outcomes_unmatched=total("outcomes_unmatched"),
            queue_bytes=self._bytes_in - self._bytes_out,
            internal_errors=total("internal_errors") + self._internal_errors,
            dropped_by_reason=dict(reasons),
            spilled=total("spilled") + self._delivery.spilled,
            replayed=total("replayed"),
            bodies_dropped=total("bodies_dropped") + self._bodies_dropped,
            queue_records=len(self._queue) + sum(len(b) for b in list(self._unacked.values())),
            spool_files=len(self.spool.pending()) if self.spool is not None else 0,
            store_down=bool(now.get("store_down", False)),
        )

    async def flush(self, timeout: float | None = None) -> WriterStats:
        """Once everything queued before the call is acknowledged by the child (written,
        or spooled while a store is down), the child flushes too: what the spool holds
        is written back while the stores are healthy."""
        deadline = None if timeout is None else time.monotonic() + timeout
        await self._until_done(self._enqueued, timeout)
        if self._child is not None and not self._child.dead and self._done >= self._enqueued:
            await self._ask(b"F", pickle.dumps(_left(deadline)), _left(deadline))
        return self.stats()

    async def replay(self) -> int:
        value = await self._ask(b"R", b"", None)
        return int(value or 0)

    async def close(self, timeout: float | None = 10.0) -> WriterStats:
        """Flush, then close the child (its writer closes within what is left of
        ``timeout``) and stop; what is still held then is spooled here."""
        deadline = None if timeout is None else time.monotonic() + timeout
        await self._until_done(self._enqueued, timeout)
        self._closing = True
        child = self._child
        if child is not None and not child.dead:
            left = _left(deadline)
            await self._ask(b"C", pickle.dumps(left), None if left is None else left + 1.0)
            await asyncio.to_thread(self._stop_thread, child)
        else:
            await asyncio.to_thread(self._stop_thread, None)
        self.rescue("closed")
        self._closed = True
        return self.stats()

    async def _until_done(self, target: int, timeout: float | None) -> None:
        if self._done >= target or self._pid != os.getpid():
            return
        if self._thread is None:
            self._start_thread()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            self._waiters.append((target, loop, future))
            self._urgent = True
        self._advance(0)  # done meanwhile
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError:
            pass

    async def _ask(self, kind: bytes, body: bytes, timeout: float | None) -> Any:
        """Send a control message after what is queued; its acknowledgement's value."""
        if self._thread is None:
            self._start_thread()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        seq = next(self._seq)
        with self._lock:
            self._requests[seq] = (loop, future)
            self._control.append((kind, seq, body))
        self._wake.set()
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError:
            return None

    # -- exit, signals, fork -------------------------------------------------------------

    def rescue(self, reason: str) -> None:
        """Synchronously: at exit, hand what is queued to the child first (it writes it);
        then spool whatever is still held, acknowledged by no child. A record both
        written by the child and spooled here is harmless: replay skips existing rows."""
        if self._pid != os.getpid():
            return
        thread = self._thread
        if reason == "exit" and not self._closed and thread is not None and thread.is_alive():
            self._handoff()
        self._stop = True
        self._wake.set()
        with self._lock:
            held = [item for batch in self._unacked.values() for item, _ in batch]
            held += [item for item, _ in self._queue]
            held += self._overflow
            self._unacked.clear()
            self._queue.clear()
            self._overflow = []
            self._bytes_out = self._bytes_in
        closed_holding.discard(self)
        if held:
            self._spill(held, reason)

    def _handoff(self) -> None:
        """At exit: the child (started now if need be) takes what is queued, then closes."""
        deadline = time.monotonic() + _EXIT_HANDOFF_SECONDS
        self._urgent = True
        self._wake.set()
        while self._done < self._enqueued and time.monotonic() < deadline and not self._gave_up:
            time.sleep(0.005)
        child = self._child
        self._closing = True  # no restart from here on; later calls are spooled
        if child is not None and not child.dead:
            with self._lock:
                left = max(0.0, deadline - time.monotonic())
                self._control.append((b"C", next(self._seq), pickle.dumps(left)))
            self._wake.set()
            child.join(max(0.1, deadline - time.monotonic()))

    def reset_after_fork(self) -> None:
        """In a forked process (a pre-fork worker, or our own child): the parent's
        queue, threads and writer process are the parent's. Start empty; the first call
        starts this process's own writer process."""
        child = self._child
        if child is not None:
            child.close_pipe()  # close(2) of our copy: the parent's child sees nothing
        self._reset_state()


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())
