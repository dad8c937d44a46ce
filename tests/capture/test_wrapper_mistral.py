"""LoggingLLM around the real mistralai client, against Mistral-shaped HTTP served on a
local port (majordomo_log/testing/mistral.py): the async methods (``*_async``), then the
sync ones with no event loop in the test."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from mistralai.client import errors, models
from pydantic import BaseModel

import majordomo_log as ml
from majordomo_log.testing.mistral import MistralServer, fake_mistral_client

MESSAGES: Any = [{"role": "user", "content": "hi"}]
# OpenAI-shaped and inclusive: cached ⊂ prompt. Buckets: input 600, cache read 400, output 300.
MISTRAL_USAGE: Any = {"prompt_tokens": 1000, "cached_tokens": 400, "completion_tokens": 300}
# mistral-small-latest (Mistral Small 4), USD per 1M tokens (mistral.ai/pricing, genai-prices
# 0.2.3): input 0.15, cached input 0.015, output 0.60.
SMALL_COST = (600 * Decimal("0.15") + 400 * Decimal("0.015") + 300 * Decimal("0.60")) / 1_000_000
# codestral-2508: input 0.30, cached input 0.03, output 0.90.
CODESTRAL_COST = (600 * Decimal("0.30") + 400 * Decimal("0.03") + 300 * Decimal("0.90")) / 10**6
# mistral-embed: input 0.10.
EMBED_COST = 7 * Decimal("0.10") / 1_000_000


@pytest.fixture
def server() -> Iterator[MistralServer]:
    with MistralServer(usage=MISTRAL_USAGE, embedding_tokens=7) as server:
        yield server


@pytest.fixture
async def client(server: MistralServer) -> AsyncIterator[Any]:
    async with fake_mistral_client(server) as client:
        yield client


def dec(value: Any) -> Decimal:
    return Decimal(str(value))


def assert_small_row(row: dict[str, Any]) -> None:
    assert (row["provider"], row["operation"], row["model"]) == (
        "mistral",
        "chat.complete",
        "mistral-small-latest",
    )
    assert (row["input_tokens"], row["cache_read_tokens"], row["output_tokens"]) == (600, 400, 300)
    assert (row["reasoning_tokens"], row["total_tokens"]) == (0, 1300)
    assert row["cost_status"] == "computed"
    assert dec(row["input_cost"]) == 600 * Decimal("0.15") / 1_000_000
    assert dec(row["cache_read_cost"]) == 400 * Decimal("0.015") / 1_000_000
    assert dec(row["output_cost"]) == 300 * Decimal("0.60") / 1_000_000
    assert dec(row["total_cost"]) == SMALL_COST == Decimal("0.000276")
    assert row["price_version"] == "mistral-small-latest@2026-03-16"


async def test_complete_async_row_and_body(server: MistralServer, client: Any, stores: Any) -> None:
    llm = ml.LoggingLLM(client, stores.db, stores.storage, api_key_alias="team-a")
    resp = await llm.chat.complete_async(model="mistral-small-latest", messages=MESSAGES)
    assert isinstance(resp, models.ChatCompletionResponse)
    assert resp.choices[0].message is not None
    assert resp.choices[0].message.content == server.reply_text
    info = ml.call_info(resp)
    await llm.flush()
    row = stores.one_row()
    assert row["request_id"] == info.request_id and info.total_cost == SMALL_COST
    assert_small_row(row)
    assert row["served_model"] == "mistral-small-latest"
    assert (row["status"], row["stream"], row["api_key_alias"]) == ("ok", 0, "team-a")
    assert row["api_key_hash"] is not None and len(row["api_key_hash"]) == 64
    body = await stores.body(row)
    assert body["request"] == {"model": "mistral-small-latest", "messages": MESSAGES}
    assert body["response"]["usage"]["prompt_tokens_details"] == {"cached_tokens": 400}
    assert server.requests[-1].headers["authorization"].startswith("Bearer ")
    await llm.close()


async def test_stream_async_usage_comes_unasked(
    server: MistralServer, client: Any, stores: Any
) -> None:
    server.first_chunk_delay = 0.05
    llm = ml.LoggingLLM(client, stores.db, stores.storage)
    stream = await llm.chat.stream_async(model="mistral-small-latest", messages=MESSAGES)
    events = [event async for event in stream]
    assert isinstance(events[0], models.CompletionEvent)
    assert "".join(e.data.choices[0].delta.content for e in events) == server.reply_text
    await llm.flush()
    row = stores.one_row()
    assert_small_row(row)
    assert (row["status"], row["stream"]) == ("ok", 1)
    assert row["time_to_first_token_ms"] >= 50
    assert "stream_options" not in (server.requests[-1].body or {})  # Mistral needs no asking
    body = await stores.body(row)
    assert body["response"]["choices"][0]["message"]["content"] == server.reply_text
    assert body["response"]["choices"][0]["finish_reason"] == "stop"
    assert body["response"]["stream_chunks"] == server.stream_chunks
    await llm.close()


async def test_abandoned_stream_before_the_usage(
    server: MistralServer, client: Any, stores: Any
) -> None:
    llm = ml.LoggingLLM(client, stores.db, stores.storage)
    async with await llm.chat.stream_async(model="mistral-small-latest", messages=MESSAGES) as s:
        async for _event in s:
            break
    await llm.flush()
    row = stores.one_row()
    # Mistral sends usage with the last chunk only: none was seen, so the cost is unknown.
    assert (row["status"], row["cost_status"], row["total_cost"]) == (
        "incomplete",
        "incomplete",
        None,
    )
    await llm.close()


async def test_embeddings_and_fim(server: MistralServer, client: Any, stores: Any) -> None:
    llm = ml.LoggingLLM(client, stores.db, stores.storage)
    emb = await llm.embeddings.create_async(model="mistral-embed", inputs=["a", "b"])
    assert len(emb.data) == 2
    fim = await llm.fim.complete_async(model="codestral-2508", prompt="def f(", suffix="")
    assert fim.choices[0].message is not None
    await llm.flush()
    embed_row, fim_row = stores.rows()
    assert (embed_row["operation"], embed_row["model"], embed_row["input_tokens"]) == (
        "embeddings",
        "mistral-embed",
        7,
    )
    assert dec(embed_row["total_cost"]) == EMBED_COST
    assert (fim_row["operation"], fim_row["model"]) == ("fim.complete", "codestral-2508")
    assert dec(fim_row["total_cost"]) == CODESTRAL_COST
    await llm.close()


async def test_errors_and_missing_usage(server: MistralServer, client: Any, stores: Any) -> None:
    llm = ml.LoggingLLM(client, stores.db, stores.storage)
    server.fail_next(429)
    with pytest.raises(errors.SDKError) as caught:
        await llm.chat.complete_async(model="mistral-small-latest", messages=MESSAGES)
    assert caught.value.status_code == 429
    server.omit_usage = True
    # Mistral's schema requires usage: the SDK itself refuses the reply, and that is logged.
    with pytest.raises(errors.ResponseValidationError):
        await llm.chat.complete_async(model="mistral-small-latest", messages=MESSAGES)
    stream = await llm.chat.stream_async(model="mistral-small-latest", messages=MESSAGES)
    async for _event in stream:
        pass
    await llm.flush()
    limited, refused, unmetered = stores.rows()
    assert (limited["status"], limited["error_type"], limited["cost_status"]) == (
        "error",
        "SDKError",
        "error",
    )
    assert "Status 429" in limited["error_message"]
    assert (refused["status"], refused["error_type"]) == ("error", "ResponseValidationError")
    assert (unmetered["status"], unmetered["cost_status"], unmetered["total_cost"]) == (
        "ok",
        "missing_usage",
        None,
    )
    await llm.close()


class City(BaseModel):
    name: str


async def test_parse_is_logged_and_unknown_methods_are_not(
    server: MistralServer, client: Any, stores: Any
) -> None:
    server.reply_text = '{"name": "Paris"}'
    llm = ml.LoggingLLM(client, stores.db, stores.storage)
    parsed = await llm.chat.parse_async(City, model="mistral-small-latest", messages=MESSAGES)
    assert parsed.choices[0].message is not None
    assert parsed.choices[0].message.parsed == City(name="Paris")
    with pytest.raises(errors.SDKError):  # GET /v1/models is not served: not an LLM call
        await llm.models.list_async()
    await llm.flush()
    row = stores.one_row()
    assert_small_row(row)
    await llm.close()


def test_process_writer_assembles_the_same_stream(server: MistralServer, tmp_path: Path) -> None:
    async def main() -> list[dict[str, Any]]:
        async with fake_mistral_client(server) as client:
            db = await ml.SqliteAdapter.create(tmp_path / "log.db")
            llm = ml.LoggingLLM(client, db, None, writer="process", spool=tmp_path / "spool")
            stream = await llm.chat.stream_async(model="mistral-small-latest", messages=MESSAGES)
            async for _event in stream:
                pass
            await llm.chat.complete_async(model="mistral-small-latest", messages=MESSAGES)
            await llm.close()
        return _rows(tmp_path / "log.db")

    streamed, plain = asyncio.run(main())
    for row in (streamed, plain):
        assert_small_row(row)
    assert (streamed["stream"], plain["stream"]) == (1, 0)


# -- sync, no event loop ------------------------------------------------------------------


def _rows(db: Path) -> list[dict[str, Any]]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM llm_requests ORDER BY started_at")]
    finally:
        con.close()


def test_sync_calls(server: MistralServer, tmp_path: Path) -> None:
    db = tmp_path / "llm_logs.db"
    client = fake_mistral_client(server)
    with client, ml.LoggingLLM(client, f"sqlite:///{db}", str(tmp_path / "bodies")) as llm:
        reply = llm.chat.complete(model="mistral-small-latest", messages=MESSAGES)
        assert reply.usage.prompt_tokens == 1000
        events = list(llm.chat.stream(model="mistral-small-latest", messages=MESSAGES))
        assert events[-1].data.usage is not None
        early = llm.chat.stream(model="mistral-small-latest", messages=MESSAGES)
        next(iter(early))
        early.close()
        llm.embeddings.create(model="mistral-embed", inputs="x")
        server.fail_next(503)
        with pytest.raises(errors.SDKError):
            llm.chat.complete(model="mistral-small-latest", messages=MESSAGES)
    plain, streamed, left, embedded, failed = _rows(db)
    for row in (plain, streamed):
        assert_small_row(row)
    assert (plain["stream"], streamed["stream"], left["stream"]) == (0, 1, 1)
    assert (left["status"], left["cost_status"]) == ("incomplete", "incomplete")
    assert dec(embedded["total_cost"]) == EMBED_COST
    assert (failed["status"], failed["error_type"]) == ("error", "SDKError")
