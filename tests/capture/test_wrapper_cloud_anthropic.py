"""anthropic's cloud clients, real SDK against FakeCloud (a real HTTP server on 127.0.0.1):
``AsyncAnthropicBedrock`` / ``AnthropicBedrock`` (requests to ``/model/{id}/invoke``, signed
with SigV4, streams in AWS event-stream frames) and ``AsyncAnthropicVertex`` /
``AnthropicVertex`` (``.../publishers/anthropic/models/{model}:rawPredict``, an OAuth token).

Provider: ``bedrock`` (AWS bills it: the same rows and prices as boto3's Bedrock calls) and
``vertex`` (Google Cloud bills it). Prices per 1M tokens: Claude Haiku 4.5 under Bedrock's
``us.`` profile 1.10 in / 5.50 out / 0.11 cache read / 1.375 5-minute write / 2.20 1-hour
write (aws.amazon.com/bedrock/pricing, as genai-prices 0.2.3 has it); under ``global.`` and
on Vertex AI, Anthropic's list price 1.00 / 5.00 / 0.10 / 1.25 / 2.00 (genai-prices' google
provider has no regional Vertex price).
"""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import pytest

import majordomo_log as ml
from majordomo_log.capture.keys import hash_api_key, resolve_key_secret
from majordomo_log.testing.cloud import FakeCloud
from majordomo_log.testing.cloud_clients import (
    TEST_AWS_ACCESS_KEY_ID,
    TEST_AWS_SECRET_ACCESS_KEY,
    TEST_VERTEX_ACCESS_TOKEN,
    anthropic_bedrock_client,
    anthropic_vertex_client,
)

US_HAIKU = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
GLOBAL_HAIKU = "global.anthropic.claude-haiku-4-5-20251001-v1:0"
VERTEX_HAIKU = "claude-haiku-4-5@20251001"
SERVED = "claude-haiku-4-5-20251001"  # the name a Claude reply carries, on either cloud
MESSAGES: Any = [{"role": "user", "content": "hi"}]
# conftest's ANTHROPIC_USAGE: 1000 in, 2000 read, 300 5m writes, 200 1h writes, 500 out.
# us.: 1000 * 1.10 + 2000 * 0.11 + 300 * 1.375 + 200 * 2.20 + 500 * 5.50
US_COST = Decimal("4922.5") / 1_000_000
# global. and Vertex: 1000 * 1.00 + 2000 * 0.10 + 300 * 1.25 + 200 * 2.00 + 500 * 5.00
LIST_COST = Decimal("4475") / 1_000_000


@pytest.fixture
def cloud() -> Any:
    from conftest import ANTHROPIC_USAGE

    with FakeCloud(anthropic_usage=ANTHROPIC_USAGE) as server:
        yield server


def assert_row(
    row: dict[str, Any], *, provider: str, model: str, stream: int, cost: Decimal
) -> None:
    assert (row["provider"], row["operation"], row["model"]) == (provider, "messages", model)
    assert (row["served_model"], row["stream"], row["status"]) == (SERVED, stream, "ok")
    assert (row["input_tokens"], row["cache_read_tokens"], row["cache_write_5m_tokens"]) == (
        1000,
        2000,
        300,
    )
    assert (row["cache_write_1h_tokens"], row["output_tokens"], row["total_tokens"]) == (
        200,
        500,
        4000,
    )
    assert row["cost_status"] == "computed"
    assert Decimal(str(row["total_cost"])) == cost


def aws_key_hash() -> str:
    return hash_api_key(TEST_AWS_ACCESS_KEY_ID, resolve_key_secret())


# -- AnthropicBedrock ------------------------------------------------------------------


