"""LoggingLLM around the real anthropic SDK client, driven by the in-process FakeProvider."""

from __future__ import annotations

import gc
from decimal import Decimal
from typing import Any

import anthropic
import pytest
from anthropic.types import Message

import majordomo_log as ml
from majordomo_log.testing import FakeProvider, fake_anthropic_client

CLAUDE = "claude-haiku-4-5"
MESSAGES: Any = [{"role": "user", "content": "hi"}]
# 1000*1.00 + 2000*0.10 + 300*1.25 + 200*2.00 + 500*5.00 per 1M tokens
HAIKU_COST = Decimal("0.004475")


def new_llm(provider: FakeProvider, stores: Any, **kwargs: Any) -> ml.LoggingLLM[Any]:
    client_kwargs = {k: kwargs.pop(k) for k in ("api_key", "max_retries") if k in kwargs}
    client = fake_anthropic_client(provider, **client_kwargs)
    return ml.LoggingLLM(client, stores.db, stores.storage, **kwargs)


def assert_haiku_row(row: dict[str, Any], *, stream: int) -> None:
    assert row["provider"] == "anthropic"
    assert row["operation"] == "messages"
    assert row["model"] == CLAUDE
    assert row["served_model"] == CLAUDE
    assert row["status"] == "ok"
    assert row["stream"] == stream
    assert row["input_tokens"] == 1000
    assert row["cache_read_tokens"] == 2000
    assert row["cache_write_5m_tokens"] == 300
    assert row["cache_write_1h_tokens"] == 200
    assert row["output_tokens"] == 500
    assert row["reasoning_tokens"] == 0
    assert row["total_tokens"] == 4000
    assert row["cost_status"] == "computed"
    assert Decimal(str(row["total_cost"])) == HAIKU_COST
    assert row["price_version"] == "claude-haiku-4-5@2025-10-01"


async def test_messages_create(provider: FakeProvider, stores: Any) -> None:
    llm = new_llm(provider, stores)
    msg = await llm.messages.create(model=CLAUDE, max_tokens=100, messages=MESSAGES)
    assert isinstance(msg, Message)
    assert msg.content[0].text == provider.reply_text
    info = ml.call_info(msg)
    assert info.total_cost == HAIKU_COST
    assert info.total_tokens == 4000
    await llm.flush()
    row = stores.one_row()
    assert_haiku_row(row, stream=0)
    assert row["request_id"] == info.request_id
    assert row["provider_request_id"] == msg._request_id
    assert row["provider_request_id"].startswith("req_")
    assert Decimal(str(row["cache_write_cost"])) == Decimal("0.000775")  # 300*1.25 + 200*2
    body = await stores.body(row)
    assert body["request"] == {"model": CLAUDE, "max_tokens": 100, "messages": MESSAGES}
    assert body["response"]["id"] == msg.id
    assert body["response"]["content"][0]["text"] == provider.reply_text
    await llm.close()


async def test_messages_create_stream_true(provider: FakeProvider, stores: Any) -> None:
    provider.first_chunk_delay = 0.05
    provider.chunk_delay = 0.02
    raw = await fake_anthropic_client(provider).messages.create(
        model=CLAUDE, max_tokens=100, messages=MESSAGES, stream=True
    )
    expected = [event.type async for event in raw]

    llm = new_llm(provider, stores)
    stream = await llm.messages.create(model=CLAUDE, max_tokens=100, messages=MESSAGES, stream=True)
    events = [event async for event in stream]
    assert [e.type for e in events] == expected
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert text == provider.reply_text
    info = ml.call_info(stream)
    await llm.flush()
    row = stores.one_row()
    # message_start (input + cache counts, output 1) and the cumulative message_delta
    # must be merged, not added.
    assert_haiku_row(row, stream=1)
    assert info.total_cost == HAIKU_COST
    assert row["time_to_first_token_ms"] is not None
    assert row["time_to_first_token_ms"] < row["latency_ms"]
    body = await stores.body(row)
    assert body["request"]["stream"] is True
    assert body["response"]["content"] == [{"type": "text", "text": provider.reply_text}]
    assert body["response"]["stop_reason"] == "end_turn"
    await llm.close()


async def test_messages_create_stream_provider_request_id(
    provider: FakeProvider, stores: Any
) -> None:
    llm = new_llm(provider, stores)
    stream = await llm.messages.create(model=CLAUDE, max_tokens=100, messages=MESSAGES, stream=True)
    header_id = stream.response.headers["request-id"]
    async for _ in stream:
        pass
    await llm.flush()
    assert stores.one_row()["provider_request_id"] == header_id
    await llm.close()


async def test_messages_stream_async_for(provider: FakeProvider, stores: Any) -> None:
    llm = new_llm(provider, stores)
    async with llm.messages.stream(model=CLAUDE, max_tokens=100, messages=MESSAGES) as s:
        kinds = [event.type async for event in s]
    assert kinds[0] == "message_start"
    assert "message_stop" in kinds
    await llm.flush()
    row = stores.one_row()
    assert_haiku_row(row, stream=1)
    assert row["provider_request_id"].startswith("req_")
    body = await stores.body(row)
    assert body["request"] == {"model": CLAUDE, "max_tokens": 100, "messages": MESSAGES}
    assert body["response"]["content"][0]["text"] == provider.reply_text
    await llm.close()


async def test_messages_stream_text_stream(provider: FakeProvider, stores: Any) -> None:
    llm = new_llm(provider, stores)
    async with llm.messages.stream(model=CLAUDE, max_tokens=100, messages=MESSAGES) as s:
        text = "".join([piece async for piece in s.text_stream])
    assert text == provider.reply_text
    await llm.flush()
    assert_haiku_row(stores.one_row(), stream=1)
    await llm.close()


