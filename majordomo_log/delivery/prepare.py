"""Getting a batch's records ready to write or spool, in a worker thread.

``prepare`` prices each record and builds its body envelope; ``rows_of`` builds the rows
once the bodies are stored, a record whose row cannot be built costing only itself (kept
as a salvaged row with the error, for the spool's rejected/). ``release`` lets go of a
record's response and bodies once it is written, spooled or dropped.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from .._log import logger
from .._loop_turns import LoopTurns
from ..record.call import CallRecord
from ..record.envelope import build_envelope
from ..record.redact import scrub_text
from ..record.rows import build_row, salvage_row
from ..record.values import safe_text
from ..schema import MAX_ERROR_CHARS, Body, Row
from ..telemetry.observer import end_unobserved, notify
from .isolate import Refused


def prepare(records: Sequence[CallRecord], with_bodies: bool) -> list[Body | None]:
    """Worker thread: price every record and build its body envelope."""
    bodies: list[Body | None] = []
    turns = LoopTurns()
    for record in records:
        turns.maybe_yield()
        read_request_id(record)
        record.priced()  # never raises: a failure is flagged pricing_failed
        body: Body | None = None
        if with_bodies and record.ctx.capture_bodies and not record.body_dropped:
            try:
                started = dt.datetime.fromtimestamp(record.started_at, dt.timezone.utc)
                body = (record.request_id, started, build_envelope(record))
            except Exception as exc:  # the row is kept, flagged
                record.body_flags = (*record.body_flags, "body_unserializable")
                logger.warning(
                    "body of %s not serializable: %s", record.request_id, type(exc).__name__
                )
        bodies.append(body)
        record.response = None  # everything needed from it is read: see release()
    return bodies


def read_request_id(record: CallRecord) -> None:
    # Read here, not on the caller's path: a missing private attribute on a pydantic
    # model costs microseconds.
    if record.provider_request_id is None and record.response is not None:
        try:
            request_id = getattr(record.response, "_request_id", None)
        except Exception:  # e.g. an attribute-style dict: __getattr__ raises KeyError
            request_id = None
        record.provider_request_id = request_id if type(request_id) is str else None


def release(record: CallRecord) -> None:
    """Let go of a record's response and bodies once it is written, spooled or dropped.
    Kept, the response would never be freed: call_info()'s map holds the record for as
    long as the response lives, and the record would hold the response."""
    read_request_id(record)
    record.read_response()
    if record.span is not None:  # never written (dropped): its span still ends
        end_unobserved(record)
    record.response = None
    record.request_json = None
    record.envelope = None


def rows_of(
    records: Sequence[CallRecord], refs: Sequence[str | None]
) -> tuple[list[Row], list[Refused]]:
    """(rows, refused): a record whose row cannot be built costs only itself, kept as
    a salvaged row with the error."""
    turns = LoopTurns()
    rows: list[Row] = []
    unbuildable: list[Refused] = []
    for record, ref in zip(records, refs, strict=True):
        turns.maybe_yield()
        row = row_or_refusal(record, ref, unbuildable)
        if row is not None:
            rows.append(row)
    return rows, unbuildable


def row_or_refusal(record: CallRecord, ref: str | None, refused: list[Refused]) -> Row | None:
    """The record's row; None when it cannot be built, its salvaged row and the error
    then added to ``refused``."""
    try:
        row = build_row(record, ref)
    except Exception as exc:
        refused.append((salvage_row(record, ref), _build_error(record, exc)))
        return None
    if record.span is not None or record.ctx.observers:
        notify(record, row)  # metrics and the span's end: once, never raises
    return row


def _build_error(record: CallRecord, exc: Exception) -> str:
    logger.error(
        "building the row of %s failed (%s); kept in the spool's rejected/",
        record.request_id,
        type(exc).__name__,
    )
    error = f"cannot build the row: {type(exc).__name__}: {safe_text(exc)}"
    # Scrubbed whole, then cut: a key cut in half would pass both kinds of scrubbing.
    return scrub_text(error, record.ctx.secrets)[:MAX_ERROR_CHARS]
