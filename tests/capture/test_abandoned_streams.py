"""A stream the caller stops reading early is logged as incomplete, its cost incomplete."""

from __future__ import annotations

from typing import Any

import majordomo_log as ml
from majordomo_log.testing import FakeProvider, fake_openai_client

MESSAGES: Any = [{"role": "user", "content": "hi"}]


async def test_abandoned_chat_stream_is_incomplete_with_cost_status_incomplete(
    provider: FakeProvider, stores: Any
) -> None:
    llm = ml.LoggingLLM(fake_openai_client(provider), stores.db, stores.storage)
    stream = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    async for _ in stream:
        break  # long before the usage chunk
    await stream.close()
    await llm.close()
    row = stores.one_row()
    assert row["status"] == "incomplete"
    assert row["cost_status"] == "incomplete"
