"""Copies made by with_options() send and hash their own API key, and are closed with
the wrapper they came from."""

from __future__ import annotations

from typing import Any

import majordomo_log as ml
from majordomo_log.testing import FakeProvider, fake_openai_client

MESSAGES: Any = [{"role": "user", "content": "hi"}]


async def test_with_options_child_sends_and_hashes_its_own_key(
    provider: FakeProvider, stores: Any
) -> None:
    llm = ml.LoggingLLM(
        fake_openai_client(provider, api_key="sk-parent"), stores.db, stores.storage
    )
    await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    child = llm.with_options(api_key="sk-child")
    await child.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    assert provider.requests[-1].headers["authorization"] == "Bearer sk-child"
    await llm.close()  # the parent's close covers the child
    assert stores.db.closed
    rows = stores.rows()
    assert len(rows) == 2
    assert rows[0]["api_key_hash"] and rows[1]["api_key_hash"]
    assert rows[0]["api_key_hash"] != rows[1]["api_key_hash"]
