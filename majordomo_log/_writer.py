"""Where a record waits and is written: a bounded queue and one background task.

The wrapper appends to a deque (no await, no lock) and wakes the worker only
when a full batch is waiting; otherwise the worker wakes on its timer. Per
batch, one worker-thread hop prices the records and builds their bodies, one
call stores the bodies, and one transaction inserts the rows.

Nothing is lost quietly. Memory is held to two budgets (records, body bytes);
over budget, ``on_full`` decides: ``spill`` to the local spool, drop bodies
first, or ``block`` the caller. An unavailable store is retried with backoff and
jitter, then the batch goes to the spool, and later batches go straight there
until a probe finds the store back; the spool is then replayed in the
background. A row the store refuses costs only itself and is kept in the
spool's rejected/ folder. Every loss is counted per reason in ``stats()``.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import random
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from . import _shutdown
from ._log import logger
from ._record import CallRecord, build_envelope, build_row
from ._replay import Refused, is_transient, keep_rejected, replay_batch, write_isolating
from ._spool import Spool, SpoolCorrupt, SpoolEntry, SpoolFull
from .adapters.base import Body, BodyStore, MetadataStore, OutcomeUpdate, Row

QueueItem = CallRecord | OutcomeUpdate
OnFull = Literal["spill", "drop_bodies_first", "block"]
ON_FULL_POLICIES: tuple[OnFull, ...] = ("spill", "drop_bodies_first", "block")

DEFAULT_BATCH_SIZE = 1000
DEFAULT_FLUSH_INTERVAL = 1.0
DEFAULT_MAX_QUEUE_RECORDS = 10_000  # about 5 KB each with an SDK response object
DEFAULT_MAX_QUEUE_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_RETRIES = 5
_MIN_QUEUE_BYTES = 1024
_CHUNK_BYTES = 512  # a stream chunk object, roughly
_RETRY_BASE, _RETRY_CAP = 0.1, 5.0  # seconds: full-jitter exponential backoff
_PROBE_CAP = 30.0  # longest wait between tries of a store that is down
_REPLAY_CHECK_SECONDS = 30.0  # how often a healthy writer looks for spooled files
_SPILL_CHUNK = 1000  # records over budget spilled by the caller when the worker cannot run
_EXIT_DRAIN_SECONDS = 10.0  # how long a cancelled worker keeps writing at loop shutdown
_ERROR_LOG_INTERVAL = 30.0


@dataclass(frozen=True, slots=True)
class WriterStats:
    """Counts since the writer started. ``pending`` is queued or being written."""

    written: int  # rows committed (including re-writes of an existing request_id)
    failed: int  # rows the store refused (kept in the spool's rejected/ folder)
    dropped: int  # records lost: see dropped_by_reason
    pending: int
    bodies_written: int
    bodies_failed: int
    outcomes_written: int
    queue_bytes: int
    internal_errors: int = 0  # calls that could not be logged because of a bug here
    dropped_by_reason: dict[str, int] = field(default_factory=dict)
    spilled: int = 0  # records written to the spool
    replayed: int = 0  # spooled records since written to the store
    bodies_dropped: int = 0  # bodies left out by on_full="drop_bodies_first"
    queue_records: int = 0
    spool_files: int = 0
    store_down: bool = False  # a store is unavailable: batches go to the spool


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
        max_queue_records: int = DEFAULT_MAX_QUEUE_RECORDS,
        max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
        on_full: OnFull = "spill",
        spool: Spool | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        handle_sigterm: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if flush_interval <= 0:
            raise ValueError("flush_interval must be positive")
        if max_queue_records < 1:
            raise ValueError("max_queue_records must be at least 1")
        if max_queue_bytes < _MIN_QUEUE_BYTES:
            raise ValueError(f"max_queue_bytes must be at least {_MIN_QUEUE_BYTES}")
        if on_full not in ON_FULL_POLICIES:
            raise ValueError(f"on_full must be one of {', '.join(ON_FULL_POLICIES)}")
        if max_retries < 0:
            raise ValueError("max_retries must not be negative")
        self.db = db
        self.storage = storage
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_queue_records = max_queue_records
        self.max_queue_bytes = max_queue_bytes
        self.on_full = on_full
        self.spool = spool
        self.max_retries = max_retries
        self._queue: collections.deque[tuple[QueueItem, int]] = collections.deque()  # (item, bytes)
        self._queue_bytes = 0
        self._overflow: list[QueueItem] = []  # over budget, on its way to the spool
        self._inflight: list[QueueItem] = []  # the batch being written
        self._enqueued = 0  # items ever accepted
        self._done = 0  # items ever finished (written, spooled, refused or dropped)
        self._written = self._failed = self._spilled = self._replayed = 0
        self._bodies_written = self._bodies_failed = self._bodies_dropped = 0
        self._outcomes_written = self._internal_errors = 0
        self._dropped: collections.Counter[str] = collections.Counter()
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._room_waiters: list[asyncio.Future[None]] = []
        self._closing = False
        self._exit_drain_seconds = _EXIT_DRAIN_SECONDS
        self._down_until = 0.0  # monotonic time of the next try of a store that is down
        self._down_for = 0.0  # current wait between tries; 0 while the stores are up
        self._replay_due = 0.0  # monotonic time to look for spooled files (0: at start)
        self._reopen = False  # set in a forked child: stores must reconnect first
        self._last_error_log = 0.0
        self._users = 0  # LoggingLLM instances attached (see acquire/release)
        _shutdown.register(self, handle_sigterm)

    def __repr__(self) -> str:
        return f"<BatchWriter db={self.db.url!r} pending={self._enqueued - self._done}>"

    # -- producer side: called on the caller's hot path ---------------------------

    def submit(self, item: QueueItem) -> bool:
        """Queue a record or outcome update; False if it was dropped."""
        size = _size(item)
        if (
            self._queue_bytes + size > self.max_queue_bytes
            or len(self._queue) >= self.max_queue_records
            or self._closing
        ):
            return self._over_budget(item, size)
        self._queue.append((item, size))
        self._queue_bytes += size
        self._enqueued += 1
        task = self._task
        if task is None or task.done():
            self._start()
        elif len(self._queue) >= self.batch_size and self._wake is not None:
            self._wake.set()
        return True

    def is_full(self) -> bool:
        return (
            len(self._queue) >= self.max_queue_records or self._queue_bytes >= self.max_queue_bytes
        )

    async def wait_for_room(self) -> None:
        """For ``on_full="block"``: wait until the queue is under both budgets. Room is
        made by writing, or by spooling while a store is down."""
        while self.is_full() and not self._closing:
            if self._task is None or self._task.done():
                self._start()
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._room_waiters.append(future)
            if self._wake is not None:
                self._wake.set()
            await future

    def _over_budget(self, item: QueueItem, size: int) -> bool:
        if (
            self.on_full == "drop_bodies_first"
            and isinstance(item, CallRecord)
            and not self._closing
            and len(self._queue) < self.max_queue_records
            and _drop_body(item)
        ):
            self._bodies_dropped += 1
            size = _size(item)
            if self._queue_bytes + size <= self.max_queue_bytes:
                self._queue.append((item, size))
                self._queue_bytes += size
                self._enqueued += 1
                return True
        if self.spool is None:
            self._drop([item], "closed" if self._closing else "queue_full")
            return False
        # Spilled by the worker when it runs; by this caller when it cannot (a burst that
        # never yields to the loop), so memory stays bounded either way.
        self._overflow.append(item)
        self._enqueued += 1
        if len(self._overflow) >= _SPILL_CHUNK or self._task is None or self._task.done():
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

    def stats(self) -> WriterStats:
        return WriterStats(
            written=self._written,
            failed=self._failed,
            dropped=sum(self._dropped.values()),
            pending=self._enqueued - self._done,
            bodies_written=self._bodies_written,
            bodies_failed=self._bodies_failed,
            outcomes_written=self._outcomes_written,
            queue_bytes=self._queue_bytes,
            internal_errors=self._internal_errors,
            dropped_by_reason=dict(self._dropped),
            spilled=self._spilled,
            replayed=self._replayed,
            bodies_dropped=self._bodies_dropped,
            queue_records=len(self._queue),
            spool_files=len(self.spool.pending()) if self.spool is not None else 0,
            store_down=self._down_for > 0,
        )

    def count_internal_error(self) -> None:
        self._internal_errors += 1

    async def flush(self, timeout: float | None = None) -> WriterStats:
        """Return once everything queued before the call is written, spooled or refused,
        or after ``timeout`` seconds with what is still pending in the stats."""
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
        What is still held after ``timeout`` seconds goes to the spool (or, without one,
        is counted as dropped)."""
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
        self.rescue("closed")
        self._wake_room_waiters()
        return self.stats()

    async def replay(self) -> int:
        """Replay this writer's spooled files now; the number of records written."""
        if self.spool is None:
            return 0
        before = self._replayed
        await self._replay_spool(max_files=None)
        return self._replayed - before

    def rescue(self, reason: str) -> None:
        """Synchronously move everything still held to the spool (or count it dropped):
        for exit, a fatal signal, or a close() that ran out of time. Safe with no loop."""
        items = list(self._inflight)  # may also have reached the store: replay is a no-op
        items += [item for item, _ in self._queue]
        items += self._overflow
        self._queue.clear()
        self._overflow = []
        self._queue_bytes = 0
        if not items:
            return
        self._done += len(items) - len(self._inflight)
        self._inflight = []
        self._spill_items(items, reason)
        self._resolve_waiters()

    def reset_after_fork(self) -> None:
        """In a forked child: the parent's records are the parent's to write, and its
        connections and event loop are not ours. Start empty; reconnect before writing."""
        self._queue.clear()
        self._overflow = []
        self._inflight = []
        self._queue_bytes = 0
        self._enqueued = self._done = 0
        self._task = None
        self._wake = None
        self._waiters = []
        self._room_waiters = []
        self._reopen = True
        self._replay_due = 0.0

    # -- consumer side: the background task -----------------------------------------

    async def _run(self) -> None:
        assert self._wake is not None
        try:
            while True:
                if not self._queue and not self._overflow:
                    if self._closing:
                        return
                    self._resolve_waiters()
                    await self._maybe_replay()
                if (
                    len(self._queue) < self.batch_size
                    and not self._overflow
                    and not self._waiters
                    and not self._room_waiters
                    and not self._closing
                ):
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
            self.rescue("exit")
            raise

    async def _drain(self) -> None:
        while self._queue or self._overflow:
            if self._overflow:
                await asyncio.to_thread(self._spill_overflow)
            if not self._queue:
                continue
            if self._down_for and self.spool is None and time.monotonic() < self._down_until:
                # Nowhere to put the batch: keep it, wait for the next try.
                await self._sleep_until(self._down_until)
                continue
            count = min(self.batch_size, len(self._queue))
            taken = [self._queue.popleft() for _ in range(count)]
            batch = [item for item, _ in taken]
            self._inflight = batch
            try:
                finished = await self._process(batch)
            except asyncio.CancelledError:
                # Interrupted mid-batch: put it back. Stores roll back an interrupted
                # transaction and skip rows they already have, so rewriting it is safe.
                self._queue.extendleft(reversed(taken))
                self._inflight = []
                raise
            except Exception as exc:  # a bug here: never let the worker die
                finished = True
                self._failed += sum(isinstance(i, CallRecord) for i in batch)
                self._internal_errors += 1
                logger.exception("writing a batch failed", exc_info=exc)
            self._inflight = []
            if not finished:  # store down and no spool: keep it, in order
                self._queue.extendleft(reversed(taken))
                continue
            self._done += count
            self._queue_bytes -= sum(size for _, size in taken)
            self._resolve_waiters()
            self._wake_room_waiters()

    async def _process(self, batch: Sequence[QueueItem]) -> bool:
        """Write one batch, or spool it; False if it must wait (store down, no spool)."""
        if self._reopen:
            await self._reopen_stores()
        records = [i for i in batch if isinstance(i, CallRecord)]
        outcomes = [i for i in batch if not isinstance(i, CallRecord)]
        bodies = await asyncio.to_thread(_prepare, records, self.storage is not None)
        if self._down_for and time.monotonic() < self._down_until:
            await asyncio.to_thread(self._spill_prepared, records, bodies, None, outcomes, None)
            return True
        refs: list[str | None] | None = None
        try:
            refs = await self._store_bodies(records, bodies)
            rows = await asyncio.to_thread(_rows, records, refs)
            refused = await write_isolating(self._write_with_retries, rows, outcomes)
        except Exception as exc:
            if not is_transient(exc):
                raise
            self._mark_down(exc)
            if self.spool is None:
                return False
            error = f"{type(exc).__name__}: {exc}"
            await asyncio.to_thread(self._spill_prepared, records, bodies, refs, outcomes, error)
            return True
        self._mark_up()
        self._count_written(len(rows), len(outcomes), refused)
        if refused and self.spool is not None:
            await asyncio.to_thread(keep_rejected, self.spool, refused, None, self.db, self.storage)
        elif refused:
            for row, error in refused:
                logger.error("metadata store %s refused %s: %s", self.db.url, _what(row), error)
        return True

    def _count_written(self, rows: int, outcomes: int, refused: Sequence[Refused]) -> None:
        bad_rows = sum(row is not None for row, _ in refused)
        self._written += rows - bad_rows
        self._failed += bad_rows
        self._outcomes_written += outcomes - (len(refused) - bad_rows)

    async def _write_with_retries(
        self, rows: Sequence[Row], outcomes: Sequence[OutcomeUpdate]
    ) -> None:
        # A store already known to be down gets one try per probe, not a retry series.
        attempts = 1 if self._down_for else 1 + self.max_retries
        for attempt in range(attempts):
            try:
                await self.db.write_batch(rows, outcomes)
                return
            except Exception as exc:
                if not is_transient(exc) or attempt == attempts - 1:
                    raise
                await asyncio.sleep(_backoff(attempt))

    async def _store_bodies(
        self, records: Sequence[CallRecord], bodies: Sequence[Body | None]
    ) -> list[str | None]:
        if self.storage is None or not any(b is not None for b in bodies):
            return [None] * len(records)
        present = [b for b in bodies if b is not None]
        attempts = 1 if self._down_for else 1 + self.max_retries
        for attempt in range(attempts):
            try:
                stored = await self.storage.put_many(present)
                break
            except Exception as exc:
                if is_transient(exc):
                    if attempt == attempts - 1:
                        raise
                    await asyncio.sleep(_backoff(attempt))
                    continue
                # Refused outright (bad credentials, no bucket): the rows still go in.
                self._log_error(
                    "body store %s refused %d bodies: %s: %s",
                    self.storage.url,
                    len(present),
                    type(exc).__name__,
                    exc,
                )
                stored = [None] * len(present)
                break
        it = iter(stored)
        refs = [None if b is None else next(it) for b in bodies]
        ok = sum(r is not None for r in stored)
        self._bodies_written += ok
        self._bodies_failed += len(present) - ok
        return refs

    # -- stores down and back --------------------------------------------------------

    def _mark_down(self, exc: BaseException) -> None:
        self._down_for = min(max(self._down_for * 2, 1.0), _PROBE_CAP)
        self._down_until = time.monotonic() + self._down_for
        where = f"spooling to {self.spool.directory}" if self.spool else "keeping records in memory"
        self._log_error(
            "store unavailable (%s: %s): %s; next try in %.0f s",
            type(exc).__name__,
            exc,
            where,
            self._down_for,
        )

    def _mark_up(self) -> None:
        if self._down_for:
            logger.warning("stores are back: writing again, replaying the spool")
            self._down_for = self._down_until = 0.0
            self._replay_due = 0.0

    async def _sleep_until(self, deadline: float) -> None:
        assert self._wake is not None
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            pass

    async def _maybe_replay(self) -> None:
        if self.spool is None or self._down_for or time.monotonic() < self._replay_due:
            return
        self._replay_due = time.monotonic() + _REPLAY_CHECK_SECONDS
        await self._replay_spool(max_files=10)  # a little at a time: new records come first

    async def _replay_spool(self, max_files: int | None) -> None:
        assert self.spool is not None
        spool, done = self.spool, 0
        for path in await asyncio.to_thread(spool.pending):
            if max_files is not None and done >= max_files:
                self._replay_due = 0.0  # more waiting: come back on the next idle turn
                return
            with spool.claim(path) as mine:
                if not mine:
                    continue
                try:
                    batch = await asyncio.to_thread(spool.read, path)
                except FileNotFoundError:
                    continue
                except SpoolCorrupt as exc:
                    logger.error("%s; moved to %s", exc, spool.quarantine(path))
                    continue
                if batch.db != self.db.url or batch.storage != _url(self.storage):
                    continue  # another pair of stores shares this directory
                try:
                    written, refused = await replay_batch(
                        batch, self.db, self.storage, spool, self._write_with_retries
                    )
                except Exception as exc:
                    if is_transient(exc):
                        self._mark_down(exc)
                        return
                    # e.g. bodies spooled with no body store now: leave it for a person
                    self._log_error("cannot replay %s: %s: %s", path, type(exc).__name__, exc)
                    continue
                spool.remove(path)
            self._mark_up()
            done += 1
            self._replayed += written
            self._failed += refused

    async def _reopen_stores(self) -> None:
        self._reopen = False
        for store in (self.db, self.storage):
            reopen = getattr(store, "reopen", None)
            if store is not None and reopen is not None:
                await reopen()

    # -- spooling -------------------------------------------------------------------

    def _spill_overflow(self) -> None:
        items, self._overflow = self._overflow, []
        if items:
            self._spill_items(items, "overflow")
            self._done += len(items)
            self._resolve_waiters()

    def _spill_items(self, items: Sequence[QueueItem], reason: str) -> None:
        """Price and build what is held, then spool it (synchronous: any thread)."""
        records = [i for i in items if isinstance(i, CallRecord)]
        outcomes = [i for i in items if not isinstance(i, CallRecord)]
        if self.spool is None:
            self._drop(records, reason)
            return
        try:
            bodies = _prepare(records, self.storage is not None)
        except Exception as exc:  # pricing is guarded per record; this is a last resort
            logger.exception("preparing records for the spool failed", exc_info=exc)
            self._drop(records, "internal_error")
            return
        self._spill_prepared(records, bodies, None, outcomes, None, reason)

    def _spill_prepared(
        self,
        records: Sequence[CallRecord],
        bodies: Sequence[Body | None],
        refs: Sequence[str | None] | None,
        outcomes: Sequence[OutcomeUpdate],
        error: str | None,
        reason: str = "unavailable",
    ) -> None:
        assert self.spool is not None
        refs = refs or [None] * len(records)
        entries = []
        for record, body, ref in zip(records, bodies, refs, strict=True):
            try:
                row = build_row(record, ref)
            except Exception as exc:
                logger.exception("building the row of %s failed", record.request_id, exc_info=exc)
                self._drop([record], "internal_error")
                continue
            entries.append(SpoolEntry(row, body[2] if body is not None and ref is None else None))
        try:
            self.spool.append(
                entries,
                outcomes,
                reason=reason,
                db=self.db.url,
                storage=_url(self.storage),
                error=error,
            )
        except SpoolFull as exc:
            self._dropped[exc.reason] += len(entries)
            self._log_error("%s: %d records dropped", exc, len(entries))
            return
        self._spilled += len(entries)
        self._replay_due = min(self._replay_due, time.monotonic() + _REPLAY_CHECK_SECONDS)

    def _drop(self, items: Sequence[QueueItem], reason: str) -> None:
        lost = sum(isinstance(i, CallRecord) for i in items)
        if lost:
            self._dropped[reason] += lost
            self._log_error("%d records dropped (%s); see stats()", lost, reason)

    # -- waiters ---------------------------------------------------------------------

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

    def _wake_room_waiters(self) -> None:
        if self._room_waiters and (not self.is_full() or self._closing):
            waiters, self._room_waiters = self._room_waiters, []
            for future in waiters:
                if not future.done():
                    future.set_result(None)

    def _log_error(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._last_error_log >= _ERROR_LOG_INTERVAL:
            self._last_error_log = now
            logger.error(message, *args)


def _backoff(attempt: int) -> float:
    """Full jitter: writers that failed together do not retry together."""
    return random.uniform(0.0, min(_RETRY_CAP, _RETRY_BASE * 2**attempt))


def _url(store: BodyStore | None) -> str | None:
    return None if store is None else store.url


def _what(row: Row | None) -> str:
    return "outcome updates" if row is None else f"row {row[0]}"


def _size(item: QueueItem) -> int:
    """Body bytes a queued item holds (the records budget covers the rest)."""
    if isinstance(item, CallRecord):
        chunks = item.stream_chunks
        return len(item.request_json or b"") + (0 if chunks is None else _CHUNK_BYTES * len(chunks))
    return 0


def _drop_body(record: CallRecord) -> bool:
    """Free a record's body (request snapshot, response object); True if there was one.
    The response is read first for what the row needs from it."""
    if record.request_json is None and record.response is None:
        return False
    if record.provider_request_id is None and record.response is not None:
        request_id = getattr(record.response, "_request_id", None)
        record.provider_request_id = request_id if isinstance(request_id, str) else None
    if record.stream_chunks is None:
        record.priced()  # usage is read from the response: price it while we have it
        record.response = None
    record.request_json = None
    record.body_dropped = True
    return True


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
        if not with_bodies or not record.ctx.capture_bodies or record.body_dropped:
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
