"""LoggingLLM around a real aioboto3 ``bedrock-runtime`` client, sending to FakeCloud, a
real HTTP server on 127.0.0.1 that answers like Bedrock (event streams in AWS's binary
framing, decoded by aiobotocore itself). The sync twin, boto3: test_wrapper_bedrock_sync.py.

Prices (USD per 1M tokens, aws.amazon.com/bedrock/pricing as genai-prices 0.2.3 has them):
Claude Haiku 4.5 under a geographic profile (``us.``) 1.10 in / 5.50 out / 0.11 cache read /
1.375 5-minute write / 2.20 1-hour write; under the global profile Anthropic's 1.00 / 5.00 /
0.10 / 1.25 / 2.00. Nova Pro 0.80 / 3.20 / read 0.20 (no write price: billed as input).
Llama 3.1 8B 0.22 / 0.22. Mistral 7B 0.15 / 0.20.
"""

from __future__ import annotations

import gc
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
from botocore.exceptions import ClientError, EventStreamError, OperationNotPageableError

import majordomo_log as ml
from majordomo_log.capture.keys import hash_api_key, resolve_key_secret
from majordomo_log.testing.cloud import FakeCloud
from majordomo_log.testing.cloud_clients import (
    TEST_AWS_ACCESS_KEY_ID,
    TEST_AWS_SECRET_ACCESS_KEY,
    async_bedrock_client,
)

US_HAIKU = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
GLOBAL_HAIKU = "global.anthropic.claude-haiku-4-5-20251001-v1:0"
MESSAGES: Any = [{"role": "user", "content": [{"text": "hi"}]}]
CLAUDE_BODY = json.dumps(
    {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
    }
)
# Converse counts are additive: 1000 + 2000 + 300 + 500 = 3800 tokens.
CONVERSE_USAGE: Any = {
    "inputTokens": 1000,
    "outputTokens": 500,
    "cacheReadInputTokens": 2000,
    "cacheWriteInputTokens": 300,
}
# 1000 * 1.10 + 2000 * 0.11 + 300 * 1.375 + 500 * 5.50 = 1100 + 220 + 412.5 + 2750
US_CONVERSE_COST = Decimal("4482.5") / 1_000_000
# 1000 * 1.00 + 2000 * 0.10 + 300 * 1.25 + 500 * 5.00 = 1000 + 200 + 375 + 2500
GLOBAL_CONVERSE_COST = Decimal("4075") / 1_000_000
# Claude's own usage in invoke_model bodies (conftest's ANTHROPIC_USAGE): 1000 in, 2000
# read, 300 5m writes, 200 1h writes, 500 out:
# 1100 + 220 + 412.5 + 200 * 2.20 + 2750 = 4922.5
US_CLAUDE_COST = Decimal("4922.5") / 1_000_000


@pytest.fixture
def cloud() -> Any:
    from conftest import ANTHROPIC_USAGE

    with FakeCloud(converse_usage=CONVERSE_USAGE, anthropic_usage=ANTHROPIC_USAGE) as server:
        yield server


@pytest.fixture
async def client(cloud: FakeCloud) -> AsyncIterator[Any]:
    async with async_bedrock_client(cloud) as c:
        yield c


def key_hash() -> str:
    return hash_api_key(TEST_AWS_ACCESS_KEY_ID, resolve_key_secret())


def assert_converse_row(row: dict[str, Any], *, model: str, stream: int, cost: Decimal) -> None:
    assert row["provider"] == "bedrock"
    assert row["model"] == model
    assert row["served_model"] is None  # Converse does not name the model it ran
    assert row["operation"] == ("converse_stream" if stream else "converse")
    assert row["stream"] == stream
    assert row["status"] == "ok"
    assert (row["input_tokens"], row["cache_read_tokens"], row["cache_write_5m_tokens"]) == (
        1000,
        2000,
        300,
    )
    assert (row["cache_write_1h_tokens"], row["output_tokens"], row["reasoning_tokens"]) == (
        0,
        500,
        0,
    )
    assert row["total_tokens"] == 3800
    assert row["cost_status"] == "computed"
    assert Decimal(str(row["total_cost"])) == cost
    assert row["api_key_hash"] == key_hash()


