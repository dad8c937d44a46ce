"""Process lifecycle: exit, SIGTERM and fork.

By the time ``atexit`` runs, ``asyncio.run`` has closed the loop, so the rescue
here is synchronous: whatever a writer still holds is priced and written to its
spool, to be replayed on the next start. SIGTERM is chained, never taken over:
when the application has its own handler, that handler's graceful shutdown
drains the writer through the loop (and ``atexit`` catches the rest); only when
SIGTERM would kill the process outright does the handler spool first and then
die the way the default action would. A forked child (gunicorn, multiprocessing)
gets empty writers whose stores are reopened before first use, instead of the
parent's connections and queued records.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
import weakref
from collections.abc import Callable
from types import FrameType
from typing import Any, Protocol

from .._log import logger


class Rescuable(Protocol):
    """What the lifecycle hooks need of a writer (``delivery/writer.py``'s ``BatchWriter``)."""

    def rescue(self, reason: str) -> None: ...

    def reset_after_fork(self) -> None: ...


_live: weakref.WeakSet[Rescuable] = weakref.WeakSet()
_installed = False
_sigterm_installed = False
_previous_sigterm: Any = None


def register(writer: Rescuable, handle_sigterm: bool) -> None:
    global _installed
    _live.add(writer)
    if not _installed:
        _installed = True
        atexit.register(rescue_all, "exit")
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_in_child)
    if handle_sigterm:
        install_sigterm_handler()


_before_rescue: list[Callable[[], None]] = []


def on_rescue(step: Callable[[], None]) -> None:
    """Run ``step`` before the writers are rescued or closed at exit or on SIGTERM (the
    wrapper ends streams still open with it, so they are logged as incomplete)."""
    _before_rescue.append(step)


def before_rescue() -> None:
    for step in _before_rescue:
        try:
            step()
        except Exception as exc:  # one step's failure must not stop the rescue
            logger.error("majordomo-log: a step before the exit rescue failed: %s", exc)


def rescue_all(reason: str) -> None:
    """Spool what every live writer still holds (synchronous; see module doc)."""
    before_rescue()
    for writer in list(_live):
        try:
            writer.rescue(reason)
        except Exception as exc:  # one writer's failure must not stop the others
            logger.error("majordomo-log could not spool records at %s: %s", reason, exc)


def install_sigterm_handler() -> bool:
    """Chain a SIGTERM handler in front of the current one; True if installed. Only the
    main thread may set handlers, and an ignored SIGTERM stays ignored."""
    global _sigterm_installed, _previous_sigterm
    if _sigterm_installed:
        return True
    if threading.current_thread() is not threading.main_thread():
        return False
    try:
        previous = signal.getsignal(signal.SIGTERM)
        if previous == signal.SIG_IGN:
            return False
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # e.g. an embedded interpreter without signals
        return False
    _previous_sigterm = previous
    _sigterm_installed = True
    return True


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    previous = _previous_sigterm
    if callable(previous):
        # The application shuts down gracefully: its loop drains the writers to their
        # stores, which is better than the spool. atexit covers what is left.
        previous(signum, frame)
        return
    rescue_all("signal")
    # Die as the default action would: same signal, so the exit status says SIGTERM.
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _in_child() -> None:
    for writer in list(_live):
        writer.reset_after_fork()
