"""Turns for the event loop while a worker thread does CPU-bound Python.

The writer prices records, builds bodies and encodes rows in worker threads so that
none of it runs on the event loop. But CPython lets one thread run Python at a time,
and a thread that wants the GIL back waits for the holder to give it up: the holder
is only asked to after ``sys.getswitchinterval()`` (5 ms). So every time the event
loop wakes (a timer, a socket) while a worker is busy, it waits up to 5 ms, and a
1 ms ticker saw 10-15 ms stalls per batch. A worker that gives the GIL away for a
moment after each millisecond of work bounds that wait without touching the
interpreter-wide setting, which belongs to the application.

A long call into C that keeps the GIL (the regex engine over a large body) cannot give
it up when asked: the interpreter only switches threads between bytecodes, so the loop
waits for the whole call. Such work is cut into pieces by its caller, with
``maybe_yield()`` between them (``record/redact.py`` searches a body in windows,
``stores/bodies/layout.py`` feeds zlib a piece at a time).

Measured (interleaved A/B, SQLite + files in segment mode): the longest stall per
batch went from 13-16 ms to 7-10 ms (medians of 5); end-to-end records/s fell by a
median 10% (three pairs: 20%, 10% and 1%), the price of the 100 µs turns.
"""

from __future__ import annotations

import asyncio
import time

_WORK_SECONDS = 0.001  # Python work between two turns
_TURN_SECONDS = 0.0001  # long enough for a waiting thread to wake and take the GIL


class LoopTurns:
    """Call ``maybe_yield()`` between items of a long loop in a worker thread. On a
    thread that runs an event loop itself (the caller spilling a burst) it does nothing:
    sleeping there would stall the very loop it is meant to serve."""

    __slots__ = ("_active", "_since")

    def __init__(self) -> None:
        self._since = time.perf_counter()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self._active = True
        else:
            self._active = False

    def maybe_yield(self) -> None:
        if not self._active:
            return
        now = time.perf_counter()
        if now - self._since >= _WORK_SECONDS:
            time.sleep(_TURN_SECONDS)
            self._since = time.perf_counter()