async def test_converse(cloud: FakeCloud, client: Any, stores: Any) -> None:
    llm = ml.LoggingLLM(client, stores.db, stores.storage)
    assert repr(llm).startswith("<LoggingLLM bedrock")
    result = await llm.converse(modelId=US_HAIKU, messages=MESSAGES)
    assert result["output"]["message"]["content"] == [{"text": cloud.reply_text}]
    info = ml.call_info(result)
    assert info.total_cost == US_CONVERSE_COST
    assert info.price_version == "anthropic.claude-haiku-4-5@2025-10-01"
    await llm.flush()
    row = stores.one_row()
    assert_converse_row(row, model=US_HAIKU, stream=0, cost=US_CONVERSE_COST)
    assert row["price_version"] == "anthropic.claude-haiku-4-5@2025-10-01"
    assert row["provider_request_id"] == result["ResponseMetadata"]["RequestId"]
    assert Decimal(str(row["cache_write_cost"])) == Decimal("0.0004125")  # 300 * 1.375
    body = await stores.body(row)
    assert body["request"] == {"modelId": US_HAIKU, "messages": MESSAGES}
    assert body["response"]["output"]["message"]["content"][0]["text"] == cloud.reply_text
    assert body["response"]["usage"]["inputTokens"] == 1000
    await llm.close()
    # botocore signed the request with the secret key; the log holds neither it nor the id
    assert "AWS4-HMAC-SHA256" in cloud.requests[-1].headers["authorization"]
    for _, text in stores.raw_body_bytes():
        assert TEST_AWS_ACCESS_KEY_ID.encode() not in text
        assert TEST_AWS_SECRET_ACCESS_KEY.encode() not in text


async def test_the_global_profile_is_priced_at_anthropics_rate(client: Any, stores: Any) -> None:
    async with ml.LoggingLLM(client, stores.db, stores.storage) as llm:
        await llm.converse(modelId=GLOBAL_HAIKU, messages=MESSAGES)
        await llm.flush()
        row = stores.one_row()
    assert_converse_row(row, model=GLOBAL_HAIKU, stream=0, cost=GLOBAL_CONVERSE_COST)
    assert row["price_version"] == "global.anthropic.claude-haiku-4-5@2025-10-01"


async def test_the_request_is_stored_as_sent(client: Any, stores: Any) -> None:
    messages: Any = [{"role": "user", "content": [{"text": "first"}]}]
    async with ml.LoggingLLM(client, stores.db, stores.storage) as llm:
        result = await llm.converse(modelId=US_HAIKU, messages=messages)
        messages.append(result["output"]["message"])  # what callers do next
        await llm.flush()
        body = await stores.body(stores.one_row())
    assert body["request"]["messages"] == [{"role": "user", "content": [{"text": "first"}]}]


async def test_converse_stream(cloud: FakeCloud, client: Any, stores: Any) -> None:
    expected = [
        e
        async for e in (await client.converse_stream(modelId=US_HAIKU, messages=MESSAGES))["stream"]
    ]
    cloud.first_chunk_delay = 0.05
    llm = ml.LoggingLLM(client, stores.db, stores.storage)
    result = await llm.converse_stream(modelId=US_HAIKU, messages=MESSAGES)
    assert ml.call_info(result["stream"]).cost_status == "pending"
    events = [e async for e in result["stream"]]
    assert events == expected  # the caller's events, untouched
    text = "".join(
        e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e
    )
    assert text == cloud.reply_text
    assert ml.call_info(result["stream"]).total_cost == US_CONVERSE_COST
    await llm.flush()
    row = stores.one_row()
    assert_converse_row(row, model=US_HAIKU, stream=1, cost=US_CONVERSE_COST)
    assert row["provider_request_id"] == result["ResponseMetadata"]["RequestId"]
    # the first contentBlockDelta, paced 50 ms after messageStart
    assert 50 <= row["time_to_first_token_ms"] < row["latency_ms"]
    body = await stores.body(row)
    message = body["response"]["output"]["message"]
    assert message == {"role": "assistant", "content": [{"text": cloud.reply_text}]}
    assert body["response"]["stopReason"] == "end_turn"
    assert body["response"]["stream_events"] == len(events)
    await llm.close()


