"""Where a record waits: a bounded queue and the one background task that drains it.

The wrapper appends to a deque (no await, no lock) and wakes the worker only
when a full batch is waiting; otherwise the worker wakes on its timer. Each batch
is handed to ``Delivery`` (``delivery/delivery.py``), which writes it to the stores
or, when they cannot take it, to the spool.

Memory is held to two budgets (``QueueOptions``, ``delivery/options.py``): records
waiting, and the memory their bodies hold (``delivery/memory.py``). Over budget,
``on_full`` decides: ``spill`` to the spool (``delivery/overflow.py``),
``drop_bodies_first`` (the row is kept), or ``block`` (the caller waits for room).
Every loss is counted per reason in ``stats()``. Exit, SIGTERM and fork are in
``delivery/lifecycle.py``; wrappers find their shared writer in ``delivery/shared.py``.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import time

from .._log import logger, warn_once
from ..record.call import CallRecord
from ..stores.base import BodyStore, MetadataStore
from . import lifecycle
from .delivery import Delivery, QueueItem, remaining
from .memory import drop_body, held_bytes
from .options import OnFull, QueueOptions, RetryOptions
from .overflow import Overflow
from .prepare import release
from .spool import Spool
from .stats import WriterStats
from .waiters import Waiters

_SPILL_CHUNK = 250  # records over budget spilled by the caller when the worker cannot run
_CLOSED_SPILL_BYTES = 8 * 1024 * 1024  # held after close() before they are spooled
_CANCEL_GRACE = 1.0  # how long close() waits for a cancelled worker or spill to let go
# The most close() waits by default, all of it: flushing, stopping, replaying the spool.
# Within a container's usual grace period (30 s after SIGTERM), with room for the rest
# of the application's shutdown; what is not written by then is spooled, not lost.
DEFAULT_CLOSE_TIMEOUT = 10.0
_EXIT_DRAIN_SECONDS = 10.0  # how long a cancelled worker keeps writing at loop shutdown
_DEFAULT_QUEUE, _DEFAULT_RETRIES = QueueOptions(), RetryOptions()  # frozen: safe to share


class BatchWriter:
    """Batches records into a metadata store and a body store. Normally created and
    shared by ``LoggingLLM``: wrappers given the same pair of stores share one writer."""

    def __init__(
        self,
        db: MetadataStore,
        storage: BodyStore | None,
        *,
        queue: QueueOptions = _DEFAULT_QUEUE,
        retries: RetryOptions = _DEFAULT_RETRIES,
        spool: Spool | None = None,
        handle_sigterm: bool = True,
    ) -> None:
        self.db = db
        self.storage = storage
        self.queue_options = queue
        self.retry_options = retries
        self.spool = spool
        self._queue: collections.deque[tuple[QueueItem, int]] = collections.deque()  # (item, bytes)
        self._queue_bytes = 0
        self._overflow = Overflow(self._spill_overflow)  # over budget, for the spool
        self._inflight: list[QueueItem] = []  # the batch being written
        self._enqueued = 0  # items ever accepted
        self._done = 0  # items ever finished (written, spooled, refused or dropped)
        self._delivery = Delivery(db, storage, spool, retries.max_retries, self._retry_delay)
        self._bodies_dropped = self._internal_errors = 0
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._waiters = Waiters()
        self._closing = False  # close() has begun: new records go to the spool
        self._closed = False  # close() has ended
        self._exit_drain_seconds = _EXIT_DRAIN_SECONDS
        self._reopen = False  # set in a forked child: stores must reconnect first
        self._held = False  # the last batch could go nowhere: wait for the stores
        self._users = 0  # LoggingLLM instances attached (see attach/detach)
        self.handles_sigterm = handle_sigterm  # asked to spool on SIGTERM (see lifecycle)
        lifecycle.register(self, handle_sigterm)

    def __repr__(self) -> str:
        return f"<BatchWriter db={self.db.url!r} pending={self._enqueued - self._done}>"

    @property
    def on_full(self) -> OnFull:
        """What a call does when the queue is over budget (``QueueOptions.on_full``)."""
        return self.queue_options.on_full

    @property
    def closing(self) -> bool:
        """close() has begun: new records go to the spool."""
        return self._closing

    # Cheap reads for delivery/hosted.py, on callers' paths: records and bytes queued
    # (as the budgets count them), and the wrappers attached. The batch being written
    # counts: it returns to the queue when the stores are down.
    queue_records = property(lambda self: len(self._queue) + len(self._inflight))
    queue_bytes = property(lambda self: self._queue_bytes)
    users = property(lambda self: self._users)

    @property
    def closed(self) -> bool:
        """close() has ended: records of later calls are held for the spool."""
        return self._closed

    # -- producer side: called on the caller's hot path ---------------------------

    def submit(self, item: QueueItem) -> bool:
        """Queue a record or outcome update; False if it was dropped."""
        size = held_bytes(item)
        budget = self.queue_options
        if (
            self._queue_bytes + size > budget.max_bytes
            or len(self._queue) + len(self._inflight) >= budget.max_records
            or self._closing
        ):
            return self._over_budget(item, size)
        self._queue.append((item, size))
        self._queue_bytes += size
        self._enqueued += 1
        task = self._task
        if task is None or task.done():
            self._start()
        elif len(self._queue) >= budget.batch_size and self._wake is not None:
            self._wake.set()
        return True

    def is_full(self) -> bool:
        return (
            len(self._queue) + len(self._inflight) >= self.queue_options.max_records
            or self._queue_bytes >= self.queue_options.max_bytes
        )

    async def wait_for_room(self) -> None:
        """For ``on_full="block"``: wait until the queue is under both budgets. Room is
        made by writing, or by spooling while a store is down."""
        while self.is_full() and not self._closing:
            if self._task is None or self._task.done():
                self._start()
            future = self._waiters.for_room()
            if self._wake is not None:
                self._wake.set()
            await future

    def _over_budget(self, item: QueueItem, size: int) -> bool:
        if (
            self.queue_options.on_full == "drop_bodies_first"
            and isinstance(item, CallRecord)
            and not self._closing
            and len(self._queue) + len(self._inflight) < self.queue_options.max_records
            and drop_body(item)
        ):
            self._bodies_dropped += 1
            size = held_bytes(item)
            if self._queue_bytes + size <= self.queue_options.max_bytes:
                self._queue.append((item, size))
                self._queue_bytes += size
                self._enqueued += 1
                return True
        if self.spool is None:
            self._delivery.drop([item], "closed" if self._closing else "queue_full")
            return False
        # Spilled by the worker when it runs; by this caller when it cannot (a burst that
        # never yields to the loop), so memory stays bounded either way.
        self._overflow.add(item)
        self._enqueued += 1
        if self._closed:
            # A call after close(): kept, cheaply. Spooled 250 at a time and at exit, for
            # the next start or `majordomo-log spool replay` (a file and an fsync per call
            # would cost the caller milliseconds each).
            warn_once(
                "call_after_close",
                self.db.url,
                "a call was made through a closed LoggingLLM: its record goes to the spool "
                "(replayed on the next start, or with `majordomo-log spool replay`)",
            )
            _closed_holding.add(self)  # held by no wrapper maybe: kept until spooled
            overflow = self._overflow
            overflow.closed_bytes += size
            if len(overflow) >= _SPILL_CHUNK or overflow.closed_bytes >= _CLOSED_SPILL_BYTES:
                overflow.closed_bytes = 0
                overflow.spill_soon()
        elif len(self._overflow) >= _SPILL_CHUNK or self._task is None or self._task.done():
            self._spill_overflow()
        elif self._wake is not None:
            self._wake.set()
        return True

    def _start(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop in this thread: the next flush() or submit() from a loop starts it
        self._wake = asyncio.Event()
        self._task = loop.create_task(self._run(), name="majordomo-log-writer")

    # -- control ------------------------------------------------------------------

    def attach(self) -> None:
        """A wrapper starts using this writer."""
        self._users += 1

    def detach(self) -> int:
        """A wrapper stops using this writer; returns how many still use it (the last one
        closes it)."""
        self._users -= 1
        return self._users

    def stats(self) -> WriterStats:
        delivery = self._delivery
        return WriterStats(
            written=delivery.written,
            failed=delivery.failed,
            dropped=sum(delivery.dropped.values()),
            pending=self._enqueued - self._done,
            bodies_written=delivery.bodies_written,
            bodies_failed=delivery.bodies_failed,
            outcomes_written=delivery.outcomes_written,
            outcomes_unmatched=delivery.outcomes_unmatched,
            queue_bytes=self._queue_bytes,
            internal_errors=self._internal_errors,
            dropped_by_reason=dict(delivery.dropped),
            spilled=delivery.spilled,
            replayed=delivery.replayed,
            bodies_dropped=self._bodies_dropped,
            queue_records=len(self._queue) + len(self._inflight),
            spool_files=len(self.spool.pending()) if self.spool is not None else 0,
            store_down=delivery.down_for > 0,
        )

    def count_internal_error(self) -> None:
        self._internal_errors += 1

    async def flush(self, timeout: float | None = None) -> WriterStats:
        """Return once everything queued before the call is written or refused (or, while
        a store is down, spooled), or after ``timeout`` seconds with what is still pending
        in the stats. Records spilled to the spool while the stores were healthy (the
        queue was over its budget) are written back first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        await self._flush_queue(timeout)
        delivery = self._delivery
        if self.spool is not None and delivery.spool_backlog and not delivery.down_for:
            await delivery.replay_until(deadline)
        return self.stats()

    async def drained(self, timeout: float | None = None) -> None:
        """Wait until everything queued before the call is done (written, spooled or
        refused): flush() without the spool replay (``delivery/child.py`` acks by it)."""
        await self._flush_queue(timeout)

    async def _flush_queue(self, timeout: float | None) -> None:
        target = self._enqueued
        if self._done < target:
            if self._task is None or self._task.done():
                self._start()
            future = self._waiters.until_done(target)
            if self._wake is not None:
                self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(future), timeout)
            except asyncio.TimeoutError:
                pass

    async def close(self, timeout: float | None = DEFAULT_CLOSE_TIMEOUT) -> WriterStats:
        """Flush, then stop the worker; waits for it, so the stores can be closed next.
        What is still held after ``timeout`` seconds (10 by default; None waits as long
        as it takes) goes to the spool (or, without one, is counted as dropped). Then what
        an outage left in the spool is replayed, if the stores are back, for what is left
        of ``timeout``: a one-off script must not leave its records behind in a cache
        directory."""
        deadline = None if timeout is None else time.monotonic() + timeout
        await self._flush_queue(timeout)
        timeout = remaining(deadline)
        self._closing = True
        task = self._task
        if task is not None and not task.done():
            if self._wake is not None:
                self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout)
            except asyncio.TimeoutError:
                self._exit_drain_seconds = 0.0  # out of time: stop, do not drain again
                task.cancel()
                # The store may take its time to give up the statement it is in (SQLite's
                # busy wait): not past the deadline. What it holds, rescue spools.
                await asyncio.wait({task}, timeout=_CANCEL_GRACE)
        # A spill running in a thread is the one to spool its records: wait for it a
        # little, rather than spool them twice.
        grace = time.monotonic() + _CANCEL_GRACE
        while self._overflow.spilling and time.monotonic() < grace:
            await asyncio.sleep(0.01)
        self.rescue("closed")
        self._wake_room_waiters()
        if self.spool is not None:  # a store still down fails its one try, and that is all
            # What is left by the deadline waits for the next start, or `majordomo-log
            # spool replay`.
            await self._delivery.replay_until(deadline, " at close")
        self._closed = True
        return self.stats()

    async def replay(self) -> int:
        """Replay this writer's spooled files now; the number of records written."""
        if self.spool is None:
            return 0
        before = self._delivery.replayed
        await self._delivery.replay(max_files=None)
        return self._delivery.replayed - before

    def rescue(self, reason: str) -> None:
        """Synchronously move everything still held to the spool (or count it dropped):
        for exit, a fatal signal, or a close() that ran out of time. Safe with no loop,
        and from a signal handler that interrupted the writer anywhere: every record is
        in one of the lists read here until the store or the spool has it. A record
        seen twice (in flight and still queued, say) is spooled once; one that reaches
        both the store and the spool is harmless, as replay skips existing rows."""
        seen: set[int] = set()
        inflight = _unseen(self._inflight, seen)  # may also reach the store
        spilling = _unseen(self._overflow.being_spooled(), seen)
        queued = _unseen([item for item, _ in list(self._queue)], seen)
        overflow = _unseen(self._overflow.items, seen)
        self._queue.clear()
        self._overflow.items = []
        self._queue_bytes = 0
        items = inflight + spilling + queued + overflow
        _closed_holding.discard(self)
        if not items:
            return
        self._overflow.spilling[id(items)] = items  # a SIGTERM during this rescue saves them again
        # An interrupted spill counts its own when it ends; an interrupted batch sees that
        # it was rescued (_inflight is no longer it) and leaves the count to this.
        self._done += len(queued) + len(overflow) + len(inflight)
        self._inflight = []
        try:
            self._delivery.spill_items(items, reason)
        finally:
            self._overflow.spooled(items)
        self._waiters.resolve(self._done)

    def _retry_delay(self, attempt: int) -> float:
        return self.retry_options.delay(attempt)

    def reset_after_fork(self) -> None:
        """In a forked child: the parent's records are the parent's to write, and its
        connections and event loop are not ours. Start empty; reconnect before writing."""
        self._queue.clear()
        self._overflow.reset_after_fork()
        self._inflight = []
        self._queue_bytes = 0
        self._enqueued = self._done = 0
        self._task = None
        self._wake = None
        self._waiters = Waiters()
        self._reopen = True
        self._delivery.replay_due = 0.0

    # -- consumer side: the background task -----------------------------------------

    async def _run(self) -> None:
        assert self._wake is not None
        try:
            while True:
                if not self._queue and not self._overflow:
                    if self._closing:
                        return
                    self._waiters.resolve(self._done)
                    await self._delivery.replay_when_idle()
                idle = not self._queue and not self._overflow
                # Wait when there is nothing to drain (never spin, whatever waits on us) or
                # no full batch yet; never once close() has begun: it set the wake flag,
                # and clearing it now would cost close() a whole flush interval.
                if not self._closing and (
                    idle
                    or (
                        len(self._queue) < self.queue_options.batch_size
                        and not self._overflow
                        and not self._waiters
                    )
                ):
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), self.queue_options.flush_interval)
                    except asyncio.TimeoutError:
                        pass
                await self._drain()
        except asyncio.CancelledError:
            # asyncio.run() cancels leftover tasks and then waits for them: a program that
            # forgot close() still gets its records written here. wait_for runs the drain
            # in a new task, which that one-time cancellation does not reach.
            if self._exit_drain_seconds > 0:
                try:
                    await asyncio.wait_for(self._drain(), self._exit_drain_seconds)
                except (asyncio.TimeoutError, asyncio.CancelledError):
                    pass
            self.rescue("closed" if self._closing else "exit")
            raise

    async def _drain(self) -> None:
        while self._queue or self._overflow:
            if self._overflow:
                await asyncio.to_thread(self._spill_overflow)
            if not self._queue:
                continue
            if self._held and self._delivery.is_down():
                # The last batch found nowhere to go: keep it, wait for the next try.
                await self._sleep_until(self._delivery.down_until)
                continue
            count = min(self.queue_options.batch_size, len(self._queue))
            taken = list(itertools.islice(self._queue, count))
            batch = [item for item, _ in taken]
            self._inflight = batch  # before leaving the queue: always within rescue's reach
            for _ in range(count):
                self._queue.popleft()
            try:
                if self._reopen:
                    self._reopen = False
                    await self._delivery.reopen()
                finished = await self._delivery.deliver(batch)
            except asyncio.CancelledError:
                # Interrupted mid-batch: put it back, unless a rescue has spooled it. Stores
                # roll back an interrupted transaction and skip rows they already have, so
                # rewriting it is safe.
                if self._inflight is batch:
                    self._queue.extendleft(reversed(taken))
                    self._inflight = []
                raise
            except Exception as exc:  # a bug here: never let the worker die
                finished = True
                self._delivery.failed += sum(isinstance(i, CallRecord) for i in batch)
                self._internal_errors += 1
                logger.exception("writing a batch failed", exc_info=exc)
            if self._inflight is not batch:
                continue  # rescued meanwhile (close() ran out of time): spooled and counted
            self._held = not finished
            if not finished:  # store down, and no spool to take it: keep it, in order
                self._queue.extendleft(reversed(taken))
                self._inflight = []  # after: always within rescue's reach
                continue
            self._inflight = []
            for item in batch:  # written or spooled: only call_info() may still see it
                if isinstance(item, CallRecord):
                    release(item)
            self._done += count
            self._queue_bytes -= sum(size for _, size in taken)
            self._waiters.resolve(self._done)
            self._wake_room_waiters()

    # -- stores down and back --------------------------------------------------------

    async def _sleep_until(self, deadline: float) -> None:
        assert self._wake is not None
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            pass

    # -- spooling -------------------------------------------------------------------

    def _spill_overflow(self) -> None:
        items = self._overflow.take()  # any thread: callers append while a worker takes
        if not items:
            return
        try:
            self._delivery.spill_items(items, "overflow")
        except Exception as exc:  # a bug here: counted, and the writer goes on
            self._internal_errors += 1
            self._delivery.drop(items, "internal_error")
            logger.error("spooling %d records failed: %s", len(items), type(exc).__name__)
        finally:
            self._overflow.spooled(items)
            self._done += len(items)
        if not self._overflow:
            _closed_holding.discard(self)
        self._waiters.resolve(self._done)

    # -- waiters ---------------------------------------------------------------------

    def _wake_room_waiters(self) -> None:
        if self._waiters.want_room and (not self.is_full() or self._closing):
            self._waiters.wake_room()


def _unseen(items: list[QueueItem], seen: set[int]) -> list[QueueItem]:
    fresh = []
    for item in items:
        if id(item) not in seen:
            seen.add(id(item))
            fresh.append(item)
    return fresh


# Writers closed with records still held for the spool (calls made after close()): kept
# alive until those are spooled, though no wrapper may hold them any more.
_closed_holding: set[BatchWriter] = set()
