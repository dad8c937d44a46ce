"""The SDKs' stream helpers (chat.completions.stream, responses.stream, messages.stream):
the same events as unwrapped, one priced row, and call_info on the helper objects."""

from __future__ import annotations

from typing import Any

import majordomo_log as ml
from majordomo_log.testing import FakeProvider, fake_anthropic_client, fake_openai_client

MESSAGES: Any = [{"role": "user", "content": "hi"}]


async def test_chat_stream_helper_yields_same_events_as_unwrapped_and_is_priced(
    provider: FakeProvider, stores: Any
) -> None:
    async with fake_openai_client(provider).chat.completions.stream(
        model="gpt-4o", messages=MESSAGES
    ) as plain:
        plain_types = [event.type async for event in plain]
    llm = ml.LoggingLLM(fake_openai_client(provider), stores.db, stores.storage)
    async with llm.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
        wrapped_types = [event.type async for event in stream]

    assert wrapped_types == plain_types
    info = ml.call_info(stream)
    await llm.flush()
    row = stores.one_row()
    assert info.request_id == row["request_id"]
    assert row["total_tokens"] == 1300
    assert row["cost_status"] == "computed"
    await llm.close()


async def test_call_info_on_responses_and_anthropic_stream_helpers(
    provider: FakeProvider, stores: Any
) -> None:
    oa = ml.LoggingLLM(fake_openai_client(provider), stores.db, stores.storage)
    async with oa.responses.stream(model="gpt-4o", input="hi") as responses_stream:
        await responses_stream.get_final_response()
    an = ml.LoggingLLM(fake_anthropic_client(provider), stores.db, stores.storage)
    async with an.messages.stream(
        model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES
    ) as messages_stream:
        message = await messages_stream.get_final_message()

    assert ml.call_info(responses_stream).operation == "responses"
    assert ml.call_info(messages_stream).operation == "messages"
    assert ml.call_info(message).request_id == ml.call_info(messages_stream).request_id
    await oa.close()
    await an.close()
    ids = {row["request_id"] for row in stores.rows()}
    assert ids == {ml.call_info(responses_stream).request_id, ml.call_info(message).request_id}