async def test_a_stream_left_early_is_incomplete(client: Any, stores: Any) -> None:
    async with ml.LoggingLLM(client, stores.db, stores.storage) as llm:
        result = await llm.converse_stream(modelId=US_HAIKU, messages=MESSAGES)
        async for _ in result["stream"]:
            break
        result["stream"].close()
        dropped = await llm.converse_stream(modelId=US_HAIKU, messages=MESSAGES)
        del dropped
        gc.collect()
        await llm.flush()
        rows = stores.rows()
    assert [r["status"] for r in rows] == ["incomplete", "incomplete"]
    assert [r["cost_status"] for r in rows] == ["incomplete", "incomplete"]
    assert [r["total_cost"] for r in rows] == [None, None]  # no usage was seen: never $0


async def test_an_exception_event_mid_stream_is_an_error(
    cloud: FakeCloud, client: Any, stores: Any
) -> None:
    cloud.fail_stream_after(3, "throttlingException", "Too many tokens")
    async with ml.LoggingLLM(client, stores.db, stores.storage) as llm:
        result = await llm.converse_stream(modelId=US_HAIKU, messages=MESSAGES)
        seen = []
        with pytest.raises(EventStreamError, match="throttlingException"):
            async for event in result["stream"]:
                seen.append(event)
        assert len(seen) == 3
        await llm.flush()
        row = stores.one_row()
    assert row["status"] == "error"
    assert row["error_type"] == "EventStreamError"
    assert "Too many tokens" in row["error_message"]
    assert row["cost_status"] == "error" and row["total_cost"] is None


async def test_invoke_model_with_a_claude_body(cloud: FakeCloud, client: Any, stores: Any) -> None:
    unwrapped = await (await client.invoke_model(modelId=US_HAIKU, body=CLAUDE_BODY))["body"].read()
    async with ml.LoggingLLM(client, stores.db, stores.storage) as llm:
        result = await llm.invoke_model(modelId=US_HAIKU, body=CLAUDE_BODY)
        body = result["body"]
        first = await body.read(10)
        rest = await body.read()
        assert await body.read() == b""
        reply = json.loads(first + rest)
        assert reply["content"][0]["text"] == cloud.reply_text
        assert set(reply) == set(json.loads(unwrapped))  # the same reply as unwrapped
        again = await llm.invoke_model(modelId=US_HAIKU, body=CLAUDE_BODY)
        lines = [line async for line in again["body"].iter_lines()]
        assert json.loads(b"".join(lines))["content"][0]["text"] == cloud.reply_text
        await llm.flush()
        rows = stores.rows()
    assert len(rows) == 2
    request_id = result["ResponseMetadata"]["RequestId"]
    row = next(r for r in rows if r["provider_request_id"] == request_id)
    assert (row["provider"], row["operation"], row["model"]) == (
        "bedrock",
        "invoke_model",
        US_HAIKU,
    )
    assert row["served_model"] == "claude-haiku-4-5-20251001"
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
    # priced by the profile asked for, not by the Anthropic name the reply carries
    assert Decimal(str(row["total_cost"])) == US_CLAUDE_COST
    assert row["price_version"] == "anthropic.claude-haiku-4-5@2025-10-01"
    stored = await stores.body(row)
    assert stored["request"]["body"] == CLAUDE_BODY
    assert stored["response"]["body"]["content"][0]["text"] == cloud.reply_text
    assert stored["response"]["contentType"] == "application/json"


@pytest.mark.parametrize(
    ("model", "body", "tokens", "cost"),
    [
        # Nova's own usage: 1000 * 0.80 + 2000 * 0.20 + 300 * 0.80 + 500 * 3.20 = 3040
        ("us.amazon.nova-pro-v1:0", {"messages": []}, (1000, 2000, 300, 500), Decimal("3040")),
        # Llama's prompt/generation counts: (1000 + 500) * 0.22 = 330
        ("meta.llama3-1-8b-instruct-v1:0", {"prompt": "hi"}, (1000, 0, 0, 500), Decimal("330")),
        # Mistral's body has no usage: Bedrock's headers, 1000 * 0.15 + 500 * 0.20 = 250
        ("mistral.mistral-7b-instruct-v0:2", {"prompt": "hi"}, (1000, 0, 0, 500), Decimal("250")),
    ],
    ids=["nova", "llama", "mistral-headers"],
)
async def test_invoke_model_of_other_families(
    client: Any,
    stores: Any,
    model: str,
    body: dict[str, Any],
    tokens: tuple[int, int, int, int],
    cost: Decimal,
) -> None:
    async with ml.LoggingLLM(client, stores.db, stores.storage) as llm:
        result = await llm.invoke_model(modelId=model, body=json.dumps(body))
        assert json.loads(await result["body"].read())  # still readable, once, by the caller
        await llm.flush()
        row = stores.one_row()
    got = (row["input_tokens"], row["cache_read_tokens"], row["cache_write_5m_tokens"])
    assert (*got, row["output_tokens"]) == tokens
    assert row["cost_status"] == "computed"
    assert Decimal(str(row["total_cost"])) == cost / 1_000_000


