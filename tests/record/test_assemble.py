"""A stream's chunks become one response, usage and model in the background; a chunk
that cannot be read costs what comes after it, never what was read before."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from majordomo_log.record.call import CallContext, CallRecord
from majordomo_log.record.pricing import default_prices


def _stream(operation: str, chunks: list[Any]) -> CallRecord:
    ctx = CallContext(default_prices(), None, {}, secrets=())
    record = CallRecord(
        "r1", time.time(), time.perf_counter(), "openai", operation, "gpt-4o", True, None, None, ctx
    )
    record.t_end = time.perf_counter()
    record.stream_chunks = chunks
    return record


def _usage_chunk() -> Any:
    usage = SimpleNamespace(prompt_tokens=10, completion_tokens=5, total_tokens=15)
    return SimpleNamespace(model="gpt-4o-2024-08-06", usage=usage, choices=[])


def test_a_readable_chat_stream_is_priced() -> None:
    usage, cost, status = _stream("chat.completions", [_usage_chunk()]).priced()
    assert usage is not None and (usage.input, usage.output) == (10, 5)
    assert cost is not None and status == "computed"


def test_a_bad_chunk_after_the_usage_keeps_the_tokens_and_the_model() -> None:
    broken = SimpleNamespace(model=None, usage=None, choices=[SimpleNamespace()])  # no .index
    record = _stream("chat.completions", [_usage_chunk(), broken])
    usage, cost, status = record.priced()
    assert usage is not None and (usage.input, usage.output) == (10, 5)
    assert "pricing_failed" in usage.flags
    assert cost is None and status == "invalid_usage"  # unknown, never $0
    assert record.served_model == "gpt-4o-2024-08-06"


class Unreadable:
    @property
    def message(self) -> str:
        raise RuntimeError("cannot read the error")


def test_a_failed_responses_stream_stays_an_error_when_its_message_cannot_be_read() -> None:
    final = SimpleNamespace(
        status="failed", usage=None, model="gpt-4o-2024-08-06", error=Unreadable()
    )
    record = _stream("responses", [SimpleNamespace(type="response.failed", response=final)])
    record.priced()
    assert (record.status, record.error_type) == ("error", "response.failed")
    assert record.served_model == "gpt-4o-2024-08-06"
