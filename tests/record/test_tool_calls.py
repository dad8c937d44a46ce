"""``tool_call_count``: the tool calls a model asked the caller to run, counted off the
response in the background, for plain and streamed calls through the real openai and
anthropic SDKs, and NULL (never 0) for a response of no known shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from anthropic.types import Message
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

import majordomo_log as ml
from majordomo_log.record.tool_calls import count_tool_calls

CHAT = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": f"call_{n}",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": json.dumps({"n": n})},
                    }
                    for n in range(2)
                ],
            },
        },
        {  # a second choice (n=2) asking for one more
            "index": 1,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "x", "arguments": "{}"}}
                ],
            },
        },
    ],
    "usage": {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30},
}
RESPONSE = {
    "id": "resp_1",
    "object": "response",
    "created_at": 1,
    "status": "completed",
    "model": "gpt-4o-2024-08-06",
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [],
    "output": [
        {  # run by the provider: not counted
            "type": "web_search_call",
            "id": "ws_1",
            "status": "completed",
            "action": {"type": "search", "query": "q"},
        },
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_1",
            "name": "lookup",
            "arguments": "{}",
            "status": "completed",
        },
        {
            "type": "custom_tool_call",
            "id": "ct_1",
            "call_id": "call_2",
            "name": "grep",
            "input": "x",
        },
    ],
    "usage": {
        "input_tokens": 20,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 10,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 30,
    },
}
MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-haiku-4-5-20251001",
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "content": [
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "tu_1", "name": "lookup", "input": {"q": "a"}},
        {"type": "server_tool_use", "id": "st_1", "name": "web_search", "input": {"q": "b"}},
        {"type": "tool_use", "id": "tu_2", "name": "lookup", "input": {"q": "c"}},
    ],
    "usage": {"input_tokens": 20, "output_tokens": 10},
}


def test_each_shape_counts_the_calls_the_caller_runs() -> None:
    assert count_tool_calls(ChatCompletion.model_validate(CHAT)) == 3
    assert count_tool_calls(Response.model_validate(RESPONSE)) == 2  # not the web search
    assert count_tool_calls(Message.model_validate(MESSAGE)) == 2  # not server_tool_use
    assert count_tool_calls(CHAT) == 3 and count_tool_calls(MESSAGE) == 2  # dicts as well
    plain = {**CHAT, "choices": [{"message": {"role": "assistant", "content": "hi"}}]}
    assert count_tool_calls(plain) == 0
    legacy = {"choices": [{"message": {"function_call": {"name": "f", "arguments": "{}"}}}]}
    assert count_tool_calls(legacy) == 1


@pytest.mark.parametrize(
    "response",
    [
        None,
        "text",
        {"chunks": []},
        {"output": "text"},  # neither Responses' list nor Bedrock's message
        CreateEmbeddingResponse.model_validate(
            {
                "object": "list",
                "data": [],
                "model": "m",
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            }
        ),
    ],
    ids=["none", "text", "dict", "output-text", "embeddings"],
)
def test_a_shape_no_function_knows_is_null_not_zero(response: Any) -> None:
    assert count_tool_calls(response) is None


# -- through the SDKs and the writer ---------------------------------------------------


def _sse(events: list[tuple[str | None, Any]]) -> bytes:
    out = []
    for name, data in events:
        text = data if isinstance(data, str) else json.dumps(data)
        out.append((f"event: {name}\n" if name else "") + f"data: {text}\n\n")
    return "".join(out).encode()


def _chat_stream() -> bytes:
    head = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def call(index: int, **fields: Any) -> dict[str, Any]:
        return chunk({"tool_calls": [{"index": index, **fields}]})

    events: list[tuple[str | None, Any]] = [
        (None, chunk({"role": "assistant", "content": None})),
        (None, call(0, id="call_a", type="function", function={"name": "f", "arguments": ""})),
        (None, call(1, id="call_b", type="function", function={"name": "g", "arguments": ""})),
        (None, call(0, function={"arguments": '{"a":'})),
        (None, call(1, function={"arguments": "{}"})),
        (None, call(0, function={"arguments": " 1}"})),
        (None, chunk({}, "tool_calls")),
        (None, {**head, "choices": [], "usage": CHAT["usage"]}),
        (None, "[DONE]"),
    ]
    return _sse(events)


def _messages_stream() -> bytes:
    start = {**MESSAGE, "content": [], "stop_reason": None}
    tool = {"type": "tool_use", "id": "tu_9", "name": "lookup", "input": {}}
    return _sse(
        [
            ("message_start", {"type": "message_start", "message": start}),
            (
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": tool},
            ),
            *[
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "input_json_delta", "partial_json": piece},
                    },
                )
                for piece in ('{"q": ', '"streamed"}')
            ],
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                    "usage": {"output_tokens": 12},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
    )


def _answer(request: httpx2.Request) -> httpx2.Response:
    body = json.loads(request.content)
    stream = bool(body.get("stream"))
    sse = {"content-type": "text/event-stream"}
    if request.url.path.endswith("/chat/completions"):
        if stream:
            return httpx2.Response(200, headers=sse, content=_chat_stream())
        return httpx2.Response(200, json=CHAT)
    if request.url.path.endswith("/responses"):
        return httpx2.Response(200, json=RESPONSE)
    if request.url.path.endswith("/embeddings"):
        usage = {"prompt_tokens": 1, "total_tokens": 1}
        data = [{"object": "embedding", "index": 0, "embedding": [0.5]}]
        return httpx2.Response(
            200, json={"object": "list", "data": data, "model": "m", "usage": usage}
        )
    if stream:
        return httpx2.Response(200, headers=sse, content=_messages_stream())
    return httpx2.Response(200, json=MESSAGE)


async def test_plain_and_streamed_calls_log_their_tool_calls(tmp_path: Path) -> None:
    transport = httpx2.MockTransport(_answer)
    oai = openai.AsyncOpenAI(
        api_key="sk-tools-test",
        base_url="http://tools.fake/v1",
        http_client=httpx2.AsyncClient(transport=transport),
    )
    claude = anthropic.AsyncAnthropic(
        api_key="sk-ant-tools-test",
        base_url="http://tools.fake",
        http_client=httpx2.AsyncClient(transport=transport),
    )
    db = await ml.SqliteAdapter.create(tmp_path / "log.db")
    storage = await ml.FileStorageAdapter.create(tmp_path / "bodies")
    llm = ml.LoggingLLM(oai, db, storage, close_stores=False)
    llm_claude = ml.LoggingLLM(claude, db, storage, close_stores=False)
    ids = {}
    chat = await llm.chat.completions.create(model="gpt-4o", messages=[])
    ids["chat"] = ml.call_info(chat).request_id
    stream = await llm.chat.completions.create(model="gpt-4o", messages=[], stream=True)
    chunks = [chunk async for chunk in stream]
    ids["chat stream"] = ml.call_info(stream).request_id
    response = await llm.responses.create(model="gpt-4o", input="hi")
    ids["responses"] = ml.call_info(response).request_id
    message = await llm_claude.messages.create(model="claude-haiku-4-5", max_tokens=9, messages=[])
    ids["messages"] = ml.call_info(message).request_id
    events = await llm_claude.messages.create(
        model="claude-haiku-4-5", max_tokens=9, messages=[], stream=True
    )
    ids["messages stream"] = ml.call_info(events).request_id
    assert len([e async for e in events]) == 7
    embeddings = await llm.embeddings.create(
        model="text-embedding-3-small", input="x", encoding_format="float"
    )
    ids["embeddings"] = ml.call_info(embeddings).request_id
    await llm.close()
    await llm_claude.close()
    assert len(chunks) == 7  # the usage-only chunk the wrapper asked for stays hidden
    rows = await db.fetch("SELECT request_id, tool_call_count, body_ref FROM llm_requests")
    counts = {r["request_id"]: r["tool_call_count"] for r in rows}
    assert {name: counts[rid] for name, rid in ids.items()} == {
        "chat": 3,
        "chat stream": 2,
        "responses": 2,
        "messages": 2,
        "messages stream": 1,
        "embeddings": None,
    }
    # the streamed tool_use block is in the stored body, its input put back together
    ref = next(r["body_ref"] for r in rows if r["request_id"] == ids["messages stream"])
    body = await storage.get(ref)
    (block,) = body["response"]["content"]
    assert {k: block[k] for k in ("type", "id", "name", "input")} == {
        "type": "tool_use",
        "id": "tu_9",
        "name": "lookup",
        "input": {"q": "streamed"},
    }
    await db.close()
    await storage.close()


def test_a_response_that_cannot_be_read_costs_only_its_count() -> None:
    from majordomo_log.record.call import CallContext, CallRecord
    from majordomo_log.record.pricing import default_prices
    from majordomo_log.record.rows import build_row
    from majordomo_log.record.usage import Usage

    class Hostile:
        @property
        def choices(self) -> Any:
            raise RuntimeError("no")

    ctx = CallContext(prices=default_prices(), api_key_alias=None, tags={}, secrets=())
    rec = CallRecord(None, 1.7e9, 1.0, "openai", "chat.completions", "gpt-4o", False, {}, None, ctx)
    rec.t_end, rec.response, rec.usage = 1.5, Hostile(), Usage.inclusive(10, 5)
    row = build_row(rec, None)
    assert row.tool_call_count is None
    assert row.cost_status == "computed" and row.total_cost is not None


def test_gemini_and_bedrock_tool_calls_are_counted() -> None:
    from google.genai import types

    gemini = types.GenerateContentResponse.model_validate(
        {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [
                            {"text": "Looking both up."},
                            {"function_call": {"name": "weather", "args": {"city": "Oslo"}}},
                            {"function_call": {"name": "time", "args": {"tz": "CET"}}},
                        ],
                    }
                }
            ]
        }
    )
    assert count_tool_calls(gemini) == 2
    plain = types.GenerateContentResponse.model_validate(
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]}}]}
    )
    assert count_tool_calls(plain) == 0
    converse = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"text": "calling"},
                    {"toolUse": {"toolUseId": "t1", "name": "weather", "input": {}}},
                ],
            }
        },
        "stopReason": "tool_use",
    }
    assert count_tool_calls(converse) == 1
    invoke = {
        "ResponseMetadata": {},
        "body": {
            "type": "message",
            "content": [
                {"type": "tool_use", "id": "a", "name": "x", "input": {}},
                {"type": "tool_use", "id": "b", "name": "y", "input": {}},
            ],
        },
    }
    assert count_tool_calls(invoke) == 2
    assert count_tool_calls({"ResponseMetadata": {}, "body": "not json"}) is None
