"""LoggingLLM around the real google-genai client, against Gemini-shaped HTTP served on a
local port (majordomo_log/testing/gemini.py): async (``client.aio.models.*``) here, sync
in test_wrapper_gemini_sync.py."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from google.genai import errors, types

import majordomo_log as ml
from majordomo_log.testing.gemini import DEFAULT_GEMINI_KEY, GeminiServer, fake_gemini_client

# Gemini's meaning: cached ⊂ prompt; thoughts and tool-use prompt are next to the others.
GEMINI_USAGE: Any = {
    "prompt_token_count": 1000,
    "cached_content_token_count": 400,
    "candidates_token_count": 200,
    "thoughts_token_count": 100,
    "tool_use_prompt_token_count": 50,
}
# gemini-2.5-flash, USD per 1M tokens (ai.google.dev/gemini-api/docs/pricing, genai-prices
# 0.2.3): input 0.30, cache read 0.03, output 2.50 (thinking billed as output).
# Buckets: input 1000 - 400 + 50 = 650, cache read 400, output 200, reasoning 100.
FLASH_INPUT = Decimal(650) * Decimal("0.30") / 1_000_000
FLASH_CACHE = Decimal(400) * Decimal("0.03") / 1_000_000
FLASH_OUTPUT = Decimal(200) * Decimal("2.50") / 1_000_000
FLASH_REASONING = Decimal(100) * Decimal("2.50") / 1_000_000
FLASH_COST = FLASH_INPUT + FLASH_CACHE + FLASH_OUTPUT + FLASH_REASONING
# gemini-embedding-001: input 0.15 per 1M tokens.
EMBED_COST = Decimal(7) * Decimal("0.15") / 1_000_000


@pytest.fixture
def server() -> Iterator[GeminiServer]:
    with GeminiServer(usage=GEMINI_USAGE, embedding_tokens=7) as server:
        yield server


@pytest.fixture
async def client(server: GeminiServer) -> AsyncIterator[Any]:
    client = fake_gemini_client(server)
    yield client
    await client.aio.aclose()
    client.close()


def dec(value: Any) -> Decimal:
    return Decimal(str(value))


def assert_flash_row(row: dict[str, Any]) -> None:
    assert row["provider"] == "google"
    assert row["model"] == "gemini-2.5-flash"
    assert row["operation"] == "generate_content"
    buckets = ("input_tokens", "cache_read_tokens", "output_tokens", "reasoning_tokens")
    assert tuple(row[b] for b in buckets) == (650, 400, 200, 100)
    assert (row["cache_write_5m_tokens"], row["cache_write_1h_tokens"]) == (0, 0)
    assert row["total_tokens"] == 1350
    assert dec(row["input_cost"]) == FLASH_INPUT
    assert dec(row["cache_read_cost"]) == FLASH_CACHE
    assert dec(row["output_cost"]) == FLASH_OUTPUT
    assert dec(row["reasoning_cost"]) == FLASH_REASONING
    assert dec(row["total_cost"]) == FLASH_COST == Decimal("0.000957")
    assert row["price_version"] == "gemini-2.5-flash@2025-06-17"


async def test_generate_content_row_and_body(
    server: GeminiServer, client: Any, stores: Any
) -> None:
    server.model_version = "gemini-2.5-flash-001"
    llm = ml.LoggingLLM(client, stores.db, stores.storage)
    config = types.GenerateContentConfig(temperature=0.3)
    resp = await llm.aio.models.generate_content(
        model="models/gemini-2.5-flash", contents="hello", config=config
    )
    assert isinstance(resp, types.GenerateContentResponse)  # the SDK's own object
    assert resp.text == server.reply_text
    info = ml.call_info(resp)
    await llm.flush()

    row = stores.one_row()
    assert row["request_id"] == info.request_id
    assert_flash_row(row)
    assert row["served_model"] == "gemini-2.5-flash-001"
    assert (row["status"], row["stream"], row["cost_status"]) == ("ok", 0, "computed")
    assert info.total_cost == FLASH_COST
    assert row["provider_request_id"] == resp.response_id
    assert row["time_to_first_token_ms"] is None and row["latency_ms"] > 0
    expected_hash = hmac.new(
        b"majordomo-log-default-key-secret-v1", DEFAULT_GEMINI_KEY.encode(), hashlib.sha256
    ).hexdigest()
    assert row["api_key_hash"] == expected_hash

    body = await stores.body(row)
    assert body["operation"] == "generate_content"
    assert body["request"]["model"] == "models/gemini-2.5-flash"  # what the caller sent
    assert body["request"]["contents"] == "hello"
    assert body["request"]["config"]["temperature"] == 0.3
    assert body["response"]["candidates"][0]["content"]["parts"][0]["text"] == server.reply_text
    assert body["response"]["usage_metadata"]["prompt_token_count"] == 1000
    assert server.requests[-1].path.endswith("/models/gemini-2.5-flash:generateContent")
    await llm.close()


async def test_stream_takes_the_last_running_usage(
    server: GeminiServer, client: Any, stores: Any
) -> None:
    server.first_chunk_delay = 0.05
    llm = ml.LoggingLLM(client, stores.db, stores.storage)
    stream = await llm.aio.models.generate_content_stream(
        model="gemini-2.5-flash", contents="hello"
    )
    texts = [chunk.text async for chunk in stream]
    assert "".join(texts) == server.reply_text and len(texts) == server.stream_chunks
    await llm.flush()

    row = stores.one_row()
    # Each chunk carries the running candidates count (50, 100, 150, 200): summed they
    # would be 500 output tokens; the last one is the call's usage.
    assert_flash_row(row)
    assert row["served_model"] == "gemini-2.5-flash"
    assert (row["status"], row["stream"], row["cost_status"]) == ("ok", 1, "computed")
    assert row["time_to_first_token_ms"] >= 50
    assert row["latency_ms"] >= row["time_to_first_token_ms"]
    body = await stores.body(row)
    candidate = body["response"]["candidates"][0]
    assert candidate["content"]["parts"] == [{"text": server.reply_text}]
    assert candidate["finish_reason"] == "STOP"
    assert body["response"]["stream_chunks"] == server.stream_chunks
    assert server.requests[-1].query == {"alt": "sse"}
    await llm.close()


async def test_abandoned_stream_is_incomplete_with_usage_so_far(
    server: GeminiServer, client: Any, stores: Any
) -> None:
    llm = ml.LoggingLLM(client, stores.db, stores.storage)
    stream = await llm.aio.models.generate_content_stream(
        model="gemini-2.5-flash", contents="hello"
    )
    async for _chunk in stream:
        break
    await stream.aclose()
    await llm.flush()
    row = stores.one_row()
    assert (row["status"], row["stream"], row["cost_status"]) == ("incomplete", 1, "incomplete")
    # The first chunk's running usage: the prompt, a quarter of the candidates (50), the
    # thoughts so far (all 100: Gemini reports them with the first chunk here).
    assert (row["input_tokens"], row["output_tokens"], row["reasoning_tokens"]) == (650, 50, 100)
    expected = (
        FLASH_INPUT + FLASH_CACHE + FLASH_REASONING + Decimal(50) * Decimal("2.50") / 1_000_000
    )
    assert dec(row["total_cost"]) == expected
    await llm.close()


async def test_embed_content(server: GeminiServer, client: Any, stores: Any) -> None:
    llm = ml.LoggingLLM(client, stores.db, stores.storage)
    resp = await llm.aio.models.embed_content(model="gemini-embedding-001", contents=["a", "b"])
    assert isinstance(resp, types.EmbedContentResponse) and len(resp.embeddings or []) == 2
    await llm.flush()
    row = stores.one_row()
    assert (row["provider"], row["operation"], row["model"]) == (
        "google",
        "embed_content",
        "gemini-embedding-001",
    )
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (7, 0, 7)
    assert row["cost_status"] == "computed"
    assert dec(row["total_cost"]) == EMBED_COST
    assert row["price_version"] == "gemini-embedding-001@2025-07-14"
    await llm.close()


async def test_error_is_logged_and_reraised_unchanged(
    server: GeminiServer, client: Any, stores: Any
) -> None:
    llm = ml.LoggingLLM(client, stores.db, stores.storage)
    server.fail_next(429, message="Resource has been exhausted (e.g. check quota).")
    with pytest.raises(errors.ClientError) as caught:
        await llm.aio.models.generate_content(model="models/gemini-2.5-flash", contents="hi")
    assert caught.value.code == 429
    server.fail_next(503)
    with pytest.raises(errors.ServerError):
        stream = await llm.aio.models.generate_content_stream(
            model="gemini-2.5-flash", contents="hi"
        )
        async for _chunk in stream:
            pass
    await llm.flush()
    first, second = stores.rows()
    assert (first["status"], first["error_type"], first["cost_status"]) == (
        "error",
        "ClientError",
        "error",
    )
    assert "RESOURCE_EXHAUSTED" in first["error_message"]
    assert first["total_cost"] is None and first["total_tokens"] is None
    assert (first["model"], first["operation"], first["stream"]) == (
        "gemini-2.5-flash",
        "generate_content",
        0,
    )
    assert (second["status"], second["error_type"], second["stream"]) == ("error", "ServerError", 1)
    await llm.close()


async def test_reply_without_usage_is_missing_usage(
    server: GeminiServer, client: Any, stores: Any
) -> None:
    server.omit_usage = True
    llm = ml.LoggingLLM(client, stores.db, stores.storage)
    await llm.aio.models.generate_content(model="gemini-2.5-flash", contents="hi")
    stream = await llm.aio.models.generate_content_stream(model="gemini-2.5-flash", contents="x")
    async for _chunk in stream:
        pass
    await llm.flush()
    rows = stores.rows()
    assert [(r["stream"], r["status"], r["cost_status"]) for r in rows] == [
        (0, "ok", "missing_usage"),
        (1, "ok", "missing_usage"),
    ]
    assert all(r["total_cost"] is None and r["total_tokens"] is None for r in rows)
    await llm.close()


async def test_methods_it_does_not_know_pass_through_unlogged(
    server: GeminiServer, client: Any, stores: Any
) -> None:
    llm = ml.LoggingLLM(client, stores.db, stores.storage)
    counted = await llm.aio.models.count_tokens(model="gemini-2.5-flash", contents="hello")
    assert counted.total_tokens == 1000
    with pytest.raises(errors.ClientError):  # not served here: a 404, not an LLM call failing
        await llm.aio.models.get(model="gemini-2.5-flash")
    assert llm.aio.models is not client.aio.models  # a logging view ...
    assert llm.vertexai is False  # ... and plain values as they are
    await llm.flush()
    assert stores.rows() == []
    await llm.close()


async def test_unknown_model_and_vertex_style_names(
    server: GeminiServer, client: Any, stores: Any
) -> None:
    llm = ml.LoggingLLM(client, stores.db, stores.storage)
    name = "projects/p/locations/us-central1/publishers/google/models/gemini-9-nonesuch"
    await llm.aio.models.generate_content(model=name, contents="hi")
    await llm.flush()
    row = stores.one_row()
    assert row["model"] == "gemini-9-nonesuch"
    assert (row["cost_status"], row["total_cost"]) == ("unknown_model", None)
    assert row["total_tokens"] == 1350  # the tokens are kept
    await llm.close()


def test_process_writer_gives_the_same_rows(server: GeminiServer, tmp_path: Path) -> None:
    """The response and the chunks cross to the writer process as JSON: usage, served model
    and the assembled stream read the same there."""

    async def main() -> list[dict[str, Any]]:
        client = fake_gemini_client(server)
        db = await ml.SqliteAdapter.create(tmp_path / "log.db")
        storage = await ml.FileStorageAdapter.create(tmp_path / "bodies")
        llm = ml.LoggingLLM(client, db, storage, writer="process", spool=tmp_path / "spool")
        await llm.aio.models.generate_content(model="gemini-2.5-flash", contents="hi")
        stream = await llm.aio.models.generate_content_stream(
            model="gemini-2.5-flash", contents="hi"
        )
        async for _chunk in stream:
            pass
        await llm.close()
        await client.aio.aclose()
        client.close()
        import sqlite3

        conn = sqlite3.connect(tmp_path / "log.db")
        conn.row_factory = sqlite3.Row
        rows = [dict(r) for r in conn.execute("SELECT * FROM llm_requests ORDER BY request_id")]
        conn.close()
        return rows

    rows = asyncio.run(main())
    assert [r["stream"] for r in rows] == [0, 1]
    for row in rows:
        assert_flash_row(row)
        assert (row["status"], row["cost_status"]) == ("ok", "computed")
