"""A writer that lives on the library's writer thread, used from any thread.

``HostedWriter`` has the surface the wrapper needs of a writer (``submit``, ``flush``,
``close``, ``stats``...). Records are handed over through an inbox: a caller appends
under a lock held for a few instructions. Waking the loop from another thread costs
the caller a system call and its turn at the GIL (2.4 µs, and up to 16 µs per call in
a pool of threads whose calls wait on the network, bench/sync_overhead.py), so a
caller wakes it only for a full batch (``batch_size``) or when the budget is reached;
otherwise a timer on the loop takes the inbox every half ``flush_interval``. The
writer itself (``BatchWriter`` or ``ProcessWriter``) only ever runs on the writer
thread's loop, so it needs no locks of its own.

The inbox counts against the queue's budgets (``QueueOptions``): when inbox and queue
together are over, a caller waits for the writer thread to take the inbox (it moves
records, it does not wait for the database), so memory stays bounded however starved
that thread is; with ``on_full="block"`` it waits until the queue has room, and the
inbox is moved only as far as the queue takes it.

Stores the library opened from URLs belong to the process, not to a wrapper: the last
wrapper's close() flushes them, and they are closed at exit. A web handler that
builds a wrapper per request then shares one connection and writer, and never sees
a store closed under a call in another thread.

Sync callers wait through ``*_sync`` methods; async callers (a coroutine-surface
wrapper whose stores the library opened) await the same work as a future.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import weakref
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .._log import logger
from . import lifecycle
from .memory import held_bytes
from .stats import WriterStats
from .writer_thread import WriterThread, host, writer_thread

if TYPE_CHECKING:
    from .delivery import QueueItem
    from .options import OnFull, QueueOptions, RetryOptions
    from .shared import Writer
    from .spool import Spool

T = TypeVar("T")

# A store's close() waits for its last statement (SQLite's busy wait is 5 s): allowed
# this long past close()'s deadline before the store is left behind, logged.
STORE_CLOSE_GRACE = 6.0


class _Closable(Protocol):
    async def close(self) -> None: ...


async def close_store(store: _Closable, deadline: float | None) -> None:
    """Close a store, waiting until ``deadline`` (monotonic) plus a grace period."""
    left = None if deadline is None else max(0.0, deadline - time.monotonic())
    try:
        await asyncio.wait_for(store.close(), None if left is None else left + STORE_CLOSE_GRACE)
    except asyncio.TimeoutError:
        logger.error("closing %r timed out: left open", store)


async def shut_down(writer: Writer, timeout: float | None, close_stores: bool) -> WriterStats:
    """Close the writer (flush, stop), then its stores unless told not to."""
    deadline = None if timeout is None else time.monotonic() + timeout
    stats = await writer.close(timeout)
    if close_stores:
        for store in (writer.db, writer.storage):
            if store is not None:
                await close_store(store, deadline)
    return stats


class HostedWriter:
    """``writer`` running on ``thread``'s loop; safe to use from any thread."""

    def __init__(
        self, writer: Writer, thread: WriterThread, close_stores: bool, process_owned: bool
    ) -> None:
        self.writer = writer
        self._thread = thread
        self.close_stores = close_stores
        # Stores opened from URLs: the last wrapper's close() only flushes (module doc).
        self.process_owned = process_owned
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)  # callers waiting for the budget
        self._inbox: list[tuple[QueueItem, int]] = []  # (item, bytes)
        self._inbox_bytes = 0
        self._wake_pending = False
        self._pumping = False  # on_full="block": a task moves the rest as room frees
        self._wake_at = max(1, writer.queue_options.batch_size)
        self._tick_every = max(0.01, writer.queue_options.flush_interval / 2)
        self._ticking = False
        self._pid = os.getpid()
        self._shut = False
        host(self)
        # Before the writer's own rescue at exit or on SIGTERM: what still waits in the
        # inbox is handed to the writer first, so that its rescue spools it too.
        lifecycle.register(self, handle_sigterm=False)
        thread.call_soon(self._start_ticker)

    def __repr__(self) -> str:
        return f"<HostedWriter {self.writer!r}>"

    # -- what the wrapper reads ------------------------------------------------------

    @property
    def db(self) -> Any:
        return self.writer.db

    @property
    def storage(self) -> Any:
        return self.writer.storage

    @property
    def on_full(self) -> OnFull:
        return self.writer.on_full

    @property
    def queue_options(self) -> QueueOptions:
        return self.writer.queue_options

    @property
    def retry_options(self) -> RetryOptions:
        return self.writer.retry_options

    @property
    def spool(self) -> Spool | None:
        return self.writer.spool

    @property
    def closed(self) -> bool:
        return self.writer.closed

    @property
    def closing(self) -> bool:
        return self.writer.closing

    def stats(self) -> WriterStats:
        return self.writer.stats()

    def is_full(self) -> bool:
        """The queue, or queue and inbox together, at a budget (``QueueOptions``)."""
        return self.writer.is_full() or self._over_budget(0)

    def _over_budget(self, size: int) -> bool:
        writer = self.writer
        budget = writer.queue_options
        return (
            len(self._inbox) + writer.queue_records >= budget.max_records
            or self._inbox_bytes + writer.queue_bytes + size > budget.max_bytes
        )

    def count_internal_error(self) -> None:
        self.writer.count_internal_error()

    def attach(self) -> None:
        with self._lock:  # wrappers come and go on many threads
            self.writer.attach()

    def detach(self) -> int:
        with self._lock:
            return self.writer.detach()

    # -- the caller's path -----------------------------------------------------------

    @property
    def thread(self) -> WriterThread:
        if self._pid != os.getpid():  # a forked child: the parent's thread is not here
            self._pid = os.getpid()
            self._thread = writer_thread()
            self.reset_after_fork()  # the lock may have been held by a parent's thread
            self._thread.call_soon(self._start_ticker)
        return self._thread

    def submit(self, item: QueueItem) -> bool:
        thread = self.thread
        size = held_bytes(item)
        with self._lock:
            if self._inbox and self._over_budget(size) and not thread.in_thread:
                self._wait_for_room(thread)
            self._inbox.append((item, size))
            self._inbox_bytes += size
            if self._wake_pending or len(self._inbox) < self._wake_at:
                return True  # the ticker takes it (module doc)
            self._wake_pending = True
        self._wake(thread)
        return True

    def tick(self) -> bool:
        """The ticker's turn, on the writer thread: take the inbox; False once shut."""
        if self._shut:
            return False
        if self._inbox:
            self._move_inbox()
        return True

    def _start_ticker(self) -> None:
        """On the writer thread: take the inbox every ``_tick_every`` seconds. The timer
        holds the front weakly: a front no wrapper uses any more is freed, timer and all."""
        if self._ticking:
            return
        self._ticking = True
        _tick(weakref.ref(self), asyncio.get_running_loop(), self._tick_every)

    def _wait_for_room(self, thread: WriterThread) -> None:
        """With the lock held: wait while inbox and queue are over budget. Unless the
        writer blocks callers, only until the writer thread has taken the inbox (the
        queue then spills or drops by ``on_full``, off this thread)."""
        blocks = self.writer.on_full == "block" and not self.writer.closing
        taken = self._inbox
        while self._inbox and self._over_budget(0):
            if not blocks and self._inbox is not taken:
                return  # the inbox this caller found has been taken
            if not self._wake_pending:
                self._wake_pending = True
                self._lock.release()
                try:
                    self._wake(thread)
                finally:
                    self._lock.acquire()
            self._room.wait(0.1)  # woken by _move_inbox; the timeout guards a lost wake

    def _wake(self, thread: WriterThread) -> None:
        try:
            thread.call_soon(self._move_inbox)
        except RuntimeError:  # the loop is closed: interpreter shutdown
            self._move_inbox(everything=True)

    def _move_inbox(self, everything: bool = False) -> None:
        """On the writer thread: hand what callers queued to the writer, in order (with
        ``on_full="block"``, as far as the queue has room; a task moves the rest).
        ``everything``: all of it, whatever the budget (a rescue, from any thread)."""
        writer = self.writer
        blocks = writer.on_full == "block" and not writer.closing and not everything
        with self._lock:
            items = self._inbox
            if blocks:
                room = writer.queue_options.max_records - writer.queue_records
                items, rest = items[: max(room, 0)], items[max(room, 0) :]
            else:
                rest = []
            self._inbox = rest
            self._inbox_bytes = sum(size for _, size in rest)
            self._wake_pending = False
            self._room.notify_all()
        submit = writer.submit
        for item, _ in items:
            submit(item)
        if rest and not self._pumping:
            self._pumping = True
            asyncio.get_running_loop().create_task(self._pump())

    async def _pump(self) -> None:
        """``on_full="block"``: move the inbox into the queue as room frees."""
        try:
            while self._inbox and not self.writer.closing:
                await self.writer.wait_for_room()
                self._move_inbox_now()
        finally:
            self._pumping = False
            if self._inbox:
                self._move_inbox_now()

    def _move_inbox_now(self) -> None:
        pumping, self._pumping = self._pumping, True  # no second pump from in here
        try:
            self._move_inbox()
        finally:
            self._pumping = pumping

    # -- waiting, from a coroutine ----------------------------------------------------

    async def wait_for_room(self) -> None:
        await asyncio.wrap_future(self.thread.start(self._on_loop_wait_for_room()))

    async def flush(self, timeout: float | None = None) -> WriterStats:
        return await asyncio.wrap_future(self.thread.start(self._on_loop_flush(timeout)))

    async def replay(self) -> int:
        return await asyncio.wrap_future(self.thread.start(self._on_loop_replay()))

    async def shut_down(self, timeout: float | None) -> WriterStats:
        return await asyncio.wrap_future(self.thread.start(self._on_loop_shut_down(timeout)))

    # -- waiting, from a plain function ------------------------------------------------

    def wait_for_room_sync(self) -> None:
        self._run(self._on_loop_wait_for_room())

    def flush_sync(self, timeout: float | None = None) -> WriterStats:
        return self._run(self._on_loop_flush(timeout))

    def replay_sync(self) -> int:
        return self._run(self._on_loop_replay())

    def shut_down_sync(self, timeout: float | None) -> WriterStats:
        return self._run(self._on_loop_shut_down(timeout))

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        thread = self.thread
        if thread.in_thread:  # a hook of ours called back on the loop: cannot wait here
            coro.close()
            raise RuntimeError(
                "a LoggingLLM cannot be flushed or closed from its own writer thread (a hook "
                "of its own?): it would deadlock"
            )
        return thread.run(coro)

    # -- on the writer thread ---------------------------------------------------------

    async def _on_loop_wait_for_room(self) -> None:
        self._move_inbox()
        await self.writer.wait_for_room()

    async def _on_loop_flush(self, timeout: float | None) -> WriterStats:
        self._move_inbox()  # what was handed over before flush() was called
        return await self.writer.flush(timeout)

    async def _on_loop_replay(self) -> int:
        return await self.writer.replay()

    async def _on_loop_shut_down(self, timeout: float | None) -> WriterStats:
        """The last wrapper's close(): a process-owned writer is only flushed (module doc)."""
        self._move_inbox()
        if self.process_owned:
            return await self.writer.flush(timeout)
        self._shut = True
        return await shut_down(self.writer, timeout, self.close_stores)

    async def _on_loop_close_at_exit(self, timeout: float) -> WriterStats:
        self._move_inbox()
        self._shut = True
        return await shut_down(self.writer, timeout, self.close_stores)

    # -- exit, signals, fork ---------------------------------------------------------

    def rescue(self, reason: str) -> None:
        """Synchronously, from any thread: the inbox to the writer, then the writer's
        rescue (to the spool). A record both written and spooled is harmless: replay
        skips rows that exist."""
        if self._pid != os.getpid():
            return
        self._move_inbox(everything=True)
        self.writer.rescue(reason)

    def reset_after_fork(self) -> None:
        """In a forked child: the parent's records and thread are not ours (``thread``
        makes the child's own on first use)."""
        self._inbox = []
        self._inbox_bytes = 0
        self._wake_pending = self._pumping = self._ticking = False
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)

    def close_at_exit(self, timeout: float) -> None:
        """Called by the writer thread's exit hook: flush and close what nobody closed."""
        if self._shut or self._pid != os.getpid():
            return
        try:
            self._thread.run(self._on_loop_close_at_exit(timeout), timeout + STORE_CLOSE_GRACE)
        except Exception as exc:  # the atexit rescue (lifecycle.py) spools what is left
            logger.error("majordomo-log could not close %r at exit: %s", self.writer, exc)


def _tick(
    front_ref: weakref.ref[HostedWriter], loop: asyncio.AbstractEventLoop, every: float
) -> None:
    front = front_ref()
    if front is None or not front.tick():
        return
    loop.call_later(every, _tick, front_ref, loop, every)


# One front per writer: wrappers sharing stores share the writer, and its inbox. Weak
# values keyed by id: the front holds the writer, so a weak key would never be freed.
_fronts: weakref.WeakValueDictionary[int, HostedWriter] = weakref.WeakValueDictionary()


def hosted_writer(
    writer: Writer, thread: WriterThread, close_stores: bool, process_owned: bool
) -> HostedWriter:
    front = _fronts.get(id(writer))
    if front is None or front.writer is not writer:
        front = _fronts[id(writer)] = HostedWriter(writer, thread, close_stores, process_owned)
    return front


def front_of(writer: Writer) -> HostedWriter | None:
    """The hosted front of ``writer``, if it runs on the writer thread."""
    front = _fronts.get(id(writer))
    return front if front is not None and front.writer is writer else None
