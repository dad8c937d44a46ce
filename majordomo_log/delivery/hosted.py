"""A writer that lives on the library's writer thread, used from any thread.

``HostedWriter`` has the surface the wrapper needs of a writer (``submit``, ``flush``,
``close``, ``stats``...). Records are handed over through an inbox: a caller appends
under a lock held for a few instructions, and only the first record since the loop
last emptied the inbox wakes the loop, so a busy thread pool pays one wake-up per
burst, not per call. The writer itself (``BatchWriter`` or ``ProcessWriter``) only
ever runs on the writer thread's loop, so it needs no locks of its own.

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

    def __init__(self, writer: Writer, thread: WriterThread, close_stores: bool) -> None:
        self.writer = writer
        self._thread = thread
        self.close_stores = close_stores
        self._lock = threading.Lock()
        self._inbox: list[QueueItem] = []
        self._wake_pending = False
        self._pid = os.getpid()
        self._shut = False
        host(self)
        # Before the writer's own rescue at exit or on SIGTERM: what still waits in the
        # inbox is handed to the writer first, so that its rescue spools it too.
        lifecycle.register(self, handle_sigterm=False)

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
        return self.writer.is_full()

    def count_internal_error(self) -> None:
        self.writer.count_internal_error()

    def attach(self) -> None:
        self.writer.attach()

    def detach(self) -> int:
        return self.writer.detach()

    # -- the caller's path -----------------------------------------------------------

    @property
    def thread(self) -> WriterThread:
        if self._pid != os.getpid():  # a forked child: the parent's thread is not here
            self._pid = os.getpid()
            self._thread = writer_thread()
            self._inbox = []  # the parent's records are the parent's to write
            self._wake_pending = False
            self._lock = threading.Lock()  # may have been held by a parent thread at fork
        return self._thread

    def submit(self, item: QueueItem) -> bool:
        thread = self.thread
        with self._lock:
            self._inbox.append(item)
            if self._wake_pending:
                return True
            self._wake_pending = True
        try:
            thread.call_soon(self._move_inbox)
        except RuntimeError:  # the loop is closed: interpreter shutdown
            self._move_inbox()
        return True

    def _move_inbox(self) -> None:
        """On the writer thread: hand what callers queued to the writer, in order."""
        with self._lock:
            items, self._inbox = self._inbox, []
            self._wake_pending = False
        submit = self.writer.submit
        for item in items:
            submit(item)

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
            raise RuntimeError("a LoggingLLM cannot be flushed from its own writer thread")
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
        self._move_inbox()
        self.writer.rescue(reason)

    def reset_after_fork(self) -> None:
        """In a forked child: the parent's records and thread are not ours (``thread``
        makes the child's own on first use)."""
        self._inbox = []
        self._wake_pending = False
        self._lock = threading.Lock()

    def close_at_exit(self, timeout: float) -> None:
        """Called by the writer thread's exit hook: flush and close what nobody closed."""
        if self._shut or self._pid != os.getpid():
            return
        try:
            self._thread.run(self._on_loop_shut_down(timeout), timeout + STORE_CLOSE_GRACE)
        except Exception as exc:  # the atexit rescue (lifecycle.py) spools what is left
            logger.error("majordomo-log could not close %r at exit: %s", self.writer, exc)


# One front per writer: wrappers sharing stores share the writer, and its inbox. Weak
# values keyed by id: the front holds the writer, so a weak key would never be freed.
_fronts: weakref.WeakValueDictionary[int, HostedWriter] = weakref.WeakValueDictionary()


def hosted_writer(writer: Writer, thread: WriterThread, close_stores: bool) -> HostedWriter:
    front = _fronts.get(id(writer))
    if front is None or front.writer is not writer:
        front = _fronts[id(writer)] = HostedWriter(writer, thread, close_stores)
    return front
