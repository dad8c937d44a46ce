"""Where a record waits and is written: a bounded queue and one background task.

The wrapper appends to a deque (no await, no lock) and wakes the worker only
when a full batch is waiting; otherwise the worker wakes on its timer. Per
batch, one worker-thread hop prices the records and serializes their bodies,
one call stores the bodies, and one transaction inserts the rows. Store errors
are retried, counted and logged, never raised into a wrapped call.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._exceptions import StoreError, StoreUnavailable
from ._log import logger
from ._record import CallRecord, build_envelope, build_row
from .adapters.base import Body, BodyStore, MetadataStore, OutcomeUpdate, Row

QueueItem = CallRecord | OutcomeUpdate

DEFAULT_BATCH_SIZE = 1000
DEFAULT_FLUSH_INTERVAL = 1.0
DEFAULT_MAX_QUEUE_BYTES = 64 * 1024 * 1024
_RECORD_OVERHEAD_BYTES = 1024  # a queued record without its request snapshot
_RETRY_DELAYS = (0.1, 0.5, 2.0)
_ERROR_LOG_INTERVAL = 30.0


@dataclass(frozen=True, slots=True)
class WriterStats:
    """Counts since the writer started. ``pending`` is queued or being written."""

    written: int  # rows committed (including re-writes of an existing request_id)
    failed: int  # rows the database refused after retries
    dropped: int  # records refused because the queue was over its memory budget
    pending: int
    bodies_written: int
    bodies_failed: int
    outcomes_written: int
    queue_bytes: int
    internal_errors: int = 0  # calls that could not be logged because of a bug here


class BatchWriter:
    """Batches records into a metadata store and a body store. Normally created and
    shared by ``LoggingLLM``: wrappers given the same pair of stores share one writer."""

    def __init__(
        self,
        db: MetadataStore,
        storage: BodyStore | None,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if flush_interval <= 0:
            raise ValueError("flush_interval must be positive")
        if max_queue_bytes < _RECORD_OVERHEAD_BYTES:
            raise ValueError(f"max_queue_bytes must be at least {_RECORD_OVERHEAD_BYTES}")
        self.db = db
        self.storage = storage
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_queue_bytes = max_queue_bytes
        self._queue: collections.deque[tuple[QueueItem, int]] = collections.deque()  # (item, bytes)
        self._queue_bytes = 0
        self._enqueued = 0  # items ever accepted
        self._done = 0  # items ever finished (written or failed)
        self._written = self._failed = self._dropped = 0
        self._bodies_written = self._bodies_failed = self._outcomes_written = 0
        self._internal_errors = 0
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._closing = False
        self._exit_drain_seconds = 10.0  # how long a cancelled worker keeps writing
        self._last_error_log = 0.0
        self._users = 0  # LoggingLLM instances attached (see acquire/release)

    def __repr__(self) -> str:
        return f"<BatchWriter db={self.db.url!r} pending={self._enqueued - self._done}>"

    # -- producer side: called on the caller's hot path ---------------------------

    def submit(self, item: QueueItem) -> bool:
        """Queue a record or outcome update; False if it was dropped."""
        size = _size(item)
        if self._queue_bytes + size > self.max_queue_bytes or self._closing:
            self._dropped += 1
            self._log_error(
                "queue full or closing: dropped a record (%d dropped so far)", self._dropped
            )
            return False
        self._queue.append((item, size))
        self._queue_bytes += size
        self._enqueued += 1
        task = self._task
        if task is None or task.done():
            self._start()
        elif len(self._queue) >= self.batch_size and self._wake is not None:
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

    def stats(self) -> WriterStats:
        return WriterStats(
            written=self._written,
            failed=self._failed,
            dropped=self._dropped,
            pending=self._enqueued - self._done,
            bodies_written=self._bodies_written,
            bodies_failed=self._bodies_failed,
            outcomes_written=self._outcomes_written,
            queue_bytes=self._queue_bytes,
            internal_errors=self._internal_errors,
        )

    def count_internal_error(self) -> None:
        self._internal_errors += 1

    async def flush(self, timeout: float | None = None) -> WriterStats:
        """Return once everything queued before the call is written (or failed), or
        after ``timeout`` seconds with what is still pending in the stats."""
        target = self._enqueued
        if self._done < target:
            if self._task is None or self._task.done():
                self._start()
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append((target, future))
            if self._wake is not None:
                self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(future), timeout)
            except asyncio.TimeoutError:
                pass
        return self.stats()

    async def close(self, timeout: float | None = None) -> WriterStats:
        """Flush, then stop the worker; waits for it, so the stores can be closed next.
        After ``timeout`` seconds whatever is still queued is counted as dropped."""
        await self.flush(timeout)
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
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        self._give_up("the writer was closed before they were written")
        return self.stats()

    # -- consumer side: the background task -----------------------------------------

    async def _run(self) -> None:
        assert self._wake is not None
        try:
            while True:
                if not self._queue:
                    if self._closing:
                        return
                    self._resolve_waiters()
                if len(self._queue) < self.batch_size and not self._waiters and not self._closing:
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), self.flush_interval)
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
            self._give_up("the event loop stopped before they were written")
            raise

    async def _drain(self) -> None:
        while self._queue:
            count = min(self.batch_size, len(self._queue))
            taken = [self._queue.popleft() for _ in range(count)]
            batch = [item for item, _ in taken]
            try:
                await self._write(batch)
            except asyncio.CancelledError:
                # Interrupted mid-batch: put it back. Stores roll back an interrupted
                # transaction and skip rows they already have, so rewriting it is safe.
                self._queue.extendleft(reversed(taken))
                raise
            except Exception as exc:  # never let the worker die: count and go on
                self._failed += sum(isinstance(i, CallRecord) for i in batch)
                self._log_error("writing a batch failed: %s: %s", type(exc).__name__, exc)
            self._done += count
            self._queue_bytes -= sum(size for _, size in taken)
            self._resolve_waiters()

    def _give_up(self, reason: str) -> None:
        """Count what is still queued as dropped, so flush() and stats() tell the truth."""
        lost = sum(isinstance(item, CallRecord) for item, _ in self._queue)
        if not self._queue:
            return
        self._dropped += lost
        self._done += len(self._queue)
        self._queue.clear()
        self._queue_bytes = 0
        self._resolve_waiters()
        logger.error("%d records were dropped: %s", lost, reason)

    async def _write(self, batch: Sequence[QueueItem]) -> None:
        records = [i for i in batch if isinstance(i, CallRecord)]
        outcomes = [i for i in batch if not isinstance(i, CallRecord)]
        bodies = await asyncio.to_thread(_prepare, records, self.storage is not None)
        refs: list[str | None] = [None] * len(records)
        if self.storage is not None and bodies:
            refs = await self._store_bodies(records, bodies)
        rows = await asyncio.to_thread(_rows, records, refs)
        await self._write_rows(rows, outcomes)

    async def _write_rows(self, rows: Sequence[Row], outcomes: Sequence[OutcomeUpdate]) -> None:
        """Write with retries when the store is unavailable. When it refuses the batch
        itself, write each half on its own: one bad row must not cost the others."""
        for attempt, delay in enumerate((*_RETRY_DELAYS, None)):
            try:
                await self.db.write_batch(rows, outcomes)
            except Exception as exc:
                if not _transient(exc):
                    await self._split(rows, outcomes, exc)
                    return
                if delay is None:
                    self._failed += len(rows)
                    self._log_error(
                        "metadata store %s unavailable: %d rows not written after %d attempts: %s",
                        self.db.url,
                        len(rows),
                        attempt + 1,
                        exc,
                    )
                    return
                await asyncio.sleep(delay)
            else:
                self._written += len(rows)
                self._outcomes_written += len(outcomes)
                return

    async def _split(
        self, rows: Sequence[Row], outcomes: Sequence[OutcomeUpdate], exc: Exception
    ) -> None:
        if len(rows) > 1:
            middle = len(rows) // 2
            await self._write_rows(rows[:middle], outcomes)
            await self._write_rows(rows[middle:], ())
            return
        self._failed += len(rows)
        request_id = rows[0][0] if rows else "(outcome updates)"
        logger.error("metadata store %s refused row %s: %s", self.db.url, request_id, exc)

    async def _store_bodies(
        self, records: Sequence[CallRecord], bodies: Sequence[Body | None]
    ) -> list[str | None]:
        assert self.storage is not None
        present = [b for b in bodies if b is not None]
        try:
            stored = await self.storage.put_many(present)
        except Exception as exc:  # a body failure must not cost the row
            self._log_error(
                "body store %s failed: %s: %s", self.storage.url, type(exc).__name__, exc
            )
            stored = [None] * len(present)
        it = iter(stored)
        refs = [None if b is None else next(it) for b in bodies]
        ok = sum(r is not None for r in stored)
        self._bodies_written += ok
        self._bodies_failed += len(present) - ok
        return refs

    def _resolve_waiters(self) -> None:
        if not self._waiters:
            return
        still = []
        for target, future in self._waiters:
            if self._done >= target:
                if not future.done():
                    future.set_result(None)
            else:
                still.append((target, future))
        self._waiters = still

    def _log_error(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._last_error_log >= _ERROR_LOG_INTERVAL:
            self._last_error_log = now
            logger.error(message, *args)


def _transient(exc: Exception) -> bool:
    """Worth retrying the same batch: the store could not be reached or was busy."""
    if isinstance(exc, StoreUnavailable):
        return True
    if isinstance(exc, StoreError):
        return False  # the store answered and refused: retrying the same rows cannot help
    return isinstance(exc, (OSError, TimeoutError, asyncio.TimeoutError))


def _size(item: QueueItem) -> int:
    if isinstance(item, CallRecord):
        chunks = item.stream_chunks
        return (
            _RECORD_OVERHEAD_BYTES
            + len(item.request_json or b"")
            + (0 if chunks is None else 512 * len(chunks))
        )
    return _RECORD_OVERHEAD_BYTES


def _prepare(records: Sequence[CallRecord], with_bodies: bool) -> list[Body | None]:
    """Worker thread: price every record and build its body envelope."""
    bodies: list[Body | None] = []
    for record in records:
        if record.provider_request_id is None and record.response is not None:
            # Read here, not on the caller's path: a missing private attribute on a
            # pydantic model costs microseconds.
            request_id = getattr(record.response, "_request_id", None)
            record.provider_request_id = request_id if isinstance(request_id, str) else None
        try:
            record.priced()
        except Exception as exc:  # a pricing bug must not lose the row
            logger.exception("pricing %s failed", record.request_id, exc_info=exc)
            record._priced = (None, None, "missing_usage")
        if not with_bodies or not record.ctx.capture_bodies:
            bodies.append(None)
            continue
        try:
            started = dt.datetime.fromtimestamp(record.started_at, dt.timezone.utc)
            bodies.append((record.request_id, started, build_envelope(record)))
        except Exception as exc:
            logger.warning("body of %s not serializable: %s", record.request_id, exc)
            bodies.append(None)
    return bodies


def _rows(records: Sequence[CallRecord], refs: Sequence[str | None]) -> list[Row]:
    return [build_row(record, ref) for record, ref in zip(records, refs, strict=True)]


# Wrappers that share a pair of stores share one writer. Weak values: the writer
# lives as long as some LoggingLLM uses it, and a forgotten one is collectable.
_writers: weakref.WeakValueDictionary[tuple[int, int], BatchWriter] = weakref.WeakValueDictionary()


def shared_writer(db: MetadataStore, storage: BodyStore | None, **options: Any) -> BatchWriter:
    key = (id(db), id(storage))
    writer = _writers.get(key)
    if writer is None or writer.db is not db or writer.storage is not storage or writer._closing:
        writer = BatchWriter(db, storage, **options)
        _writers[key] = writer
    return writer
