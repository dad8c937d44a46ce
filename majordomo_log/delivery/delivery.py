"""Where a batch is written: to the stores, or to the spool when they cannot take it.

``Delivery.deliver`` prices a batch and builds its bodies in a worker thread
(``delivery/prepare.py``), stores the bodies, then inserts the rows, retrying an
unavailable store with exponential backoff and full jitter (``RetryOptions``). When
the retries run out, the batch goes to the spool and the stores are marked down:
later batches go straight to the spool until a probe (1 s, doubling up to 30 s)
finds them back, and the spool is then replayed (``delivery/replay.py``). A row the
store refuses costs only itself and is kept in rejected/ (``delivery/isolate.py``).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .._exceptions import SpoolFull
from .._log import logger
from ..record.call import CallRecord
from ..schema import Body, OutcomeUpdate, Row
from ..stores.base import BodyStore, MetadataStore
from .isolate import Refused, is_transient, keep_rejected, log_refused, write_isolating
from .prepare import prepare, release, row_or_refusal, rows_of
from .replay import replay_files
from .spool import Spool, SpoolEntry

QueueItem = CallRecord | OutcomeUpdate  # what the writer queues: a call, or a later outcome

_PROBE_CAP = 30.0  # longest wait between tries of a store that is down
_REPLAY_CHECK_SECONDS = 30.0  # how often a healthy writer looks for spooled files
_ERROR_LOG_INTERVAL = 30.0
_IDS_SHOWN = 10  # request ids a warning about unmatched outcomes names


class Delivery:
    """Writes batches for one ``BatchWriter`` and keeps the counts of what happened."""

    def __init__(
        self,
        db: MetadataStore,
        storage: BodyStore | None,
        spool: Spool | None,
        max_retries: int,
        backoff: Callable[[int], float],
    ) -> None:
        self.db = db
        self.storage = storage
        self.spool = spool
        self.max_retries = max_retries
        self.backoff = backoff
        self.written = self.failed = self.spilled = self.replayed = 0
        self.spill_files = 0  # batch files this writer added to the spool
        self.bodies_written = self.bodies_failed = self.outcomes_written = 0
        self.outcomes_unmatched = 0  # outcome updates whose request id matched no row
        self.dropped: collections.Counter[str] = collections.Counter()
        self.down_for = 0.0  # current wait between tries; 0 while the stores are up
        self.down_until = 0.0  # monotonic time of the next try of a store that is down
        self.replay_due = 0.0  # monotonic time to look for spooled files (0: at once)
        # The spool may hold rows not yet in the store (an earlier process's, or ours).
        self.spool_backlog = spool is not None and bool(spool.pending())
        self._last_error_log: dict[str, float] = {}  # per message: a drop is never muted
        self._locks: dict[str, asyncio.Lock] = {}
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    def _loop_lock(self, name: str) -> asyncio.Lock:
        """One lock per event loop: a lock is bound to the loop it first waited on."""
        loop = asyncio.get_running_loop()
        if self._lock_loop is not loop:
            self._locks, self._lock_loop = {}, loop
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
        return lock

    def _write_lock(self) -> asyncio.Lock:
        """One write at a time: ``replay_spool()`` runs in the caller's task, next to the
        worker, and a store on one connection (SQLite) cannot interleave transactions."""
        return self._loop_lock("write")

    def is_down(self) -> bool:
        return bool(self.down_for) and time.monotonic() < self.down_until

    async def replay_when_idle(self) -> None:
        if self.spool is None or self.down_for or time.monotonic() < self.replay_due:
            return
        self.replay_due = time.monotonic() + _REPLAY_CHECK_SECONDS
        await self.replay(max_files=10)  # a little at a time: new records come first

    async def deliver(self, batch: Sequence[QueueItem]) -> bool:
        """Write one batch, or spool it; False if it must wait in memory (the store is
        down and there is no spool, or the spool cannot take it either)."""
        records = [i for i in batch if isinstance(i, CallRecord)]
        outcomes = [i for i in batch if not isinstance(i, CallRecord)]
        bodies = await asyncio.to_thread(prepare, records, self.storage is not None)
        if self.is_down() and self.spool is not None:
            return await asyncio.to_thread(
                self._spill_prepared, records, bodies, None, outcomes, None
            )
        if outcomes and self.spool is not None and not self.spool_backlog:
            # Another process may have spooled rows this one never saw (a writer="process"
            # parent whose queue filled): one listing, for batches that carry outcomes.
            self.spool_backlog = bool(await asyncio.to_thread(self.spool.pending))
        # While the spool holds rows, an outcome's row may be among them, and an UPDATE now
        # would find nothing: spooled after them, outcomes are replayed after them.
        if (
            outcomes
            and self.spool_backlog
            and self.spool is not None
            and await asyncio.to_thread(
                self._spill_prepared, [], [], None, outcomes, None, "outcomes"
            )
        ):
            outcomes = []
        refs: list[str | None] | None = None
        missed: list[str] = []

        async def write(rows: Sequence[Row], outcomes: Sequence[OutcomeUpdate]) -> None:
            missed.extend(await self._write_with_retries(rows, outcomes))

        try:
            refs = await self._store_bodies(records, bodies)
            rows, unbuildable = await asyncio.to_thread(rows_of, records, refs)
            refused = await write_isolating(write, rows, outcomes)
        except Exception as exc:
            if not is_transient(exc):
                raise
            self.mark_down(exc)
            if self.spool is None:
                return False
            error = f"{type(exc).__name__}: {exc}"
            return await asyncio.to_thread(
                self._spill_prepared, records, bodies, refs, outcomes, error
            )
        self.mark_up()
        refused = unbuildable + refused
        self._count_written(len(records), refused)
        if refused and self.spool is not None:
            await asyncio.to_thread(keep_rejected, self.spool, refused, None, self.db, self.storage)
        elif refused:
            log_refused(self.db, refused)
        return True

    def _count_written(self, rows: int, refused: Sequence[Refused]) -> None:
        bad_rows = sum(row is not None for row, _ in refused)
        self.written += rows - bad_rows
        self.failed += bad_rows

    async def _write_with_retries(
        self, rows: Sequence[Row], outcomes: Sequence[OutcomeUpdate]
    ) -> list[str]:
        """Write, retrying an unavailable store; the ids of outcomes that matched no row
        (counted and logged here, for the worker's batches and the spool's alike)."""
        # A store already known to be down gets one try per probe, not a retry series.
        attempts = 1 if self.down_for else 1 + self.max_retries
        for attempt in range(attempts):
            try:
                async with self._write_lock():
                    missed = unmatched_ids(await self.db.write_batch(rows, outcomes))
                break
            except Exception as exc:
                if not is_transient(exc) or attempt == attempts - 1:
                    raise
                await asyncio.sleep(self.backoff(attempt))
        # Counted per write that succeeded, so outcomes replayed from the spool count too,
        # and a piece the store refused (write_isolating) does not.
        self.outcomes_written += len(outcomes) - len(missed)
        if missed:
            self.outcomes_unmatched += len(missed)
            warn_unmatched(self.db, missed)
        return missed

    async def _store_bodies(
        self, records: Sequence[CallRecord], bodies: Sequence[Body | None]
    ) -> list[str | None]:
        if self.storage is None or not any(b is not None for b in bodies):
            return [None] * len(records)
        present = [b for b in bodies if b is not None]
        attempts = 1 if self.down_for else 1 + self.max_retries
        for attempt in range(attempts):
            try:
                stored = await self.storage.put_many(present)
                break
            except Exception as exc:
                if is_transient(exc):
                    if attempt == attempts - 1:
                        raise
                    await asyncio.sleep(self.backoff(attempt))
                    continue
                # Refused outright (bad credentials, no bucket): the rows still go in.
                self.log_error(
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
        self.bodies_written += ok
        self.bodies_failed += len(present) - ok
        return refs

    def mark_down(self, exc: BaseException) -> None:
        self.down_for = min(max(self.down_for * 2, 1.0), _PROBE_CAP)
        self.down_until = time.monotonic() + self.down_for
        where = f"spooling to {self.spool.directory}" if self.spool else "keeping records in memory"
        self.log_error(
            "store unavailable (%s: %s): %s; next try in %.0f s",
            type(exc).__name__,
            exc,
            where,
            self.down_for,
        )

    def mark_up(self) -> None:
        if self.down_for:
            logger.warning("stores are back: writing again, replaying the spool")
            self.down_for = self.down_until = 0.0
            self.replay_due = 0.0

    async def replay(self, max_files: int | None) -> None:
        # One replay at a time (the worker's, flush()'s, replay_spool()'s): a file another
        # replay holds would be skipped, and flush() would return before it is written.
        async with self._loop_lock("replay"):
            await self._replay(max_files)

    async def replay_until(self, deadline: float | None, when: str = "") -> None:
        """Replay the whole spool, until ``deadline`` (monotonic) at the latest: the rest
        waits for the next replay. A failure is logged, not raised."""
        try:
            await asyncio.wait_for(self.replay(max_files=None), remaining(deadline))
        except asyncio.TimeoutError:
            pass
        except Exception as exc:
            logger.error("replaying the spool%s failed: %s: %s", when, type(exc).__name__, exc)

    async def _replay(self, max_files: int | None) -> None:
        assert self.spool is not None
        spills_before = self.spill_files
        tally = await replay_files(
            self.spool,
            self.db,
            self.storage,
            write=self._write_with_retries,
            max_files=max_files,
            in_thread=True,
            on_error=self._replay_failed,
            on_file=self._replayed,
        )
        if tally.more:
            self.replay_due = 0.0  # more waiting: come back on the next idle turn
            return
        if tally.stopped:
            return
        # Files spilled while this replay ran were not in its listing: still waiting.
        stuck = tally.held or tally.failed
        self.spool_backlog = bool(stuck) or self.spill_files != spills_before

    def _replay_failed(self, path: Path, exc: Exception) -> bool:
        """A spool file that could not be replayed: True ends the replay (a store is down)."""
        if is_transient(exc):
            self.mark_down(exc)
            return True
        # e.g. bodies spooled with no body store now: left for a person
        self.log_error("cannot replay %s: %s: %s", path, type(exc).__name__, exc)
        return False

    def _replayed(self, written: int, refused: int) -> None:
        self.mark_up()
        self.replayed += written
        self.failed += refused

    async def reopen(self) -> None:
        """In a forked child: new connections before the first write."""
        for store in (self.db, self.storage):
            reopen = getattr(store, "reopen", None)
            if store is not None and reopen is not None:
                await reopen()

    def spill_items(self, items: Sequence[QueueItem], reason: str) -> None:
        """Price and build what is held, then spool it (synchronous: any thread)."""
        records = [i for i in items if isinstance(i, CallRecord)]
        outcomes = [i for i in items if not isinstance(i, CallRecord)]
        if self.spool is None:
            self.drop(records, reason)
            return
        try:
            bodies = prepare(records, self.storage is not None)
        except Exception as exc:  # pricing is guarded per record; this is a last resort
            logger.exception("preparing records for the spool failed", exc_info=exc)
            self.drop(records, "internal_error")
            return
        self._spill_prepared(records, bodies, None, outcomes, None, reason, drop_on_failure=True)

    def _spill_prepared(
        self,
        records: Sequence[CallRecord],
        bodies: Sequence[Body | None],
        refs: Sequence[str | None] | None,
        outcomes: Sequence[OutcomeUpdate],
        error: str | None,
        reason: str = "unavailable",
        drop_on_failure: bool = False,
    ) -> bool:
        """Spool prepared records; False if the spool cannot take them. Then they are
        dropped (counted) if ``drop_on_failure``, else left to wait in memory."""
        assert self.spool is not None
        refs = refs or [None] * len(records)
        entries = []
        unbuildable: list[Refused] = []
        for record, body, ref in zip(records, bodies, refs, strict=True):
            row = row_or_refusal(record, ref, unbuildable)
            if row is not None:
                envelope = body[2] if body is not None and ref is None else None
                entries.append(SpoolEntry(row, envelope))
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
            if drop_on_failure:
                lost = len(entries) + len(unbuildable)
                self.dropped[exc.reason] += lost
                self.log_error("%s: %d records dropped", exc, lost)
            else:
                self.log_error("%s: the batch waits in memory", exc)
            return False
        if unbuildable:  # once the batch is spooled: a batch left waiting is built again
            self.failed += len(unbuildable)
            unstored = {
                r.request_id: body[2]
                for r, body, ref in zip(records, bodies, refs, strict=True)
                if body is not None and ref is None
            }
            keep_rejected(self.spool, unbuildable, None, self.db, self.storage, unstored)
        self.spilled += len(entries)
        self.spill_files += 1
        self.spool_backlog = True
        if reason == "overflow":  # the stores are up: written back as soon as there is room
            self.replay_due = 0.0
        else:
            self.replay_due = min(self.replay_due, time.monotonic() + _REPLAY_CHECK_SECONDS)
        return True

    def drop(self, items: Sequence[QueueItem], reason: str) -> None:
        lost = 0
        for item in items:
            if isinstance(item, CallRecord):
                release(item)
                lost += 1
        if lost:
            self.dropped[reason] += lost
            self.log_error("%d records dropped (%s); see stats()", lost, reason)

    def log_error(self, message: str, *args: Any) -> None:
        # Rate-limited per message: "store unavailable" must not mute "records dropped".
        now = time.monotonic()
        if now - self._last_error_log.get(message, -_ERROR_LOG_INTERVAL) >= _ERROR_LOG_INTERVAL:
            self._last_error_log[message] = now
            logger.error(message, *args)


def warn_unmatched(db: MetadataStore, request_ids: Sequence[str]) -> None:
    """An outcome was recorded for an id the log does not hold: a caller's mistake (an id
    from elsewhere, a typo) or a call whose record was dropped or refused."""
    shown = list(dict.fromkeys(request_ids))
    more = f" and {len(shown) - _IDS_SHOWN} more" if len(shown) > _IDS_SHOWN else ""
    logger.warning(
        "record_outcome(): %d outcome(s) matched no logged call in %s (request id %s%s): "
        "not an id this log holds, or its record was dropped or refused",
        len(request_ids),
        db.url,
        ", ".join(shown[:_IDS_SHOWN]),
        more,
    )


def remaining(deadline: float | None) -> float | None:
    """Seconds left until a monotonic ``deadline``; None for no deadline."""
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _url(store: BodyStore | None) -> str | None:
    return None if store is None else store.url


def unmatched_ids(result: object) -> list[str]:
    """What ``write_batch`` returned, as the ids of outcomes that matched no row: a list
    or tuple of ids; anything else (None, a row count a store of someone else's returns)
    says nothing."""
    if isinstance(result, (list, tuple)):
        return [item for item in result if isinstance(item, str)]
    return []