async def test_bedrock_messages_create(cloud: FakeCloud, stores: Any) -> None:
    async with ml.LoggingLLM(anthropic_bedrock_client(cloud), stores.db, stores.storage) as llm:
        message = await llm.messages.create(model=US_HAIKU, max_tokens=100, messages=MESSAGES)
        assert message.content[0].text == cloud.reply_text
        assert ml.call_info(message).total_cost == US_COST
        await llm.flush()
        row = stores.one_row()
        body = await stores.body(row)
    assert cloud.requests[-1].path == f"/model/{US_HAIKU}/invoke"
    assert cloud.requests[-1].headers["authorization"].startswith("AWS4-HMAC-SHA256")
    # Priced by the profile asked for (us.: +10%), not by the Anthropic name it served
    assert_row(row, provider="bedrock", model=US_HAIKU, stream=0, cost=US_COST)
    assert row["price_version"] == "anthropic.claude-haiku-4-5@2025-10-01"
    assert row["api_key_hash"] == aws_key_hash()
    assert body["request"]["model"] == US_HAIKU
    assert body["response"]["content"][0]["text"] == cloud.reply_text
    for _, text in stores.raw_body_bytes():
        assert TEST_AWS_SECRET_ACCESS_KEY.encode() not in text
        assert TEST_AWS_ACCESS_KEY_ID.encode() not in text


async def test_bedrock_stream_and_stream_helper(cloud: FakeCloud, stores: Any) -> None:
    cloud.first_chunk_delay = 0.05
    async with ml.LoggingLLM(anthropic_bedrock_client(cloud), stores.db, stores.storage) as llm:
        stream = await llm.messages.create(
            model=GLOBAL_HAIKU, max_tokens=100, messages=MESSAGES, stream=True
        )
        aws_request_id = stream.response.headers["x-amzn-requestid"]
        events = [event async for event in stream]
        text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
        assert text == cloud.reply_text
        async with llm.messages.stream(model=GLOBAL_HAIKU, max_tokens=100, messages=MESSAGES) as s:
            final = await s.get_final_message()
        assert final.usage.output_tokens == 500
        await llm.flush()
        rows = stores.rows()
    assert len(rows) == 2
    for row in rows:
        assert_row(row, provider="bedrock", model=GLOBAL_HAIKU, stream=1, cost=LIST_COST)
        assert row["price_version"] == "global.anthropic.claude-haiku-4-5@2025-10-01"
        assert 50 <= row["time_to_first_token_ms"] < row["latency_ms"]
    assert aws_request_id in {r["provider_request_id"] for r in rows}
    assert cloud.requests[0].path == f"/model/{GLOBAL_HAIKU}/invoke-with-response-stream"


async def test_bedrock_failure(cloud: FakeCloud, stores: Any) -> None:
    cloud.fail_next(400, "ValidationException", "The provided model identifier is invalid.")
    async with ml.LoggingLLM(anthropic_bedrock_client(cloud), stores.db, stores.storage) as llm:
        with pytest.raises(anthropic.BadRequestError):
            await llm.messages.create(model=US_HAIKU, max_tokens=100, messages=MESSAGES)
        await llm.flush()
        row = stores.one_row()
    assert (row["provider"], row["status"], row["error_type"]) == (
        "bedrock",
        "error",
        "BadRequestError",
    )
    assert row["cost_status"] == "error" and row["total_cost"] is None
    assert "model identifier is invalid" in row["error_message"]


