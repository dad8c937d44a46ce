"""FakeProvider drives the real openai / anthropic SDK clients end to end."""

from __future__ import annotations

import array
import base64
import itertools
import time
from typing import Any

import anthropic
import openai
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from majordomo_log import testing
from majordomo_log.testing import FakeProvider, fake_anthropic_client, fake_openai_client

MESSAGES: Any = [{"role": "user", "content": "hi"}]
CLAUDE = "claude-haiku-4-5"
OPENAI_USAGE: Any = {
    "prompt_tokens": 120,
    "cached_tokens": 100,
    "completion_tokens": 30,
    "reasoning_tokens": 12,
}
ANTHROPIC_USAGE: Any = {
    "input_tokens": 50,
    "output_tokens": 17,
    "cache_read_input_tokens": 400,
    "cache_creation_5m": 60,
    "cache_creation_1h": 40,
}


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider(
        openai_usage=OPENAI_USAGE, anthropic_usage=ANTHROPIC_USAGE, embedding_tokens=7
    )


def strict(model: Any, data: Any) -> None:
    """The SDKs build models leniently; strict validation proves every field is valid."""
    TypeAdapter(model).validate_python(data)


def assert_chat_usage(usage: Any) -> None:
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (120, 30, 150)
    assert usage.prompt_tokens_details.cached_tokens == 100
    assert usage.completion_tokens_details.reasoning_tokens == 12


def assert_anthropic_usage(usage: Any) -> None:
    assert (usage.input_tokens, usage.output_tokens) == (50, 17)
    assert usage.cache_read_input_tokens == 400
    assert usage.cache_creation_input_tokens == 100
    assert usage.cache_creation.ephemeral_5m_input_tokens == 60
    assert usage.cache_creation.ephemeral_1h_input_tokens == 40
    assert usage.service_tier == "standard"


# -- OpenAI chat completions -----------------------------------------------------------


async def test_chat_completion(provider: FakeProvider) -> None:
    client = fake_openai_client(provider, api_key="sk-test-123")
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    )
    completion = raw.parse()
    strict(ChatCompletion, completion.to_dict())
    assert raw.headers["x-request-id"].startswith("req_")
    assert completion.choices[0].message.content == provider.reply_text
    assert completion.model == "gpt-4o-mini"
    assert_chat_usage(completion.usage)
    req = provider.requests[-1]
    assert (req.method, req.path) == ("POST", "/v1/chat/completions")
    assert req.headers["authorization"] == "Bearer sk-test-123"
    assert req.body["messages"] == MESSAGES


async def test_chat_stream_with_usage(provider: FakeProvider) -> None:
    provider.stream_chunks = 3
    client = fake_openai_client(provider)
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    for chunk in chunks:
        strict(ChatCompletionChunk, chunk.to_dict())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == provider.reply_text
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == 3
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert_chat_usage(chunks[-1].usage)
    assert all(c.usage is None and "usage" in c.model_fields_set for c in chunks[:-1])


async def test_chat_stream_without_include_usage_has_no_usage(provider: FakeProvider) -> None:
    client = fake_openai_client(provider)
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert all(c.choices for c in chunks)
    assert all("usage" not in c.model_fields_set for c in chunks)


async def test_chat_stream_helper_accumulates(provider: FakeProvider) -> None:
    client = fake_openai_client(provider)
    async with client.chat.completions.stream(
        model="gpt-4o-mini", messages=MESSAGES, stream_options={"include_usage": True}
    ) as stream:
        final = await stream.get_final_completion()
    assert final.choices[0].message.content == provider.reply_text
    assert_chat_usage(final.usage)


async def test_served_model_and_suffix() -> None:
    provider = FakeProvider(model_suffix="-2024-07-18")
    client = fake_openai_client(provider)
    completion = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.model == "gpt-4o-mini-2024-07-18"
    provider.served_model = "gpt-4o-2024-08-06"
    completion = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert completion.model == "gpt-4o-2024-08-06"


