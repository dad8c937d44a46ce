"""Azure OpenAI (``openai.AsyncAzureOpenAI`` / ``AzureOpenAI``), real SDK against the in-process
FakeProvider on Azure's ``/openai/deployments/{name}/...`` paths.

On Azure the ``model`` a caller passes is a deployment name the customer chose
(``prod-chat``), while the reply names the model the deployment serves
(``gpt-4o-2024-08-06``): the row keeps both, and is priced by the served model, which the
price table knows, falling back to the deployment name only when the reply names none.
Prices per 1M tokens (Azure's global deployments cost OpenAI's list price; genai-prices
0.2.3's azure provider falls back to OpenAI's): gpt-4o 2.50 in / 1.25 cached / 10.00 out.
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest

import majordomo_log as ml
from majordomo_log.testing import FakeProvider, fake_openai_client, fake_sync_openai_client

MESSAGES: Any = [{"role": "user", "content": "hi"}]
DEPLOYMENT = "prod-chat"  # a name no price table knows
SERVED = "gpt-4o-2024-08-06"
# conftest's OPENAI_USAGE: 1000 prompt (400 cached), 300 completion (100 reasoning), so
# 600 * 2.50 + 400 * 1.25 + 200 * 10.00 + 100 * 10.00 = 1500 + 500 + 2000 + 1000
GPT_4O_COST = Decimal("5000") / 1_000_000


def assert_priced_by_served_model(row: dict[str, Any], *, model: str, stream: int) -> None:
    assert (row["provider"], row["model"], row["served_model"]) == ("azure", model, SERVED)
    assert (row["stream"], row["status"], row["cost_status"]) == (stream, "ok", "computed")
    assert (row["input_tokens"], row["cache_read_tokens"]) == (600, 400)
    assert (row["output_tokens"], row["reasoning_tokens"], row["total_tokens"]) == (200, 100, 1300)
    assert Decimal(str(row["total_cost"])) == GPT_4O_COST
    assert row["price_version"] == "gpt-4o@2024-08-06"


async def test_deployment_name_and_served_model(provider: FakeProvider, stores: Any) -> None:
    provider.served_model = SERVED
    client = fake_openai_client(provider, azure=True, azure_deployment=DEPLOYMENT)
    async with ml.LoggingLLM(client, stores.db, stores.storage) as llm:
        reply = await llm.chat.completions.create(model=DEPLOYMENT, messages=MESSAGES)
        assert reply.model == SERVED
        stream = await llm.chat.completions.create(model=DEPLOYMENT, messages=MESSAGES, stream=True)
        chunks = [chunk async for chunk in stream]
        assert all(chunk.choices for chunk in chunks)  # the usage-only chunk stays hidden
        await llm.flush()
        rows = sorted(stores.rows(), key=lambda r: int(r["stream"]))
    paths = {r.path for r in provider.requests}
    assert paths == {f"/openai/deployments/{DEPLOYMENT}/chat/completions"}
    assert provider.requests[1].body["stream_options"] == {"include_usage": True}
    for stream_flag, row in enumerate(rows):
        assert_priced_by_served_model(row, model=DEPLOYMENT, stream=stream_flag)
    assert rows[1]["time_to_first_token_ms"] is not None


async def test_the_served_model_wins_over_a_priced_deployment_name(
    provider: FakeProvider, stores: Any
) -> None:
    # A deployment named after one model that serves another is billed as what it serves.
    provider.served_model = SERVED
    client = fake_openai_client(provider, azure=True)
    async with ml.LoggingLLM(client, stores.db, stores.storage) as llm:
        await llm.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        await llm.flush()
        row = stores.one_row()
    assert provider.requests[-1].path == "/openai/deployments/gpt-4o-mini/chat/completions"
    assert_priced_by_served_model(row, model="gpt-4o-mini", stream=0)


async def test_an_unpriced_deployment_serving_an_unknown_model(
    provider: FakeProvider, stores: Any
) -> None:
    provider.served_model = "contoso-finetune-7"
    async with ml.LoggingLLM(fake_openai_client(provider, azure=True), stores.db) as llm:
        await llm.chat.completions.create(model=DEPLOYMENT, messages=MESSAGES)
        await llm.flush()
        row = stores.one_row()
    assert (row["model"], row["served_model"]) == (DEPLOYMENT, "contoso-finetune-7")
    assert (row["cost_status"], row["total_cost"], row["input_tokens"]) == (
        "unknown_model",
        None,
        600,
    )


async def test_an_azure_failure(provider: FakeProvider, stores: Any) -> None:
    provider.fail_next(429)
    async with ml.LoggingLLM(fake_openai_client(provider, azure=True), stores.db) as llm:
        with pytest.raises(openai.RateLimitError):
            await llm.chat.completions.create(model=DEPLOYMENT, messages=MESSAGES)
        await llm.flush()
        row = stores.one_row()
    assert (row["provider"], row["model"], row["status"]) == ("azure", DEPLOYMENT, "error")
    assert (row["error_type"], row["cost_status"], row["total_cost"]) == (
        "RateLimitError",
        "error",
        None,
    )


def test_azure_sync(provider: FakeProvider, tmp_path: Path) -> None:
    provider.served_model = SERVED
    db = tmp_path / "x.db"
    client = fake_sync_openai_client(provider, azure=True)
    assert isinstance(client, openai.AzureOpenAI)
    with ml.LoggingLLM(client, f"sqlite:///{db}", str(tmp_path / "bodies")) as llm:
        llm.chat.completions.create(model=DEPLOYMENT, messages=MESSAGES)
        text = "".join(
            c.choices[0].delta.content or ""
            for c in llm.chat.completions.create(model=DEPLOYMENT, messages=MESSAGES, stream=True)
        )
        assert text == provider.reply_text
        provider.fail_next(500)
        with pytest.raises(openai.InternalServerError):
            llm.chat.completions.create(model=DEPLOYMENT, messages=MESSAGES)
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    rows = [dict(r) for r in con.execute("SELECT * FROM llm_requests ORDER BY started_at")]
    con.close()
    ok = sorted((r for r in rows if r["status"] == "ok"), key=lambda r: int(r["stream"]))
    for stream_flag, row in enumerate(ok):
        assert_priced_by_served_model(row, model=DEPLOYMENT, stream=stream_flag)
    (failed,) = [r for r in rows if r["status"] == "error"]
    assert (failed["provider"], failed["error_type"]) == ("azure", "InternalServerError")
