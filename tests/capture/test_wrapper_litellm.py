"""LoggingLLM around the litellm module itself, its calls routed to an OpenAI-shaped server
on a local port (majordomo_log/testing/server.py's OpenAIServer): ``acompletion`` and
``aembedding``, then ``completion`` with no event loop. Provider and served model are
LiteLLM's own answer (``_hidden_params["custom_llm_provider"]``, the response's model)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

# No network here: LiteLLM must not fetch its cost map when it is imported.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm

import majordomo_log as ml
from majordomo_log.testing import FakeProvider
from majordomo_log.testing.server import OpenAIServer

MESSAGES: Any = [{"role": "user", "content": "hi"}]
KEY = "sk-litellm-per-call-key-0123456789"
# Inclusive OpenAI counts. Buckets: input 600, cache read 400, output 200, reasoning 100.
USAGE: Any = {
    "prompt_tokens": 1000,
    "cached_tokens": 400,
    "completion_tokens": 300,
    "reasoning_tokens": 100,
}
# gpt-4o-mini, USD per 1M tokens (openai.com/api/pricing): input 0.15, cached input 0.075,
# output 0.60 (reasoning billed as output).
MINI_COST = (600 * Decimal("0.15") + 400 * Decimal("0.075") + 300 * Decimal("0.60")) / 1_000_000
# text-embedding-3-small: input 0.02.
EMBED_COST = 9 * Decimal("0.02") / 1_000_000


@pytest.fixture(autouse=True)
def _quiet_litellm() -> Iterator[None]:
    before = litellm.suppress_debug_info
    litellm.suppress_debug_info = True  # its "Give Feedback" banner on every error
    yield
    litellm.suppress_debug_info = before


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    provider = FakeProvider(openai_usage=USAGE, embedding_tokens=9)
    with OpenAIServer(provider) as server:
        yield server


def call_args(server: OpenAIServer, **kwargs: Any) -> dict[str, Any]:
    return {
        "model": "openai/gpt-4o-mini",
        "messages": MESSAGES,
        "api_base": server.url + "/v1",
        "api_key": KEY,
        **kwargs,
    }


def dec(value: Any) -> Decimal:
    return Decimal(str(value))


def assert_mini_row(row: dict[str, Any]) -> None:
    assert (row["provider"], row["operation"]) == ("openai", "completion")
    assert (row["model"], row["served_model"]) == ("openai/gpt-4o-mini", "gpt-4o-mini")
    buckets = ("input_tokens", "cache_read_tokens", "output_tokens", "reasoning_tokens")
    assert tuple(row[b] for b in buckets) == (600, 400, 200, 100)
    assert row["cost_status"] == "computed"
    assert dec(row["total_cost"]) == MINI_COST == Decimal("0.0003")
    assert row["price_version"] == "gpt-4o-mini@2024-07-18"
    expected = hmac.new(
        b"majordomo-log-default-key-secret-v1", KEY.encode(), hashlib.sha256
    ).hexdigest()
    assert row["api_key_hash"] == expected


async def test_acompletion_row_and_body(server: OpenAIServer, stores: Any) -> None:
    llm = ml.LoggingLLM(litellm, stores.db, stores.storage)
    resp = await llm.acompletion(**call_args(server, temperature=0))
    assert isinstance(resp, litellm.ModelResponse)
    assert resp.choices[0].message.content == server.provider.reply_text
    info = ml.call_info(resp)
    await llm.flush()
    row = stores.one_row()
    assert row["request_id"] == info.request_id and info.total_cost == MINI_COST
    assert_mini_row(row)
    assert (row["status"], row["stream"]) == ("ok", 0)
    assert row["provider_request_id"].startswith("req_")
    sent = server.requests[-1]
    assert sent.headers["authorization"] == f"Bearer {KEY}"  # the call got its key ...
    body = await stores.body(row)
    assert body["request"]["api_key"] == "[REDACTED]"  # ... the log did not
    assert body["request"]["model"] == "openai/gpt-4o-mini"
    assert body["response"]["choices"][0]["message"]["content"] == server.provider.reply_text
    await llm.close()


async def test_stream_asks_for_usage_and_hides_its_chunk(server: OpenAIServer, stores: Any) -> None:
    unwrapped = await litellm.acompletion(**call_args(server, stream=True))
    expected = [chunk.choices[0].delta.content async for chunk in unwrapped]
    server.provider.first_chunk_delay = 0.05
    llm = ml.LoggingLLM(litellm, stores.db, stores.storage)
    stream = await llm.acompletion(**call_args(server, stream=True))
    chunks = [chunk async for chunk in stream]
    # The same chunks the caller gets without the wrapper: the usage chunk LiteLLM adds for
    # the stream_options the wrapper asked with is not among them.
    assert [c.choices[0].delta.content for c in chunks] == expected
    assert all(getattr(c, "usage", None) is None for c in chunks)
    assert server.requests[-1].body["stream_options"] == {"include_usage": True}
    await llm.flush()
    row = stores.one_row()
    assert_mini_row(row)
    assert (row["status"], row["stream"]) == ("ok", 1)
    assert row["time_to_first_token_ms"] >= 50
    body = await stores.body(row)
    assert body["request"].get("stream_options") is None  # what the caller sent
    assert body["response"]["choices"][0]["message"]["content"] == server.provider.reply_text
    await llm.close()


async def test_stream_that_asked_for_usage_keeps_its_chunk(
    server: OpenAIServer, stores: Any
) -> None:
    llm = ml.LoggingLLM(litellm, stores.db, stores.storage)
    options = {"include_usage": True}
    stream = await llm.acompletion(**call_args(server, stream=True, stream_options=options))
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].usage.prompt_tokens == 1000
    await llm.flush()
    assert_mini_row(stores.one_row())
    await llm.close()


async def test_error_row_names_the_provider_that_failed(server: OpenAIServer, stores: Any) -> None:
    llm = ml.LoggingLLM(litellm, stores.db, stores.storage)
    server.provider.fail_next(429, times=5)
    with pytest.raises(litellm.RateLimitError):
        await llm.acompletion(**call_args(server, max_retries=0))
    await llm.flush()
    row = stores.one_row()
    assert (row["provider"], row["status"], row["error_type"]) == (
        "openai",
        "error",
        "RateLimitError",
    )
    assert (row["cost_status"], row["total_cost"]) == ("error", None)
    assert row["model"] == "openai/gpt-4o-mini"
    await llm.close()


async def test_aembedding(server: OpenAIServer, stores: Any) -> None:
    llm = ml.LoggingLLM(litellm, stores.db, stores.storage)
    resp = await llm.aembedding(
        model="openai/text-embedding-3-small", input=["a"], api_base=server.url + "/v1", api_key=KEY
    )
    assert len(resp.data) == 1
    await llm.flush()
    row = stores.one_row()
    assert (row["provider"], row["operation"], row["served_model"]) == (
        "openai",
        "embedding",
        "text-embedding-3-small",
    )
    assert (row["input_tokens"], row["output_tokens"]) == (9, 0)
    assert dec(row["total_cost"]) == EMBED_COST
    await llm.close()


# Anthropic's own counts (additive): LiteLLM reports them OpenAI-style, inclusive.
ANTHROPIC_USAGE: Any = {
    "input_tokens": 1000,
    "cache_read_input_tokens": 2000,
    "cache_creation_5m": 300,
    "cache_creation_1h": 200,
    "output_tokens": 500,
}
# claude-haiku-4-5, USD per 1M tokens (anthropic.com/pricing): input 1.00, cache read 0.10,
# 5-minute cache write 1.25, 1-hour cache write 2.00, output 5.00.
HAIKU_COST = (
    1000 * Decimal("1.00")
    + 2000 * Decimal("0.10")
    + 300 * Decimal("1.25")
    + 200 * Decimal("2.00")
    + 500 * Decimal("5.00")
) / 1_000_000


async def test_anthropic_through_litellm_bills_cache_writes_as_writes(stores: Any) -> None:
    """LiteLLM's prompt_tokens (3500) includes Anthropic's cache reads and writes: read as
    plain OpenAI usage, the 500 written tokens would be billed as uncached input."""
    provider = FakeProvider(anthropic_usage=ANTHROPIC_USAGE)
    with OpenAIServer(provider) as server:
        llm = ml.LoggingLLM(litellm, stores.db, stores.storage)
        args = {
            "model": "anthropic/claude-haiku-4-5",
            "messages": MESSAGES,
            "api_base": server.url,
            "api_key": KEY,
            "max_tokens": 100,
        }
        resp = await llm.acompletion(**args)
        assert resp.usage.prompt_tokens == 3500
        stream = await llm.acompletion(**args, stream=True)
        async for _chunk in stream:
            pass
        await llm.flush()
    plain, streamed = stores.rows()
    for row in (plain, streamed):
        assert (row["provider"], row["model"], row["served_model"]) == (
            "anthropic",
            "anthropic/claude-haiku-4-5",
            "claude-haiku-4-5",
        )
        assert (row["input_tokens"], row["cache_read_tokens"], row["output_tokens"]) == (
            1000,
            2000,
            500,
        )
        assert row["total_tokens"] == 4000
    assert (plain["cache_write_5m_tokens"], plain["cache_write_1h_tokens"]) == (300, 200)
    assert dec(plain["total_cost"]) == HAIKU_COST == Decimal("0.004475")
    assert plain["provider_request_id"].startswith("req_")
    # LiteLLM's streamed usage has the writes but not their TTL: all are taken as 5-minute
    # writes (the 200 one-hour ones under-billed by 0.75 per 1M tokens each).
    assert (streamed["cache_write_5m_tokens"], streamed["cache_write_1h_tokens"]) == (500, 0)
    assert dec(streamed["total_cost"]) == HAIKU_COST - 200 * Decimal("0.75") / 1_000_000
    await llm.close()


async def test_module_helpers_pass_through_unlogged(stores: Any) -> None:
    llm = ml.LoggingLLM(litellm, stores.db, stores.storage)
    assert "litellm" in repr(llm)
    assert llm.drop_params is litellm.drop_params
    assert llm.token_counter(model="gpt-4o-mini", messages=MESSAGES) > 0
    with pytest.raises(litellm.BadRequestError):  # a helper failing is no LLM call failing
        llm.get_llm_provider("no-such-provider/model-x")
    await llm.flush()
    assert stores.rows() == []
    await llm.close()


def test_process_writer(server: OpenAIServer, tmp_path: Path) -> None:
    """The provider is read from the live response: it must survive the trip to the writer
    process, where the response is only its JSON."""

    async def main() -> list[dict[str, Any]]:
        db = await ml.SqliteAdapter.create(tmp_path / "log.db")
        llm = ml.LoggingLLM(litellm, db, None, writer="process", spool=tmp_path / "spool")
        await llm.acompletion(**call_args(server))
        stream = await llm.acompletion(**call_args(server, stream=True))
        async for _chunk in stream:
            pass
        await llm.close()
        return _rows(tmp_path / "log.db")

    plain, streamed = asyncio.run(main())
    for row in (plain, streamed):
        assert_mini_row(row)
    assert (plain["stream"], streamed["stream"]) == (0, 1)


# -- sync, no event loop ------------------------------------------------------------------


def _rows(db: Path) -> list[dict[str, Any]]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM llm_requests ORDER BY started_at")]
    finally:
        con.close()


def test_sync_completion(server: OpenAIServer, tmp_path: Path) -> None:
    db = tmp_path / "llm_logs.db"
    with ml.LoggingLLM(litellm, f"sqlite:///{db}", str(tmp_path / "bodies")) as llm:
        reply = llm.completion(**call_args(server))
        assert reply.choices[0].message.content == server.provider.reply_text
        chunks = list(llm.completion(**call_args(server, stream=True)))
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == (
            server.provider.reply_text
        )
        assert all(getattr(c, "usage", None) is None for c in chunks)  # its usage chunk hidden
        early = llm.completion(**call_args(server, stream=True))
        next(iter(early))
        early.close()  # the caller stops reading
        server.provider.fail_next(500, times=5)
        with pytest.raises(litellm.InternalServerError):
            llm.completion(**call_args(server, max_retries=0))
    plain, streamed, left, failed = _rows(db)
    for row in (plain, streamed):
        assert_mini_row(row)
        assert row["status"] == "ok"
    assert (plain["stream"], streamed["stream"]) == (0, 1)
    assert (left["status"], left["stream"]) == ("incomplete", 1)
    assert (failed["provider"], failed["status"], failed["error_type"]) == (
        "openai",
        "error",
        "InternalServerError",
    )
