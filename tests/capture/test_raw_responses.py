"""with_raw_response and with_streaming_response: what is logged (a raw response) and what
is passed through unlogged (a raw stream, a streaming response)."""

from __future__ import annotations

from typing import Any

import majordomo_log as ml
from majordomo_log.testing import FakeProvider, fake_openai_client

MESSAGES: Any = [{"role": "user", "content": "hi"}]


async def test_raw_response_stream_is_passed_through_unlogged(
    provider: FakeProvider, stores: Any
) -> None:
    llm = ml.LoggingLLM(fake_openai_client(provider), stores.db, stores.storage)
    raw = await llm.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=MESSAGES, stream=True
    )
    chunks = [chunk async for chunk in raw.parse()]
    assert chunks
    assert all(chunk.choices for chunk in chunks)  # no injected usage-only chunk
    await llm.flush()
    assert stores.rows() == []
    await llm.close()


async def test_streaming_response_works_and_writes_no_row(
    provider: FakeProvider, stores: Any
) -> None:
    """A guard, not a regression: this passed before the fixes too."""
    llm = ml.LoggingLLM(fake_openai_client(provider), stores.db, stores.storage)
    async with llm.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=MESSAGES
    ) as response:
        completion = await response.parse()
    assert completion.choices[0].message.content == provider.reply_text
    await llm.flush()
    assert stores.rows() == []
    await llm.close()


async def test_raw_response_logged_and_call_info_on_raw_and_parsed(
    provider: FakeProvider, stores: Any
) -> None:
    llm = ml.LoggingLLM(fake_openai_client(provider), stores.db, stores.storage)
    raw = await llm.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    parsed = raw.parse()
    await llm.flush()
    row = stores.one_row()
    assert row["total_tokens"] == 1300
    assert ml.call_info(raw).request_id == row["request_id"]
    assert ml.call_info(parsed).request_id == row["request_id"]
    await llm.close()
