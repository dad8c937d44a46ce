"""An Azure client authenticated by an AD token (no API key) logs no api_key_hash."""

from __future__ import annotations

from typing import Any

import httpx2
import openai

import majordomo_log as ml
from majordomo_log.testing import AZURE_API_VERSION, AZURE_ENDPOINT, FakeProvider

MESSAGES: Any = [{"role": "user", "content": "hi"}]


async def test_azure_ad_token_client_has_no_api_key_hash(
    provider: FakeProvider, stores: Any
) -> None:
    client = openai.AsyncAzureOpenAI(
        azure_ad_token_provider=lambda: "ad-token-xyz",
        azure_endpoint=AZURE_ENDPOINT,
        api_version=AZURE_API_VERSION,
        http_client=httpx2.AsyncClient(transport=provider.transport),
        max_retries=0,
    )
    llm = ml.LoggingLLM(client, stores.db, stores.storage)
    await llm.chat.completions.create(model="my-deploy", messages=MESSAGES)
    await llm.close()
    row = stores.one_row()
    assert row["provider"] == "azure"
    assert row["status"] == "ok"
    assert row["api_key_hash"] is None