async def test_omit_usage() -> None:
    provider = FakeProvider(omit_usage=True)
    client = fake_openai_client(provider)
    completion = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.usage is None
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    assert all(c.choices and "usage" not in c.model_fields_set for c in chunks)
    response = await client.responses.create(model="gpt-4.1", input="hi")
    assert response.usage is None
    message = await fake_anthropic_client(provider).messages.create(
        model=CLAUDE, max_tokens=50, messages=MESSAGES
    )
    assert "usage" not in message.model_fields_set


# -- OpenAI responses ------------------------------------------------------------------


def assert_responses_usage(usage: Any) -> None:
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (500, 40, 540)
    assert usage.input_tokens_details.cached_tokens == 300
    assert usage.output_tokens_details.reasoning_tokens == 25


RESPONSES_USAGE: Any = {
    "input_tokens": 500,
    "cached_tokens": 300,
    "output_tokens": 40,
    "reasoning_tokens": 25,
}


async def test_responses(provider: FakeProvider) -> None:
    provider.responses_usage = RESPONSES_USAGE
    client = fake_openai_client(provider)
    response = await client.responses.create(model="gpt-4.1", input="hi")
    strict(Response, response.to_dict())
    assert response.output_text == provider.reply_text
    assert response.status == "completed"
    assert_responses_usage(response.usage)
    assert provider.requests[-1].path == "/v1/responses"


async def test_responses_usage_defaults_to_openai_usage(provider: FakeProvider) -> None:
    response = await fake_openai_client(provider).responses.create(model="gpt-4.1", input="hi")
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (120, 30)


async def test_responses_stream(provider: FakeProvider) -> None:
    provider.responses_usage = RESPONSES_USAGE
    client = fake_openai_client(provider)
    stream = await client.responses.create(model="gpt-4.1", input="hi", stream=True)
    events = [event async for event in stream]
    for event in events:
        strict(ResponseStreamEvent, event.to_dict())
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * provider.stream_chunks,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == provider.reply_text
    completed = events[-1]
    assert completed.type == "response.completed"
    assert_responses_usage(completed.response.usage)


async def test_responses_stream_helper(provider: FakeProvider) -> None:
    client = fake_openai_client(provider)
    async with client.responses.stream(model="gpt-4.1", input="hi") as stream:
        final = await stream.get_final_response()
    assert final.output_text == provider.reply_text
    assert final.usage is not None and final.usage.total_tokens == 150


# -- OpenAI embeddings -----------------------------------------------------------------


async def test_embeddings_default_encoding_is_base64(provider: FakeProvider) -> None:
    client = fake_openai_client(provider)
    result = await client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    # The SDK asks for base64 when no format is given, then decodes it back to floats.
    assert provider.requests[-1].body["encoding_format"] == "base64"
    assert [len(d.embedding) for d in result.data] == [8, 8]
    assert all(isinstance(x, float) for x in result.data[0].embedding)
    floats = await client.embeddings.create(
        model="text-embedding-3-small", input=["a", "b"], encoding_format="float"
    )
    strict(CreateEmbeddingResponse, floats.to_dict())
    assert [d.embedding for d in floats.data] == [d.embedding for d in result.data]
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (7, 7)


async def test_embeddings_explicit_base64_and_dimensions(provider: FakeProvider) -> None:
    client = fake_openai_client(provider)
    result = await client.embeddings.create(
        model="text-embedding-3-small", input="a", encoding_format="base64", dimensions=4
    )
    raw = result.data[0].embedding
    assert isinstance(raw, str)  # explicit base64 is left for the caller to decode
    assert len(array.array("f", base64.b64decode(raw))) == 4


# -- Anthropic messages ----------------------------------------------------------------


