"""Writing rows so that one bad row costs only itself, and replaying the spool.

Both the background writer and ``majordomo-log spool replay`` go through
``write_isolating``: when a store refuses a batch (it answered, so retrying the
same rows cannot help), the batch is halved until the refused rows are found;
they are returned with the store's error, to be kept in the spool's rejected/
folder for a person to inspect. An unavailable store raises, and the caller
decides whether to retry, wait or spool.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from .._exceptions import ConfigError, SpoolCorrupt, StoreError, StoreUnavailable
from .._log import logger
from ..schema import OutcomeUpdate, Row
from ..stores.base import BodyStore, MetadataStore
from .spool import Spool, SpoolBatch, SpoolEntry

WriteBatch = Callable[[Sequence[Row], Sequence[OutcomeUpdate]], Awaitable[None]]
Refused = tuple[Row | None, str]  # (row, or None for outcome updates; the store's error)


def is_transient(exc: BaseException) -> bool:
    """Worth retrying the same batch: the store could not be reached or was busy."""
    if isinstance(exc, StoreUnavailable):
        return True
    if isinstance(exc, StoreError):
        return False  # the store answered and refused: retrying the same rows cannot help
    return isinstance(exc, (OSError, TimeoutError, asyncio.TimeoutError))


async def write_isolating(
    write: WriteBatch, rows: Sequence[Row], outcomes: Sequence[OutcomeUpdate]
) -> list[Refused]:
    """Write rows and outcomes; return what the store refused. Raises on an unavailable
    store (``is_transient``), leaving it to the caller to retry or spool."""
    try:
        await write(rows, outcomes)
        return []
    except Exception as exc:
        if is_transient(exc):
            raise
        error = f"{type(exc).__name__}: {exc}"
    if len(rows) > 1:
        middle = len(rows) // 2
        refused = await write_isolating(write, rows[:middle], outcomes)
        return refused + await write_isolating(write, rows[middle:], ())
    refused_rows: list[Refused] = [(row, error) for row in rows]
    if rows and outcomes:  # the row was the problem, perhaps not the outcome updates
        return refused_rows + await write_isolating(write, (), outcomes)
    if not rows:
        refused_rows = [(None, error)] * len(outcomes)
    return refused_rows


@dataclass(frozen=True, slots=True)
class ReplayResult:
    files: int  # batch files replayed and removed
    records: int  # rows written (or already present)
    rejected: int  # rows the store refused, moved to rejected/
    skipped: int  # files left alone: another process holds them, or other stores' files
    corrupt: int  # unreadable files moved to rejected/


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


def keep_rejected(
    spool: Spool,
    refused: Sequence[Refused],
    batch: SpoolBatch | None,
    db: MetadataStore,
    storage: BodyStore | None,
    bodies: Mapping[str, bytes | None] | None = None,
) -> None:
    """Keep refused rows in rejected/ with the store's error, for a person to look at,
    with the bodies not stored yet (from ``batch``, or ``bodies`` by request id)."""
    if not refused:
        return
    if bodies is None:
        bodies = {e.request_id: e.body for e in batch.entries} if batch is not None else {}
    entries = [
        SpoolEntry(row, bodies.get(row.request_id), row.body_ref, error)
        for row, error in refused
        if row is not None
    ]
    for row, error in refused:
        logger.error(
            "metadata store %s refused %s: %s",
            db.url,
            "outcome updates" if row is None else f"row {row.request_id}",
            error,
        )
    try:
        spool.append(
            entries,
            batch.outcomes if batch is not None and any(r is None for r, _ in refused) else (),
            reason="rejected",
            db=db.url,
            storage=storage.url if storage else None,
            error=refused[0][1],
            rejected=True,
        )
    except Exception as exc:
        logger.error("could not keep %d refused rows in the spool: %s", len(entries), exc)


async def replay_spool(
    spool: Spool,
    db: MetadataStore,
    storage: BodyStore | None = None,
    *,
    any_store: bool = False,
    max_files: int | None = None,
) -> ReplayResult:
    """Replay waiting batch files oldest first into ``db`` and ``storage``, removing each
    once written. A re-written row is a no-op (its request_id exists), so replaying a file
    twice is harmless. Files spooled for other stores are skipped unless ``any_store``.
    Raises ``StoreUnavailable`` (the file stays) when a store is down."""
    files = records = rejected = skipped = corrupt = 0
    for path in spool.pending():
        if max_files is not None and files >= max_files:
            break
        with spool.claim(path) as mine:
            if not mine:
                skipped += 1
                continue
            try:
                batch = spool.read(path)
            except FileNotFoundError:
                skipped += 1
                continue
            except SpoolCorrupt as exc:
                logger.error("%s; moved to %s", exc, spool.quarantine(path))
                corrupt += 1
                continue
            if not any_store and not batch_matches(batch, db, storage):
                skipped += 1
                continue
            written, refused = await replay_batch(batch, db, storage, spool)
            spool.remove(path)
        files += 1
        records += written
        rejected += refused
    return ReplayResult(files, records, rejected, skipped, corrupt)
