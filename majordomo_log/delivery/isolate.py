"""Writing rows so that one bad row costs only itself, and keeping what was refused.

Both the background writer and the spool's replay go through ``write_isolating``:
when a store refuses a batch (it answered, so retrying the same rows cannot help),
the batch is halved until the refused rows are found; they are returned with the
store's error, and ``keep_rejected`` keeps them in the spool's rejected/ folder for a
person to inspect. An unavailable store raises, and the caller decides whether to
retry, wait or spool.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence

from .._exceptions import StoreError, StoreUnavailable
from .._log import logger
from ..schema import OutcomeUpdate, Row
from ..stores.base import BodyStore, MetadataStore
from .spool import Spool, SpoolBatch, SpoolEntry

# A store's write_batch, or a writer's around it; what it returns is not used here.
WriteBatch = Callable[[Sequence[Row], Sequence[OutcomeUpdate]], Awaitable[object]]
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
        # The outcomes go with the last half: an outcome's row may be in either, and an
        # UPDATE run before its row is inserted matches nothing.
        refused = await write_isolating(write, rows[:middle], ())
        return refused + await write_isolating(write, rows[middle:], outcomes)
    refused_rows: list[Refused] = [(row, error) for row in rows]
    if rows and outcomes:  # the row was the problem, perhaps not the outcome updates
        return refused_rows + await write_isolating(write, (), outcomes)
    if not rows:
        refused_rows = [(None, error)] * len(outcomes)
    return refused_rows


def log_refused(db: MetadataStore, refused: Sequence[Refused]) -> None:
    for row, error in refused:
        what = "outcome updates" if row is None else f"row {row.request_id}"
        logger.error("metadata store %s refused %s: %s", db.url, what, error)


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
    log_refused(db, refused)
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
