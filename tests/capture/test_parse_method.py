"""chat.completions.parse() is logged, priced and reported as chat.completions."""

from __future__ import annotations

from typing import Any

import openai
import pytest

import majordomo_log as ml
from majordomo_log.testing import FakeProvider, fake_openai_client

MESSAGES: Any = [{"role": "user", "content": "hi"}]


async def test_chat_completions_parse_is_logged_as_chat_completions(
    provider: FakeProvider, stores: Any
) -> None:
    llm = ml.LoggingLLM(fake_openai_client(provider), stores.db, stores.storage)
    provider.fail_next(500)
    with pytest.raises(openai.InternalServerError):
        await llm.chat.completions.parse(model="gpt-4o", messages=MESSAGES)
    await llm.chat.completions.parse(model="gpt-4o", messages=MESSAGES)
    await llm.close()
    rows = stores.rows()
    assert [(r["operation"], r["status"]) for r in rows] == [
        ("chat.completions", "error"),
        ("chat.completions", "ok"),
    ]
    assert rows[1]["cost_status"] == "computed"