async def test_anthropic_message(provider: FakeProvider) -> None:
    client = fake_anthropic_client(provider, api_key="sk-ant-test-123")
    raw = await client.messages.with_raw_response.create(
        model=CLAUDE, max_tokens=100, messages=MESSAGES
    )
    message = await raw.parse()
    strict(Message, message.to_dict())
    assert raw.headers["request-id"].startswith("req_")
    assert message.content[0].type == "text"
    assert message.content[0].text == provider.reply_text
    assert message.stop_reason == "end_turn"
    assert_anthropic_usage(message.usage)
    req = provider.requests[-1]
    assert req.path == "/v1/messages"
    assert "anthropic-version" in req.headers
    # anthropic 2.x sends api_key as a bearer token; older SDKs used x-api-key.
    key = "sk-ant-test-123"
    assert req.headers.get("authorization") == f"Bearer {key}" or req.headers["x-api-key"] == key


async def test_anthropic_raw_stream(provider: FakeProvider) -> None:
    client = fake_anthropic_client(provider)
    stream = await client.messages.create(
        model=CLAUDE, max_tokens=100, messages=MESSAGES, stream=True
    )
    events = [event async for event in stream]
    for event in events:
        strict(RawMessageStreamEvent, event.to_dict())
    types = [e.type for e in events]
    assert types == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * provider.stream_chunks,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start, delta = events[0], events[-2]
    assert start.type == "message_start" and delta.type == "message_delta"
    assert start.message.usage.output_tokens == 1
    assert start.message.usage.input_tokens == 50
    assert start.message.usage.cache_read_input_tokens == 400
    assert delta.usage.output_tokens == 17
    assert delta.usage.input_tokens == 50
    assert delta.delta.stop_reason == "end_turn"


async def test_anthropic_stream_helper(provider: FakeProvider) -> None:
    client = fake_anthropic_client(provider)
    async with client.messages.stream(model=CLAUDE, max_tokens=100, messages=MESSAGES) as stream:
        event_types = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert "text" in event_types and event_types[-1] == "message_stop"
    assert final.content[0].type == "text" and final.content[0].text == provider.reply_text
    assert_anthropic_usage(final.usage)

    async with client.messages.stream(model=CLAUDE, max_tokens=100, messages=MESSAGES) as stream:
        pieces = [piece async for piece in stream.text_stream]
    assert "".join(pieces) == provider.reply_text and len(pieces) == provider.stream_chunks


async def test_anthropic_requires_max_tokens(provider: FakeProvider) -> None:
    client = fake_anthropic_client(provider)
    with pytest.raises(anthropic.BadRequestError):
        await client.messages.create(
            model=CLAUDE,
            messages=MESSAGES,
            max_tokens=100,
            extra_body={"max_tokens": None},
        )


# -- errors, retries, timing, azure ----------------------------------------------------


async def test_openai_error_injection(provider: FakeProvider) -> None:
    client = fake_openai_client(provider)
    provider.fail_next(429)
    with pytest.raises(openai.RateLimitError) as exc:
        await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert exc.value.code == "rate_limit_exceeded"
    assert exc.value.request_id is not None and exc.value.request_id.startswith("req_")
    provider.fail_next(400, message="bad messages")
    with pytest.raises(openai.BadRequestError, match="bad messages"):
        await client.responses.create(model="gpt-4.1", input="hi")
    provider.fail_next(500)
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)


async def test_anthropic_error_injection(provider: FakeProvider) -> None:
    client = fake_anthropic_client(provider)
    provider.fail_next(500)
    with pytest.raises(anthropic.InternalServerError) as exc:
        await client.messages.create(model=CLAUDE, max_tokens=10, messages=MESSAGES)
    body = exc.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "api_error"
    assert body["request_id"] == exc.value.request_id == exc.value.response.headers["request-id"]
    provider.fail_next(429)
    with pytest.raises(anthropic.RateLimitError):
        async with client.messages.stream(model=CLAUDE, max_tokens=10, messages=MESSAGES) as stream:
            await stream.get_final_message()
    provider.fail_next(529)
    with pytest.raises(anthropic.OverloadedError):
        await client.messages.create(model=CLAUDE, max_tokens=10, messages=MESSAGES)