async def test_messages_stream_get_final_message(provider: FakeProvider, stores: Any) -> None:
    llm = new_llm(provider, stores)
    async with llm.messages.stream(model=CLAUDE, max_tokens=100, messages=MESSAGES) as s:
        final = await s.get_final_message()
    assert isinstance(final, Message)
    assert final.usage.output_tokens == 500
    await llm.flush()
    row = stores.one_row()
    assert_haiku_row(row, stream=1)
    body = await stores.body(row)
    assert body["response"]["id"] == final.id
    assert body["response"]["usage"]["cache_read_input_tokens"] == 2000
    await llm.close()


async def test_messages_stream_ttft(provider: FakeProvider, stores: Any) -> None:
    """message_start and ping come before any token; the first text delta comes
    after first_chunk_delay."""
    provider.first_chunk_delay = 0.15
    provider.chunk_delay = 0.03
    llm = new_llm(provider, stores)
    async with llm.messages.stream(model=CLAUDE, max_tokens=100, messages=MESSAGES) as s:
        await s.get_final_message()
    await llm.flush()
    row = stores.one_row()
    assert row["time_to_first_token_ms"] is not None
    assert row["time_to_first_token_ms"] < row["latency_ms"]
    assert row["time_to_first_token_ms"] >= 150 - 5
    await llm.close()


async def test_messages_stream_early_exit_is_incomplete(
    provider: FakeProvider, stores: Any
) -> None:
    llm = new_llm(provider, stores)
    async with llm.messages.stream(model=CLAUDE, max_tokens=100, messages=MESSAGES) as s:
        async for event in s:
            if event.type == "content_block_delta":
                break
    await llm.flush()
    row = stores.one_row()
    assert row["status"] == "incomplete"
    assert row["stream"] == 1
    # usage seen so far: message_start's input and cache counts
    assert row["input_tokens"] == 1000
    assert row["cache_read_tokens"] == 2000
    assert row["output_tokens"] == 1
    assert row["cost_status"] == "incomplete"
    del s
    gc.collect()
    await llm.flush()
    assert len(stores.rows()) == 1
    await llm.close()


async def test_raw_stream_early_break_gc(provider: FakeProvider, stores: Any) -> None:
    llm = new_llm(provider, stores)
    stream = await llm.messages.create(model=CLAUDE, max_tokens=100, messages=MESSAGES, stream=True)
    async for event in stream:
        if event.type == "content_block_delta":
            break
    del stream
    gc.collect()
    await llm.flush()
    row = stores.one_row()
    assert row["status"] == "incomplete"
    assert row["input_tokens"] == 1000
    assert row["output_tokens"] == 1
    await llm.close()


async def test_anthropic_error(provider: FakeProvider, stores: Any) -> None:
    llm = new_llm(provider, stores)
    provider.fail_next(status=429)
    with pytest.raises(anthropic.RateLimitError) as excinfo:
        await llm.messages.create(model=CLAUDE, max_tokens=100, messages=MESSAGES)
    assert type(excinfo.value) is anthropic.RateLimitError
    provider.fail_next(status=529)
    with pytest.raises(anthropic.APIStatusError) as excinfo2:
        async with llm.messages.stream(model=CLAUDE, max_tokens=100, messages=MESSAGES) as s:
            await s.get_final_message()
    await llm.flush()
    rows = stores.rows()
    assert len(rows) == 2
    first, second = rows
    assert (first["status"], first["error_type"], first["stream"]) == (
        "error",
        "RateLimitError",
        0,
    )
    assert first["total_cost"] is None and first["cost_status"] == "error"
    assert first["provider_request_id"] == excinfo.value.request_id
    assert (second["status"], second["error_type"], second["stream"]) == (
        "error",
        type(excinfo2.value).__name__,
        1,
    )
    assert second["total_cost"] is None
    await llm.close()


async def test_anthropic_api_key_not_stored(provider: FakeProvider, stores: Any) -> None:
    key = "sk-ant-api03-VERYSECRET-xyz"
    llm = new_llm(provider, stores, api_key=key)
    await llm.messages.create(
        model=CLAUDE,
        max_tokens=100,
        messages=MESSAGES,
        extra_headers={"x-api-key": key},
    )
    async with llm.messages.stream(model=CLAUDE, max_tokens=100, messages=MESSAGES) as s:
        await s.get_final_message()
    await llm.flush()
    rows = stores.rows()
    assert len(rows) == 2
    for row in rows:
        assert all(key not in str(v) for v in row.values())
        assert len(row["api_key_hash"]) == 64
    for raw, unzipped in stores.raw_body_bytes():
        assert key.encode() not in raw and key.encode() not in unzipped
    body = await stores.body(rows[0])
    assert body["request"]["extra_headers"] == {"x-api-key": "[REDACTED]"}
    await llm.close()


async def test_messages_stream_entered_and_left_unread(provider: FakeProvider, stores: Any) -> None:
    llm = new_llm(provider, stores)
    async with llm.messages.stream(model=CLAUDE, max_tokens=100, messages=MESSAGES):
        pass  # the caller changed its mind: leaving must not raise
    await llm.flush()
    row = stores.one_row()
    assert row["status"] == "incomplete"
    assert row["stream"] == 1
    await llm.close()


async def test_messages_stream_caller_exception_propagates_unchanged(
    provider: FakeProvider, stores: Any
) -> None:
    llm = new_llm(provider, stores)
    with pytest.raises(ZeroDivisionError):
        async with llm.messages.stream(model=CLAUDE, max_tokens=100, messages=MESSAGES):
            1 / 0  # noqa: B018 - the caller's own bug, raised before reading anything
    await llm.flush()
    assert stores.one_row()["status"] == "incomplete"
    await llm.close()
