"""Replaying the spool: its batch files, oldest first, back into the stores.

``replay_files`` is the one pass over the spool's files, used both by the background
writer (``delivery/delivery.py``, which reads in worker threads and stops when a store
is down) and by ``replay_spool`` (``majordomo-log spool replay``, ``ml.replay_spool``,
which raises instead). Each file is claimed, read, replayed and removed; an unreadable
file is quarantined, and one spooled for other stores is left alone. Rows go in
through ``write_isolating`` (``delivery/isolate.py``): a refused row costs only itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .._exceptions import ConfigError, SpoolCorrupt
from .._log import logger
from ..stores.base import BodyStore, MetadataStore
from .isolate import WriteBatch, keep_rejected, write_isolating
from .spool import Spool, SpoolBatch

Progress = Callable[[int, "int | None"], None]  # (records done, records waiting)


@dataclass(frozen=True, slots=True)
class ReplayResult:
    files: int  # batch files replayed and removed
    records: int  # rows written (or already present)
    rejected: int  # rows the store refused, moved to rejected/
    skipped: int  # files left alone: another process holds them, or other stores' files
    corrupt: int  # unreadable files moved to rejected/


@dataclass(slots=True)
class ReplayPass:
    """What one pass over the spool did, file by file."""

    files: int = 0  # replayed and removed
    records: int = 0  # rows written (or already present)
    rejected: int = 0  # rows the store refused, moved to rejected/
    held: int = 0  # claimed by another process: not known to be written yet
    vanished: int = 0  # gone before they could be read (replayed by another process)
    foreign: int = 0  # spooled for another pair of stores sharing the directory
    corrupt: int = 0  # unreadable, moved to rejected/
    failed: int = 0  # left in place after an error ``on_error`` chose to pass over
    stopped: bool = False  # ``on_error`` ended the pass
    more: bool = False  # ended at ``max_files`` with more files waiting


def batch_matches(batch: SpoolBatch, db: MetadataStore, storage: BodyStore | None) -> bool:
    return batch.db == db.url and batch.storage == (storage.url if storage else None)


async def replay_batch(
    batch: SpoolBatch,
    db: MetadataStore,
    storage: BodyStore | None,
    spool: Spool,
    write: WriteBatch | None = None,
) -> tuple[int, int]:
    """Store a batch's bodies and rows; (rows written, rows rejected). Raises when a store
    is unavailable, leaving the file in place."""
    entries = batch.entries
    unstored = [e for e in entries if e.body is not None]
    refs: dict[str, str | None] = {}
    if unstored:
        if storage is None:
            raise ConfigError(
                f"{batch.path.name} holds {len(unstored)} bodies: give the body store to replay it"
            )
        stored = await storage.put_many(
            [(e.request_id, e.row.started_at, e.body) for e in unstored if e.body is not None]
        )
        refs = {e.request_id: ref for e, ref in zip(unstored, stored, strict=True)}
    rows = []
    for entry in entries:
        ref = refs.get(entry.request_id, entry.body_ref)
        row = entry.row
        if ref is not None and row.body_ref != ref:
            row = row._replace(body_ref=ref)
        rows.append(row)
    refused = await write_isolating(write or db.write_batch, rows, batch.outcomes)
    keep_rejected(spool, refused, batch, db, storage)
    return len(rows) - sum(r is not None for r, _ in refused), len(refused)


async def replay_files(
    spool: Spool,
    db: MetadataStore,
    storage: BodyStore | None,
    *,
    write: WriteBatch | None = None,
    any_store: bool = False,
    max_files: int | None = None,
    in_thread: bool = False,
    on_error: Callable[[Path, Exception], bool] | None = None,
    on_file: Callable[[int, int], None] | None = None,
    progress: Progress | None = None,
) -> ReplayPass:
    """One pass over the waiting files, oldest first, each removed once written.

    ``in_thread``: list and read files in worker threads (a running writer's loop must
    not wait on the disk). ``on_error(path, exc)`` decides what a failed file does: True
    ends the pass, False leaves the file and goes on; without it the error propagates.
    ``on_file(written, refused)`` follows each replayed file. ``progress(done, total)``
    follows each file the pass is through with, whatever became of it, counting records
    (the files are counted first, so only when it is given)."""
    tally = ReplayPass()
    paths = await asyncio.to_thread(spool.pending) if in_thread else spool.pending()
    counts = {path: spool.records_in(path) for path in paths} if progress is not None else {}
    total, done = sum(counts.values()), 0
    if progress is not None:
        progress(0, total)
    for path in paths:
        if max_files is not None and tally.files >= max_files:
            tally.more = True
            break
        # try/finally: every way out of a file (continue, break) moves the bar past it.
        try:
            with spool.claim(path) as mine:
                if not mine:
                    tally.held += 1
                    continue
                try:
                    batch = (
                        await asyncio.to_thread(spool.read, path) if in_thread else spool.read(path)
                    )
                except FileNotFoundError:
                    tally.vanished += 1
                    continue
                except SpoolCorrupt as exc:
                    logger.error("%s; moved to %s", exc, spool.quarantine(path))
                    tally.corrupt += 1
                    continue
                if not any_store and not batch_matches(batch, db, storage):
                    tally.foreign += 1
                    continue
                try:
                    written, refused = await replay_batch(batch, db, storage, spool, write)
                except Exception as exc:
                    if on_error is None:
                        raise
                    if on_error(path, exc):
                        tally.stopped = True
                        break
                    tally.failed += 1
                    continue
                spool.remove(path)
            tally.files += 1
            tally.records += written
            tally.rejected += refused
            if on_file is not None:
                on_file(written, refused)
        finally:
            if progress is not None:
                done += counts[path]
                progress(done, total)
    return tally


async def replay_spool(
    spool: Spool,
    db: MetadataStore,
    storage: BodyStore | None = None,
    *,
    any_store: bool = False,
    max_files: int | None = None,
    progress: Progress | None = None,
) -> ReplayResult:
    """Replay waiting batch files oldest first into ``db`` and ``storage``, removing each
    once written. A re-written row is a no-op (its request_id exists), so replaying a file
    twice is harmless. Files spooled for other stores are skipped unless ``any_store``.
    Raises ``StoreUnavailable`` (the file stays) when a store is down.
    ``progress(records done, records waiting)`` follows each file."""
    tally = await replay_files(
        spool, db, storage, any_store=any_store, max_files=max_files, progress=progress
    )
    skipped = tally.held + tally.vanished + tally.foreign
    return ReplayResult(tally.files, tally.records, tally.rejected, skipped, tally.corrupt)
