"""Records over the queue's budget, on their way to the spool.

Callers append while a worker thread takes the list, so both hold ``lock``. A rescue
(exit, SIGTERM) never takes it: it may run in a signal handler that interrupted the
holder. It finds every record without it, in ``items`` or in ``spilling``, until the
spool has it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from .delivery import QueueItem


class Overflow:
    def __init__(self, spill: Callable[[], None]) -> None:
        self.items: list[QueueItem] = []
        # Being written to the spool right now, by id of its list: still a rescue's to
        # save until the spool has it (a SIGTERM may come mid-write).
        self.spilling: dict[int, list[QueueItem]] = {}
        self.lock = threading.Lock()
        self.closed_bytes = 0  # held since close(), for the spool
        self._spill = spill  # takes what is held and spools it
        self._scheduled = False

    def __len__(self) -> int:
        return len(self.items)

    def add(self, item: QueueItem) -> None:
        with self.lock:
            self.items.append(item)

    def take(self) -> list[QueueItem]:
        """Any thread: everything held, counted as spilling until ``spooled``."""
        with self.lock:
            items = self.items
            if items:
                self.spilling[id(items)] = items  # first: a rescue must see them until spooled
                self.items = []
        return items

    def spooled(self, items: list[QueueItem]) -> None:
        self.spilling.pop(id(items), None)

    def being_spooled(self) -> list[QueueItem]:
        return [item for items in list(self.spilling.values()) for item in items]

    def spill_soon(self) -> None:
        """Spool what is held in a thread when a loop runs here (pricing and an fsync
        would stall it), else now."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._spill()
            return
        if not self._scheduled:  # one at a time: it takes whatever has piled up
            self._scheduled = True
            loop.run_in_executor(None, self._scheduled_spill)

    def _scheduled_spill(self) -> None:
        self._scheduled = False
        self._spill()

    def reset_after_fork(self) -> None:
        self.items = []
        self.lock = threading.Lock()  # a thread of the parent's may have held it
        self.spilling = {}
