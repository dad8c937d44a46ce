"""The wrapper looks the client's methods and attributes up at each access, so patches
and reassignments made after the first call are obeyed."""

from __future__ import annotations

from typing import Any
from unittest import mock

import majordomo_log as ml
from majordomo_log.testing import FakeProvider, fake_openai_client

MESSAGES: Any = [{"role": "user", "content": "hi"}]


async def test_patch_applied_after_first_call_is_obeyed(
    provider: FakeProvider, stores: Any
) -> None:
    client = fake_openai_client(provider)
    llm = ml.LoggingLLM(client, stores.db, stores.storage)
    await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    patched = mock.AsyncMock(return_value="PATCHED")
    with mock.patch.object(client.chat.completions, "create", new=patched):
        result = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert result == "PATCHED"
    patched.assert_awaited_once()
    assert len(provider.requests) == 1
    await llm.close()


class _Settings:
    def __init__(self, temp: float) -> None:
        self.temp = temp


class _GenericClient:
    provider = "myprov"

    def __init__(self) -> None:
        self.settings = _Settings(0.1)


async def test_generic_client_attribute_reassigned_after_access_is_seen(stores: Any) -> None:
    client = _GenericClient()
    llm = ml.LoggingLLM(client, stores.db, stores.storage)
    assert llm.settings.temp == 0.1
    client.settings = _Settings(0.9)
    assert llm.settings.temp == 0.9
    await llm.close()
