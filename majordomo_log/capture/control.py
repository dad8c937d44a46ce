"""The wrapper's control surface, as mixins of ``ClientWrapper`` (``capture/wrapper.py``):
``flush()``, ``stats()``, ``replay_spool()``, ``record_outcome()``, ``close()`` and
``with`` / ``async with``. ``Control``'s are coroutines (a writer on the caller's event
loop, or the library's writer thread awaited from one); ``SyncControl``'s are plain
methods, for a sync-only client (``SyncClientWrapper``) and programs with no event loop
anywhere, whose writer always runs on the library's writer thread
(``delivery/writer_thread.py``).

None of this is on a call's path: a call hands its record to the writer
(``capture/wrapper.py``); here the caller waits for the writer to write what was handed
over (flush, close), and an outcome is handed to the writer like a record.

These are mixins of one object: they read the wrapper's own private state (its writer,
its open streams, whether it was closed or is a ``with_options()`` copy), declared below,
and set by ``ClientWrapper.__init__`` and ``_derive``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import MutableMapping
from types import TracebackType
from typing import TYPE_CHECKING

from ..delivery.hosted import HostedWriter, shut_down
from ..delivery.stats import WriterStats
from ..delivery.writer import DEFAULT_CLOSE_TIMEOUT, BatchWriter
from ..record.call import OUTCOMES
from ..record.ids import request_id_text

if TYPE_CHECKING:
    from typing_extensions import Self

    from ..budgets.guard import BudgetGuard
    from ..record.call import CallRecord


class Control:
    """``flush()``, ``close()``, ``record_outcome()`` and the rest, as coroutines."""

    # The wrapper's state this mixin reads (capture/wrapper.py sets it).
    _writer: BatchWriter
    _open_streams: MutableMapping[str, CallRecord]  # streams still being read, by request id
    _close_stores: bool
    _closed: bool
    _derived: bool  # a with_options() copy: its parent owns the writer
    _guard: BudgetGuard | None  # budgets and alerts (budgets/guard.py)

    async def flush(self, timeout: float | None = None) -> WriterStats:
        """Wait until every record queued before this call is written (or, while a store
        is down, spooled); after ``timeout`` seconds, return with the rest pending."""
        return await self._writer.flush(timeout)

    def stats(self) -> WriterStats:
        """Counts since the writer started: written, spooled, replayed, dropped by reason."""
        return self._writer.stats()

    async def replay_spool(self) -> int:
        """Write the spooled records of these stores now (the writer also does this in the
        background once the stores are back); returns how many were written."""
        return await self._writer.replay()

    async def record_outcome(self, request_id: str, outcome: str) -> None:
        """Set the outcome (accepted, edited, rejected, escalated) of a logged call. May be
        called while the call's record still waits in the queue: it lands either way.

        ``request_id`` is ``call_info(response).request_id`` (or a ``uuid.UUID``): anything
        else is refused here (``TypeError``, ``ValueError``). An id of the right form that
        matches no logged call (not this log's, or its record was dropped or refused) is
        found when the writer applies it: a warning names it and ``stats()`` counts it in
        ``outcomes_unmatched``; the call it follows is never affected."""
        self._record_outcome(request_id, outcome)

    def _record_outcome(self, request_id: object, outcome: str) -> None:
        request_id = request_id_text(request_id)
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {sorted(OUTCOMES)}, got {outcome!r}")
        when = dt.datetime.now(dt.timezone.utc)
        record = self._open_streams.get(request_id)
        if record is not None:
            record.outcome = (outcome, when)  # inserted with the row, if not built yet
            if record.t_end is None:
                # Still being read: its record, queued when it ends, carries the outcome.
                # An update queued now would reach the store before the row, matching
                # nothing. (Read after the outcome is set: a stream ending meanwhile
                # queues its record after this, and its row is built later still.)
                return
        self._writer.submit((request_id, outcome, when))

    async def close(self, timeout: float | None = DEFAULT_CLOSE_TIMEOUT) -> WriterStats:
        """Flush and detach; the last wrapper on a pair of stores stops the writer and
        closes the stores (unless ``close_stores=False``). Idempotent. Waits at most
        ``timeout`` seconds (10 by default, ``None``: as long as it takes); what is not
        written by then is spooled (without a spool: counted as dropped)."""
        step = self._closing_step()
        writer = self._writer
        if step == "done":
            return writer.stats()
        if step == "flush":
            return await writer.flush(timeout)
        if isinstance(writer, HostedWriter):  # its stores live on the writer thread too
            return await writer.shut_down(timeout)
        return await shut_down(writer, timeout, self._close_stores)

    def _closing_step(self) -> str:
        """What close() has left to do: ``done`` (closed before), ``flush`` (a copy, or
        other wrappers still use the writer) or ``last`` (stop the writer and stores)."""
        if self._closed:
            return "done"
        if self._derived:  # a with_options() copy: its parent owns the writer
            return "flush"
        self._closed = True
        if self._guard is not None:  # its alert and anomaly threads: alerts sent, then stopped
            self._guard.close()
        return "flush" if self._writer.detach() > 0 else "last"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """``with`` on a wrapper whose flush() is a coroutine: closes it without awaiting,
        on the writer thread when the writer is there; a writer on the running loop of
        this very thread cannot be waited for, so its close() is scheduled on that loop."""
        writer = self._writer
        if isinstance(writer, HostedWriter) and not writer.thread.in_thread:
            step = self._closing_step()
            if step == "flush":
                writer.flush_sync()
            elif step == "last":
                writer.shut_down_sync(DEFAULT_CLOSE_TIMEOUT)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(self.close())
            return
        task = loop.create_task(self.close())
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


# close() tasks scheduled by a `with` block's exit on a running loop: kept until done.
_closing: set[asyncio.Task[WriterStats]] = set()


class SyncControl(Control):
    """The same surface as plain methods, over a writer on the library's writer thread:
    flush(), close(), replay_spool() and record_outcome() block instead of being awaited,
    and ``with`` closes; ``async with`` still works."""

    _writer: HostedWriter  # type: ignore[assignment]

    def flush(self, timeout: float | None = None) -> WriterStats:  # type: ignore[override]
        """Wait until every record queued before this call is written (or, while a store
        is down, spooled); after ``timeout`` seconds, return with the rest pending."""
        return self._writer.flush_sync(timeout)

    def replay_spool(self) -> int:  # type: ignore[override]
        """Write the spooled records of these stores now; how many were written."""
        return self._writer.replay_sync()

    def record_outcome(self, request_id: str, outcome: str) -> None:  # type: ignore[override]
        """Set the outcome (accepted, edited, rejected, escalated) of a logged call."""
        self._record_outcome(request_id, outcome)

    def close(  # type: ignore[override]
        self, timeout: float | None = DEFAULT_CLOSE_TIMEOUT
    ) -> WriterStats:
        """Flush and detach; the last wrapper on a pair of stores stops the writer and
        closes the stores. Idempotent; waits at most ``timeout`` seconds."""
        step = self._closing_step()
        writer = self._writer
        if step == "done":
            return writer.stats()
        if step == "flush":
            return writer.flush_sync(timeout)
        return writer.shut_down_sync(timeout)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        step = self._closing_step()
        if step == "flush":
            await self._writer.flush()
        elif step == "last":
            await self._writer.shut_down(DEFAULT_CLOSE_TIMEOUT)
