"""The library's own event loop, in a daemon thread: where writers live for programs
that have no loop of their own (sync clients, scripts, Flask and Django workers) and
for stores the library opened from URLs.

One per process, started on first use. After a fork the child starts its own (the
parent's thread does not exist there). At interpreter exit, once the program's other
threads have finished (the interpreter would wait for them anyway), streams still open
are logged as incomplete and the writers hosted here are closed (flushed, stores
closed) before ``concurrent.futures`` stops taking work: the writers build their
batches in worker threads, and after that point none can start. What a thread pool's
leftover work logs after that is spooled by the atexit rescue (``lifecycle.py``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import concurrent.futures.thread  # registers its exit hook now: see _install_exit_hook
import os
import threading
import time
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

from .._log import logger
from . import lifecycle

T = TypeVar("T")

# The most the exit hook waits, in all, for the hosted writers to flush and close: a
# script's records are written, and a process that cannot reach its stores still exits
# (what is left goes to the spool, through lifecycle.py's atexit rescue).
EXIT_TIMEOUT = 10.0


class Closable(Protocol):
    """What the exit hook needs of a hosted writer (``delivery/hosted.py``)."""

    def close_at_exit(self, timeout: float) -> None: ...


class WriterThread:
    """An event loop running forever in a daemon thread; work is handed to it from any
    thread (``run``, ``call_soon``, ``start``)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        # Named, so a hook of the user's running in one of them (a redact hook) that calls
        # flush() is told it would deadlock, instead of waiting forever.
        self.loop.set_default_executor(
            concurrent.futures.ThreadPoolExecutor(thread_name_prefix=WORKER_PREFIX)
        )
        self._ready = threading.Event()
        self.thread = threading.Thread(
            target=self._main, name="majordomo-log-writer-loop", daemon=True
        )
        self.thread.start()
        self._ready.wait()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        try:
            self.loop.run_forever()
        finally:  # only at interpreter shutdown: daemon threads are not joined
            self._ready.set()

    def __repr__(self) -> str:
        return f"<WriterThread pid={self.pid} alive={self.thread.is_alive()}>"

    @property
    def in_thread(self) -> bool:
        """True when called from this loop's own thread or one of its workers (where
        ``run`` would deadlock: the loop may be waiting for that very worker)."""
        current = threading.current_thread()
        return current is self.thread or current.name.startswith(WORKER_PREFIX)

    def start(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coro`` on this loop; its future, to wait on from any thread or loop."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on this loop and wait for its result, from another thread."""
        if self.in_thread:
            coro.close()
            raise RuntimeError(
                "majordomo-log's writer thread cannot wait for itself (a hook of a LoggingLLM "
                "called flush() or close()?): it would deadlock"
            )
        future = self.start(coro)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> None:
        self.loop.call_soon_threadsafe(callback, *args)


WORKER_PREFIX = "majordomo-log-writer-worker"
_DRIVER_THREAD_PACKAGES = frozenset({"aiosqlite"})
_lock = threading.Lock()
_thread: WriterThread | None = None
_hosted: weakref.WeakSet[Closable] = weakref.WeakSet()
_exit_hook_installed = False


def writer_thread() -> WriterThread:
    """This process's writer thread, started on first use (again in a forked child)."""
    global _thread
    thread = _thread
    if thread is not None and thread.pid == os.getpid():
        return thread
    with _lock:
        if _thread is None or _thread.pid != os.getpid():
            _thread = WriterThread()
            _install_exit_hook()
        return _thread


def _reset_lock_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it at the fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_lock_in_child)


def host(writer: Closable) -> None:
    """Close ``writer`` at interpreter exit (unless it was closed before)."""
    _hosted.add(writer)


def _join_program_threads(timeout: float) -> None:
    """Wait (at most ``timeout`` seconds) for the program's own non-daemon threads, as the
    interpreter is about to: their last calls are then written, not spooled. Left
    alone: thread pools' workers (concurrent.futures' exit hook, after this one, stops
    them) and store drivers' threads (aiosqlite's, which end when their store closes)."""
    deadline = time.monotonic() + timeout
    pools = getattr(concurrent.futures.thread, "_threads_queues", {})
    for thread in threading.enumerate():
        if (
            thread is threading.current_thread()
            or thread.daemon
            or thread in pools
            or thread.name.startswith(WORKER_PREFIX)
            or type(thread).__module__.split(".", 1)[0] in _DRIVER_THREAD_PACKAGES
        ):
            continue
        thread.join(max(0.0, deadline - time.monotonic()))


def _install_exit_hook() -> None:
    global _exit_hook_installed
    if _exit_hook_installed:
        return
    _exit_hook_installed = True
    # Called before concurrent.futures refuses new work at shutdown (registered later,
    # called earlier: hence its import above, which registers its own hook, and which
    # would fail if it first happened during shutdown); plain atexit runs after that,
    # too late to build a batch.
    register = getattr(threading, "_register_atexit", None)
    try:
        if register is None:
            raise RuntimeError("no threading._register_atexit")
        register(close_hosted_at_exit)
    except RuntimeError:  # an interpreter already shutting down: atexit is what is left
        import atexit

        atexit.register(close_hosted_at_exit)


def close_hosted_at_exit() -> None:
    """Flush and close every writer still hosted here, within ``EXIT_TIMEOUT`` in all."""
    thread = _thread
    if thread is None or thread.pid != os.getpid() or not thread.thread.is_alive():
        return
    writers = list(_hosted)
    if not writers:
        return
    _join_program_threads(EXIT_TIMEOUT)
    lifecycle.before_rescue()  # streams left open: logged as incomplete
    share = EXIT_TIMEOUT / len(writers)
    for writer in writers:
        try:
            writer.close_at_exit(share)
        except Exception as exc:  # one writer's failure must not stop the others
            logger.error("majordomo-log could not close a writer at exit: %s", exc)
