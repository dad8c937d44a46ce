"""An API key in a provider's error message is redacted from rows, bodies and reprs,
even after the client's key was rotated while the record was still queued."""

from __future__ import annotations

from typing import Any

import openai
import pytest

import majordomo_log as ml
from majordomo_log.testing import FakeProvider, fake_openai_client

MESSAGES: Any = [{"role": "user", "content": "hi"}]


async def test_rotated_key_in_error_message_is_redacted_everywhere(
    provider: FakeProvider, stores: Any
) -> None:
    first, second = "sk-SECRETKEY-1234567890", "sk-ROTATED-0987654321"
    client = fake_openai_client(provider, api_key=first)
    llm = ml.LoggingLLM(client, stores.db, stores.storage)
    provider.fail_next(401, message=f"Incorrect API key provided: {first}")
    with pytest.raises(openai.AuthenticationError):
        await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    client.api_key = second  # rotated while the first record is still queued
    provider.fail_next(401, message=f"Incorrect API key provided: {second}")
    with pytest.raises(openai.AuthenticationError):
        await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    for text in (repr(llm._ctx), repr(vars(llm))):
        assert first not in text and second not in text
    await llm.close()

    rows = stores.rows()
    assert len(rows) == 2
    assert all("[REDACTED]" in row["error_message"] for row in rows)
    stored = [p.read_bytes() for p in stores.db_path.parent.glob("log.db*")]
    stored += [unzipped for _, unzipped in stores.raw_body_bytes()]
    assert len(stores.body_files()) == 2
    for blob in stored:
        assert first.encode() not in blob and second.encode() not in blob
