"""The counts a writer reports (``BatchWriter.stats()``, ``LoggingLLM.stats()``)."""

from __future__ import annotations

from dataclasses import dataclass, field


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
    # record_outcome() updates whose request id matched no row (each logged as a warning)
    outcomes_unmatched: int = 0
