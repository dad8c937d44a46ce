"""Results of a Batch API job, read as calls to log (``LoggingLLM.log_batch_results``).

A batch's results are never the return value of a wrapped ``create()``: they come back
hours later, from an output file (OpenAI) or a results stream (Anthropic). So they are
logged when the application has them, one row per result, priced at the batch tier:

* OpenAI: the lines of the batch's output file, as text (the whole file, or one line each)
  or parsed: ``{"custom_id", "response": {"status_code", "request_id", "body"}, "error"}``.
  The body is the response a synchronous call would have returned (a chat completion, a
  response, embeddings), and its own ``service_tier`` says ``default``: the batch tier is
  the one the caller declares (``service_tier="batch"``, the default).
* Anthropic: the items of ``client.messages.batches.results(batch_id)``, SDK objects or
  dicts: ``{"custom_id", "result": {"type": "succeeded", "message": {...}}}``. Their usage
  says ``service_tier: batch`` by itself.

A result that failed (an OpenAI error line or non-200 status; an Anthropic ``errored``,
``canceled`` or ``expired`` result) is logged as an error row, which costs nothing, as the
provider bills nothing for it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from ..record.call import CallRecord
from ..record.usage import field_of

# What a body's "object" says it is -> the operation a synchronous call would log.
_OPERATIONS = {"chat.completion": "chat.completions", "response": "responses", "list": "embeddings"}
_EARLIEST = 1_577_836_800.0  # 2020-01-01: a "created" before this is no batch's time


@dataclass(frozen=True, slots=True)
class BatchResult:
    """One result of a batch, as the values of the record it becomes."""

    operation: str
    model: str | None
    created: float | None  # when the provider made the response (POSIX), if it says
    response: Any
    usage: Any
    custom_id: str | None
    provider_request_id: str | None = None
    error_type: str | None = None  # set: the result failed (an error row)
    error_message: str | None = None


def batch_results(results: Any) -> Iterator[BatchResult]:
    """Each result of ``results``: an output file's text (str or bytes, one JSON line per
    result), or an iterable of lines, dicts or SDK objects."""
    items: Iterable[Any]
    if isinstance(results, (str, bytes, bytearray, memoryview)):
        items = (
            bytes(results).splitlines() if not isinstance(results, str) else results.splitlines()
        )
    else:
        items = results
    for item in items:
        if isinstance(item, (str, bytes, bytearray, memoryview)):
            text = bytes(item) if not isinstance(item, str) else item
            if not text.strip():
                continue
            item = orjson.loads(text)
        yield read_batch_result(item)


def read_batch_result(item: Any) -> BatchResult:
    """One OpenAI output line or Anthropic batch result (see the module docstring)."""
    custom_id = _text(field_of(item, "custom_id"))
    result = field_of(item, "result")
    if result is not None:  # Anthropic
        return _anthropic(result, custom_id)
    return _openai(item, custom_id)


def _openai(item: Any, custom_id: str | None) -> BatchResult:
    response = field_of(item, "response")
    body = field_of(response, "body")
    error = field_of(item, "error") or field_of(body, "error")
    status = field_of(response, "status_code")
    operation = _OPERATIONS.get(_text(field_of(body, "object")) or "", "batch")
    request_id = _text(field_of(response, "request_id"))
    if error is not None or (status is not None and status != 200) or body is None:
        return BatchResult(
            operation,
            _text(field_of(body, "model")),
            None,
            body,
            None,
            custom_id,
            request_id,
            error_type=_text(field_of(error, "code")) or f"batch.http_{status}",
            error_message=_text(field_of(error, "message")),
        )
    created = field_of(body, "created")
    if created is None:
        created = field_of(body, "created_at")  # Responses API
    return BatchResult(
        operation,
        _text(field_of(body, "model")),
        _time(created),
        body,
        field_of(body, "usage"),
        custom_id,
        request_id,
    )


def _anthropic(result: Any, custom_id: str | None) -> BatchResult:
    kind = _text(field_of(result, "type")) or "unknown"
    if kind == "succeeded":
        message = field_of(result, "message")
        return BatchResult(
            "messages",
            _text(field_of(message, "model")),
            None,  # a message has no time: logged now
            message,
            field_of(message, "usage"),
            custom_id,
        )
    error = field_of(field_of(result, "error"), "error")  # errored: {"type": "error", "error"}
    return BatchResult(
        "messages",
        None,
        None,
        None,
        None,
        custom_id,
        error_type=_text(field_of(error, "type")) or f"batch.{kind}",
        error_message=_text(field_of(error, "message")) or f"batch result {kind}",
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _time(value: Any) -> float | None:
    """A provider's POSIX time, when it is one (not in the future beyond a day's skew)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    seconds = float(value)
    if not math.isfinite(seconds) or not _EARLIEST <= seconds <= time.time() + 86_400:
        return None
    return seconds


class BatchLog:
    """``log_batch_results()``, a mixin of ``ClientWrapper`` (``capture/wrapper.py``): it
    makes and hands over records as a call does, through the wrapper's own methods,
    declared here."""

    _new_record: Callable[..., CallRecord]
    _submit: Callable[[CallRecord], None]

    def log_batch_results(self, results: Any, *, service_tier: str | None = "batch") -> list[str]:
        """Log the results of a Batch API job, one row per result, priced at the
        ``service_tier`` given (``"batch"``; None: the tier each result reports). Takes an
        OpenAI batch output file's text (or its lines, parsed or not) or the items of
        Anthropic's ``messages.batches.results()`` (see the module docstring). Each row has
        the result's ``custom_id`` as the tag ``batch_custom_id``, the tags of the
        enclosing ``ml.tags()`` block, the time the provider made the response (OpenAI; now
        for Anthropic) and no latency. Returns the request ids, in order. Log a batch once:
        each call makes new rows. A plain method, for sync and async clients alike: it
        only hands records to the writer."""
        request_ids = []
        for result in batch_results(results):
            # traced=False: a call logged after the fact gets no span
            record = self._new_record(result.operation, result.model, False, False)
            if result.created is not None:
                record.started_at = result.created
            record.t_end = record.t_start  # the provider's queue time is no call's latency
            record.served_model = result.model
            record.response = result.response
            record.usage = result.usage
            record.provider_request_id = result.provider_request_id
            record.tier_hint = service_tier
            if result.error_type is not None:
                record.status = "error"
                record.error_type, record.error_message = result.error_type, result.error_message
            if result.custom_id is not None:
                record.context_tags = {
                    **(record.context_tags or {}),
                    "batch_custom_id": result.custom_id,
                }
            self._submit(record)
            request_ids.append(record.request_id)
        return request_ids