async def test_retries_recover(provider: FakeProvider) -> None:
    client = fake_openai_client(provider, max_retries=2)
    provider.fail_next(429, times=2)
    completion = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.usage is not None
    assert [r.headers["x-stainless-retry-count"] for r in provider.requests] == ["0", "1", "2"]

    provider.reset()
    aclient = fake_anthropic_client(provider, max_retries=2)
    provider.fail_next(500, times=2)
    message = await aclient.messages.create(model=CLAUDE, max_tokens=10, messages=MESSAGES)
    assert message.usage.output_tokens == 17
    assert len(provider.requests) == 3


async def test_unknown_path_is_provider_shaped_404(provider: FakeProvider) -> None:
    client = fake_openai_client(provider)
    with pytest.raises(openai.NotFoundError) as exc:
        await client.post("/nope", cast_to=object, body={})
    assert isinstance(exc.value.body, dict) and exc.value.body["type"] == "invalid_request_error"
    aclient = fake_anthropic_client(provider)
    with pytest.raises(anthropic.NotFoundError) as aexc:
        await aclient.post("/v1/nope", cast_to=object, body={})
    assert isinstance(aexc.value.body, dict) and aexc.value.body["type"] == "error"


async def test_stream_delays_time_to_first_token() -> None:
    provider = FakeProvider(first_chunk_delay=0.2, chunk_delay=0.05, stream_chunks=3)
    client = fake_openai_client(provider)
    started = time.perf_counter()
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    arrivals = []
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.perf_counter() - started)
    # Lower bounds only: a delay is never cut short, whatever the machine's speed, while
    # how much later than the delay a chunk arrives measures the machine, not the provider.
    # Each later chunk is delayed after the one before was read: the stream is paced, not
    # held back and sent at once.
    assert arrivals[0] >= 0.2 - 0.02
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert len(gaps) == 2 and all(gap >= 0.05 - 0.01 for gap in gaps), gaps


async def test_azure_client(provider: FakeProvider) -> None:
    client = fake_openai_client(provider, api_key="azure-key-123", azure=True)
    assert isinstance(client, openai.AsyncAzureOpenAI)
    completion = await client.chat.completions.create(model="my-deployment", messages=MESSAGES)
    assert_chat_usage(completion.usage)
    req = provider.requests[-1]
    assert req.path == "/openai/deployments/my-deployment/chat/completions"
    assert req.headers["api-key"] == "azure-key-123"
    assert "authorization" not in req.headers
    assert "api-version" in req.query

    stream = await client.chat.completions.create(
        model="my-deployment",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    assert_chat_usage(chunks[-1].usage)
    embedding = await client.embeddings.create(model="my-embedder", input="x")
    assert embedding.usage.prompt_tokens == 7
    response = await client.responses.create(model="my-deployment", input="hi")
    assert response.usage is not None


def test_the_public_names_stay() -> None:
    assert sorted(testing.__all__) == [
        "AnthropicUsage",
        "FakeProvider",
        "OpenAIUsage",
        "ReceivedRequest",
        "ResponsesUsage",
        "fake_anthropic_client",
        "fake_openai_client",
        "fake_sync_anthropic_client",
        "fake_sync_openai_client",
        "used_api_keys",
    ]
    for name in (*testing.__all__, "DEFAULT_OPENAI_KEY", "AZURE_ENDPOINT", "DEFAULT_REPLY"):
        assert getattr(testing, name) is not None


async def test_used_api_keys_has_the_keys_clients_were_given_and_requests_carried() -> None:
    provider = FakeProvider()
    client = fake_anthropic_client(provider, api_key="sk-ant-given")
    await client.with_options(api_key="sk-ant-sent").messages.create(
        model="claude-haiku-4-5", max_tokens=5, messages=MESSAGES
    )
    azure = fake_openai_client(provider, api_key="azure-sent", azure=True)
    await azure.embeddings.create(model="my-embedder", input="x")
    assert {"sk-ant-given", "sk-ant-sent", "azure-sent"} <= testing.used_api_keys()