async def test_invoke_model_with_response_stream(
    cloud: FakeCloud, client: Any, stores: Any
) -> None:
    raw = await client.invoke_model_with_response_stream(modelId=US_HAIKU, body=CLAUDE_BODY)
    expected = [json.loads(e["chunk"]["bytes"])["type"] async for e in raw["body"]]
    cloud.first_chunk_delay = 0.05
    async with ml.LoggingLLM(client, stores.db, stores.storage) as llm:
        result = await llm.invoke_model_with_response_stream(modelId=US_HAIKU, body=CLAUDE_BODY)
        events = [json.loads(e["chunk"]["bytes"]) async for e in result["body"]]
        assert [e["type"] for e in events] == expected
        await llm.flush()
        row = stores.one_row()
    assert (row["operation"], row["stream"], row["status"]) == (
        "invoke_model_with_response_stream",
        1,
        "ok",
    )
    assert row["served_model"] == "claude-haiku-4-5-20251001"
    # message_start's counts and message_delta's cumulative output, merged, not added
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (1000, 500, 4000)
    assert Decimal(str(row["total_cost"])) == US_CLAUDE_COST
    assert 50 <= row["time_to_first_token_ms"] < row["latency_ms"]
    body = await stores.body(row)
    assert body["response"]["body"]["content"] == [{"type": "text", "text": cloud.reply_text}]
    assert body["response"]["body"]["amazon-bedrock-invocationMetrics"]["inputTokenCount"] == 1000


@pytest.mark.parametrize(
    ("status", "code"), [(400, "ValidationException"), (429, "ThrottlingException")]
)
async def test_a_failed_call_is_an_error_row(
    cloud: FakeCloud, client: Any, stores: Any, status: int, code: str
) -> None:
    cloud.fail_next(status, code, "model identifier is invalid")
    async with ml.LoggingLLM(client, stores.db, stores.storage) as llm:
        with pytest.raises(ClientError) as caught:
            await llm.converse(modelId=US_HAIKU, messages=MESSAGES)
        assert type(caught.value) is getattr(client.exceptions, code)  # the client's own
        await llm.flush()
        row = stores.one_row()
    assert (row["status"], row["error_type"], row["cost_status"]) == ("error", code, "error")
    assert row["total_cost"] is None and row["input_tokens"] is None
    assert row["model"] == US_HAIKU
    assert row["provider_request_id"] == caught.value.response["ResponseMetadata"]["RequestId"]


async def test_an_error_naming_the_access_key_is_scrubbed(
    cloud: FakeCloud, client: Any, stores: Any
) -> None:
    cloud.fail_next(
        403,
        "UnrecognizedClientException",
        f"The security token included in the request is invalid ({TEST_AWS_ACCESS_KEY_ID})",
    )
    async with ml.LoggingLLM(client, stores.db, stores.storage) as llm:
        with pytest.raises(ClientError, match=TEST_AWS_ACCESS_KEY_ID):  # the caller's, intact
            await llm.converse(modelId=US_HAIKU, messages=MESSAGES)
        await llm.flush()
        row = stores.one_row()
    assert "security token included in the request is invalid" in row["error_message"]
    assert TEST_AWS_ACCESS_KEY_ID not in row["error_message"]