def test_bedrock_sync(cloud: FakeCloud, tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    client = anthropic_bedrock_client(cloud, sync=True)
    with ml.LoggingLLM(client, f"sqlite:///{db}", str(tmp_path / "bodies")) as llm:
        llm.messages.create(model=US_HAIKU, max_tokens=100, messages=MESSAGES)
        with llm.messages.stream(model=US_HAIKU, max_tokens=100, messages=MESSAGES) as stream:
            assert "".join(stream.text_stream) == cloud.reply_text
        cloud.fail_next(429, "ThrottlingException", "Too many requests")
        with pytest.raises(anthropic.RateLimitError):
            llm.messages.create(model=US_HAIKU, max_tokens=100, messages=MESSAGES)
    rows = read_rows(db)
    ok = [r for r in rows if r["status"] == "ok"]
    assert sorted(r["stream"] for r in ok) == [0, 1]
    for row in ok:
        assert_row(row, provider="bedrock", model=US_HAIKU, stream=row["stream"], cost=US_COST)
        assert row["api_key_hash"] == aws_key_hash()
    (failed,) = [r for r in rows if r["status"] == "error"]
    assert (failed["error_type"], failed["total_cost"]) == ("RateLimitError", None)


# -- AnthropicVertex -------------------------------------------------------------------


async def test_vertex_messages_create_and_stream(cloud: FakeCloud, stores: Any) -> None:
    async with ml.LoggingLLM(anthropic_vertex_client(cloud), stores.db, stores.storage) as llm:
        message = await llm.messages.create(model=VERTEX_HAIKU, max_tokens=100, messages=MESSAGES)
        assert message.content[0].text == cloud.reply_text
        stream = await llm.messages.create(
            model=VERTEX_HAIKU, max_tokens=100, messages=MESSAGES, stream=True
        )
        assert [e.type async for e in stream][-1] == "message_stop"
        await llm.flush()
        rows = sorted(stores.rows(), key=lambda r: int(r["stream"]))
    paths = [r.path for r in cloud.requests]
    assert paths == [
        f"/v1/projects/majordomo-test-project/locations/us-east5/publishers/anthropic/models/{VERTEX_HAIKU}:{verb}"
        for verb in ("rawPredict", "streamRawPredict")
    ]
    assert cloud.requests[0].headers["authorization"] == f"Bearer {TEST_VERTEX_ACCESS_TOKEN}"
    for stream_flag, row in enumerate(rows):
        assert_row(row, provider="vertex", model=VERTEX_HAIKU, stream=stream_flag, cost=LIST_COST)
        assert row["price_version"] == "claude-haiku-4-5@2025-10-01"
        # an hour's OAuth token is no key to group spend by; it is scrubbed, never stored
        assert row["api_key_hash"] is None
    for _, text in stores.raw_body_bytes():
        assert TEST_VERTEX_ACCESS_TOKEN.encode() not in text


async def test_vertex_failure_scrubs_the_token(cloud: FakeCloud, stores: Any) -> None:
    cloud.fail_next(429, "rate_limit_error", f"quota exceeded for token {TEST_VERTEX_ACCESS_TOKEN}")
    async with ml.LoggingLLM(anthropic_vertex_client(cloud), stores.db, stores.storage) as llm:
        with pytest.raises(anthropic.RateLimitError):
            await llm.messages.create(model=VERTEX_HAIKU, max_tokens=100, messages=MESSAGES)
        await llm.flush()
        row = stores.one_row()
    assert (row["provider"], row["status"], row["error_type"]) == (
        "vertex",
        "error",
        "RateLimitError",
    )
    assert "quota exceeded" in row["error_message"]
    assert TEST_VERTEX_ACCESS_TOKEN not in row["error_message"]


def test_vertex_sync(cloud: FakeCloud, tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    client = anthropic_vertex_client(cloud, sync=True)
    with ml.LoggingLLM(client, f"sqlite:///{db}", str(tmp_path / "bodies")) as llm:
        llm.messages.create(model=VERTEX_HAIKU, max_tokens=100, messages=MESSAGES)
        events = list(
            llm.messages.create(model=VERTEX_HAIKU, max_tokens=100, messages=MESSAGES, stream=True)
        )
        assert events[0].type == "message_start"
    rows = sorted(read_rows(db), key=lambda r: int(r["stream"]))
    for stream_flag, row in enumerate(rows):
        assert_row(row, provider="vertex", model=VERTEX_HAIKU, stream=stream_flag, cost=LIST_COST)


def read_rows(db: Path) -> list[dict[str, Any]]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM llm_requests ORDER BY started_at")]
    finally:
        con.close()


def test_the_bodies_are_anthropic_shaped_json(cloud: FakeCloud) -> None:
    """The fake answers Bedrock's invoke with the Messages API's JSON, as Bedrock does."""
    import httpx2

    reply = httpx2.post(
        f"{cloud.url}/model/{US_HAIKU}/invoke",
        content=json.dumps({"anthropic_version": "bedrock-2023-05-31", "messages": MESSAGES}),
    )
    assert reply.status_code == 200
    assert reply.json()["model"] == SERVED
    assert reply.headers["x-amzn-bedrock-input-token-count"] == "1000"
