"""Who waits on the writer: ``flush()`` until every item queued before it is done, and
callers of ``on_full="block"`` until the queue has room."""

from __future__ import annotations

import asyncio


class Waiters:
    def __init__(self) -> None:
        self._flushes: list[tuple[int, asyncio.Future[None]]] = []  # (items done, waiter)
        self._room: list[asyncio.Future[None]] = []

    def __bool__(self) -> bool:
        return bool(self._flushes or self._room)

    @property
    def want_room(self) -> bool:
        return bool(self._room)

    def until_done(self, target: int) -> asyncio.Future[None]:
        """A future set once ``target`` items are done (see ``resolve``)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._flushes.append((target, future))
        return future

    def for_room(self) -> asyncio.Future[None]:
        """A future set by the next ``wake_room``."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._room.append(future)
        return future

    def resolve(self, done: int) -> None:
        """``done`` items are done: wake the flushes that waited for no more."""
        if not self._flushes:
            return
        still = []
        for target, future in self._flushes:
            if done >= target:
                if not future.done():
                    future.set_result(None)
            else:
                still.append((target, future))
        self._flushes = still

    def wake_room(self) -> None:
        waiters, self._room = self._room, []
        for future in waiters:
            if not future.done():
                future.set_result(None)