async def test_a_reply_without_usage_is_missing_usage(
    cloud: FakeCloud, client: Any, stores: Any
) -> None:
    cloud.omit_usage = True
    async with ml.LoggingLLM(client, stores.db, stores.storage) as llm:
        await llm.converse(modelId=US_HAIKU, messages=MESSAGES)
        result = await llm.converse_stream(modelId=US_HAIKU, messages=MESSAGES)
        async for _ in result["stream"]:
            pass
        await llm.flush()
        rows = stores.rows()
    assert [r["cost_status"] for r in rows] == ["missing_usage", "missing_usage"]
    assert [r["total_cost"] for r in rows] == [None, None]


async def test_an_unknown_result_of_a_known_method_is_missing_usage(
    client: Any, stores: Any
) -> None:
    async def odd(**kwargs: Any) -> Any:
        return {"ResponseMetadata": {"RequestId": "req-odd"}, "unexpected": True}

    async def text(**kwargs: Any) -> Any:
        return "not a dict at all"

    async with ml.LoggingLLM(client, stores.db, stores.storage) as llm:
        with mock.patch.object(client, "converse", odd):
            assert (await llm.converse(modelId=US_HAIKU, messages=MESSAGES))["unexpected"]
        with mock.patch.object(client, "invoke_model", text):
            assert await llm.invoke_model(modelId=US_HAIKU, body="{}") == "not a dict at all"
        await llm.flush()
        rows = sorted(stores.rows(), key=lambda r: str(r["operation"]))
    assert [(r["operation"], r["status"], r["cost_status"]) for r in rows] == [
        ("converse", "ok", "missing_usage"),
        ("invoke_model", "ok", "missing_usage"),
    ]
    assert rows[0]["provider_request_id"] == "req-odd"


async def test_other_methods_and_attributes_pass_through_untouched(
    cloud: FakeCloud, client: Any, stores: Any
) -> None:
    async with ml.LoggingLLM(client, stores.db, stores.storage) as llm:
        assert llm.meta is client.meta
        assert llm.exceptions is client.exceptions
        assert llm.can_paginate == client.can_paginate  # the client's own bound method
        assert llm.can_paginate("converse") is False
        with pytest.raises(OperationNotPageableError):
            llm.get_paginator("converse")  # its own error, and no error row
        await llm.flush()
        assert stores.rows() == []


async def test_the_control_plane_is_not_an_llm_call(cloud: FakeCloud, stores: Any) -> None:
    import aioboto3

    from majordomo_log.testing.cloud_clients import TEST_AWS_REGION

    session = aioboto3.Session()
    async with (
        session.client(
            "bedrock",
            endpoint_url=cloud.url,
            region_name=TEST_AWS_REGION,
            aws_access_key_id=TEST_AWS_ACCESS_KEY_ID,
            aws_secret_access_key=TEST_AWS_SECRET_ACCESS_KEY,
        ) as control,
        ml.LoggingLLM(control, stores.db, stores.storage) as llm,
    ):
        assert repr(llm).startswith("<LoggingLLM bedrock")
        with pytest.raises(ClientError):  # FakeCloud has no control plane: a 404
            await llm.list_foundation_models()
        assert llm.list_foundation_models == control.list_foundation_models
        await llm.flush()
        assert stores.rows() == []  # never an error row: not an LLM call


async def test_the_process_writer_takes_bedrock_records(client: Any, stores: Any) -> None:
    """What the caller's path keeps (dicts, bytes, botocore's parsed events) crosses to
    the writer process and is priced there."""
    async with ml.LoggingLLM(client, stores.db, stores.storage, writer="process") as llm:
        await llm.converse(modelId=US_HAIKU, messages=MESSAGES)
        await (await llm.invoke_model(modelId=US_HAIKU, body=CLAUDE_BODY))["body"].read()
        result = await llm.invoke_model_with_response_stream(modelId=US_HAIKU, body=CLAUDE_BODY)
        async for _ in result["body"]:
            pass
        await llm.flush()
        rows = sorted(stores.rows(), key=lambda r: str(r["operation"]))
    assert [(r["operation"], r["cost_status"]) for r in rows] == [
        ("converse", "computed"),
        ("invoke_model", "computed"),
        ("invoke_model_with_response_stream", "computed"),
    ]
    costs = [Decimal(str(r["total_cost"])) for r in rows]
    assert costs == [US_CONVERSE_COST, US_CLAUDE_COST, US_CLAUDE_COST]
