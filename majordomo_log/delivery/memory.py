"""What a queued item holds in memory, and letting go of a record's body.

The writer's queue is held to a budget of body bytes (``QueueOptions.max_bytes``):
``held_bytes`` is what an item counts against it, and ``drop_body`` is how
``on_full="drop_bodies_first"`` makes room while keeping the row.
"""

from __future__ import annotations

from ..record.call import CallRecord
from .delivery import QueueItem
from .prepare import read_request_id

_CHUNK_BYTES = 512  # a stream chunk object, roughly
# An SDK response object: 9 KB for a short chat completion from the openai SDK
# (tracemalloc), more than its JSON (1 KB).
_RESPONSE_BYTES = 8 * 1024


def held_bytes(item: QueueItem) -> int:
    """Memory a queued item holds for its body, roughly: the request snapshot, plus an
    estimate for the response object or stream chunks it keeps alive until written
    (the records budget covers the record itself)."""
    if isinstance(item, CallRecord):
        size = len(item.request_json or b"")
        if item.response is not None:
            size += _RESPONSE_BYTES
        if item.stream_chunks is not None:
            size += _CHUNK_BYTES * len(item.stream_chunks)
        return size
    return 0


def drop_body(record: CallRecord) -> bool:
    """Free a record's body (request snapshot, response object); True if there was one.
    The response is read first for what the row needs from it."""
    if record.request_json is None and record.response is None:
        return False
    read_request_id(record)
    record.read_response()
    if record.stream_chunks is None:
        record.priced()  # usage is read from the response: price it while we have it
        record.response = None
    record.request_json = None
    record.body_dropped = True
    return True
