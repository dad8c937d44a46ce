"""LoggingLLM around the real openai SDK client, driven by the in-process FakeProvider."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import hmac
import json
import re
import uuid
from decimal import Decimal
from typing import Any

import httpx2
import openai
import pytest
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

import majordomo_log as ml
from majordomo_log.testing import FakeProvider, fake_openai_client

MESSAGES: Any = [{"role": "user", "content": "hi"}]
GPT4O_COST = Decimal("0.005")  # 600*2.50 + 400*1.25 + 200*10 + 100*10 per 1M tokens


def new_llm(provider: FakeProvider, stores: Any, **kwargs: Any) -> ml.LoggingLLM[Any]:
    client_kwargs = {k: kwargs.pop(k) for k in ("api_key", "max_retries", "azure") if k in kwargs}
    client = fake_openai_client(provider, **client_kwargs)
    return ml.LoggingLLM(client, stores.db, stores.storage, **kwargs)


def hold_answers(provider: FakeProvider) -> tuple[asyncio.Event, asyncio.Event]:
    """``(arrived, release)``: a client made from ``provider`` after this call sets
    ``arrived`` when its request reaches the provider, and gets no answer until
    ``release`` is set. The call is in flight for exactly as long as the test says,
    however slow the machine."""
    arrived, release = asyncio.Event(), asyncio.Event()
    answer = provider.transport

    async def held(request: httpx2.Request) -> httpx2.Response:
        arrived.set()
        await release.wait()
        return await answer.handle_async_request(request)

    provider.transport = httpx2.MockTransport(held)
    return arrived, release


async def until_set(event: asyncio.Event, what: str) -> None:
    """Wait for ``event``. The deadline is only a safety net, far beyond any machine's
    slowness, so that a bug fails naming what never happened instead of hanging."""
    try:
        await asyncio.wait_for(event.wait(), 120)
    except asyncio.TimeoutError:
        pytest.fail(f"hang: {what} never happened")


def assert_gpt4o_buckets(row: dict[str, Any]) -> None:
    assert row["input_tokens"] == 600
    assert row["cache_read_tokens"] == 400
    assert row["cache_write_5m_tokens"] == 0
    assert row["cache_write_1h_tokens"] == 0
    assert row["output_tokens"] == 200
    assert row["reasoning_tokens"] == 100
    assert row["total_tokens"] == 1300


def dec(value: Any) -> Decimal:
    return Decimal(str(value))


# -- plain calls -------------------------------------------------------------------------


async def test_chat_completion_row_and_body(provider: FakeProvider, stores: Any) -> None:
    provider.model_suffix = "-2024-08-06"
    llm = new_llm(provider, stores)
    resp = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES, temperature=0.2)
    assert isinstance(resp, ChatCompletion)
    assert resp.choices[0].message.content == provider.reply_text
    info = ml.call_info(resp)
    await llm.flush()

    row = stores.one_row()
    assert row["request_id"] == info.request_id
    assert row["provider"] == "openai"
    assert row["operation"] == "chat.completions"
    assert row["model"] == "gpt-4o"
    assert row["served_model"] == "gpt-4o-2024-08-06"
    assert row["status"] == "ok"
    assert row["stream"] == 0
    assert row["error_type"] is None and row["error_message"] is None
    assert_gpt4o_buckets(row)
    assert row["cost_status"] == "computed"
    assert info.total_cost == GPT4O_COST
    assert dec(row["total_cost"]) == info.total_cost
    assert dec(row["input_cost"]) == Decimal("0.0015")
    assert dec(row["cache_read_cost"]) == Decimal("0.0005")
    assert dec(row["output_cost"]) == Decimal("0.002")
    assert dec(row["reasoning_cost"]) == Decimal("0.001")
    assert row["currency"] == "USD"
    assert row["price_version"] == "gpt-4o@2024-08-06"
    assert row["provider_request_id"] == resp._request_id
    assert row["provider_request_id"].startswith("req_")
    assert row["latency_ms"] > 0
    assert row["time_to_first_token_ms"] is None

    body = await stores.body(row)
    assert body["request_id"] == row["request_id"]
    assert body["operation"] == "chat.completions"
    assert body["request"] == {"model": "gpt-4o", "messages": MESSAGES, "temperature": 0.2}
    assert body["response"]["id"] == resp.id
    assert body["response"]["choices"][0]["message"]["content"] == provider.reply_text
    assert body["response"]["usage"]["prompt_tokens"] == 1000
    await llm.close()


async def test_responses_plain(provider: FakeProvider, stores: Any) -> None:
    llm = new_llm(provider, stores)
    resp = await llm.responses.create(model="gpt-4o", input="hello there")
    assert isinstance(resp, Response)
    assert resp.output_text == provider.reply_text
    await llm.flush()
    row = stores.one_row()
    assert (row["operation"], row["model"], row["served_model"]) == (
        "responses",
        "gpt-4o",
        "gpt-4o",
    )
    assert (row["status"], row["stream"]) == ("ok", 0)
    assert_gpt4o_buckets(row)
    assert row["cost_status"] == "computed"
    assert dec(row["total_cost"]) == ml.call_info(resp).total_cost == GPT4O_COST
    assert row["provider_request_id"] == resp._request_id
    body = await stores.body(row)
    assert body["request"] == {"model": "gpt-4o", "input": "hello there"}
    assert body["response"]["id"] == resp.id
    assert body["response"]["usage"]["input_tokens"] == 1000
    await llm.close()


async def test_embeddings(provider: FakeProvider, stores: Any) -> None:
    llm = new_llm(provider, stores)
    resp = await llm.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert isinstance(resp, CreateEmbeddingResponse)
    assert len(resp.data) == 2
    await llm.flush()
    row = stores.one_row()
    assert (row["operation"], row["model"], row["status"], row["stream"]) == (
        "embeddings",
        "text-embedding-3-small",
        "ok",
        0,
    )
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (7, 0, 7)
    assert row["cost_status"] == "computed"
    assert dec(row["total_cost"]) == Decimal("0.00000014") == ml.call_info(resp).total_cost
    assert row["price_version"] == "text-embedding-3-small@2024-01-25"
    body = await stores.body(row)
    assert body["request"] == {"model": "text-embedding-3-small", "input": ["a", "b"]}
    assert len(body["response"]["data"]) == 2
    await llm.close()


async def test_azure_client_provider_column(provider: FakeProvider, stores: Any) -> None:
    llm = new_llm(provider, stores, azure=True)
    assert isinstance(llm.client, openai.AsyncAzureOpenAI)
    resp = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert isinstance(resp, ChatCompletion)
    assert "/openai/deployments/gpt-4o/" in provider.requests[-1].path
    await llm.flush()
    row = stores.one_row()
    assert row["provider"] == "azure"
    assert row["operation"] == "chat.completions"
    assert_gpt4o_buckets(row)
    assert row["cost_status"] == "computed"
    assert dec(row["total_cost"]) == GPT4O_COST
    await llm.close()


def sdk_subclass(cls: type[openai.AsyncOpenAI], provider: FakeProvider) -> openai.AsyncOpenAI:
    """An application's subclass of the SDK client, wired to the fake provider."""
    sdk_client = fake_openai_client(provider)
    return cls(
        api_key=sdk_client.api_key,
        base_url=sdk_client.base_url,
        http_client=httpx2.AsyncClient(transport=provider.transport),
        max_retries=0,
    )


class ApplicationOpenAI(openai.AsyncOpenAI):
    """A client subclassed in the application's own module (here, this test module)."""


async def test_client_subclassed_outside_the_sdk_is_logged(
    provider: FakeProvider, stores: Any
) -> None:
    client = sdk_subclass(ApplicationOpenAI, provider)
    llm = ml.LoggingLLM(client, stores.db, stores.storage)
    assert repr(llm.chat).startswith("<logged")  # a view that wraps, not the SDK's object
    resp = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    await llm.flush()
    row = stores.one_row()
    assert row["request_id"] == ml.call_info(resp).request_id
    assert row["provider"] == "openai"
    assert_gpt4o_buckets(row)
    assert dec(row["total_cost"]) == GPT4O_COST
    await llm.close()


class GroqViaOpenAI(openai.AsyncOpenAI):
    provider = "groq"  # an OpenAI-compatible endpoint, named by the application


class ApplicationHttpClient(httpx2.AsyncClient):
    """Not an LLM SDK: its base class's objects are not resources to wrap."""


async def test_subclass_names_its_provider_and_other_bases_pass_through(
    provider: FakeProvider, stores: Any
) -> None:
    client = sdk_subclass(GroqViaOpenAI, provider)
    llm = ml.LoggingLLM(client, stores.db, stores.storage, close_stores=False)
    await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    await llm.flush()
    assert stores.one_row()["provider"] == "groq"
    await llm.close()

    http = ApplicationHttpClient(base_url="http://example.test")
    wrapped = ml.LoggingLLM(http, stores.db, close_stores=False)
    assert isinstance(wrapped.base_url, httpx2.URL)
    assert wrapped.base_url == httpx2.URL("http://example.test")
    await wrapped.close()
    await http.aclose()


# -- chat streaming ------------------------------------------------------------------------


def comparable(chunk: Any) -> dict[str, Any]:
    """A chunk's content without the per-request random id and timestamp."""
    data = chunk.model_dump()
    data.pop("id")
    data.pop("created")
    return data


async def test_chat_stream_hidden_usage_chunk(provider: FakeProvider, stores: Any) -> None:
    raw_client = fake_openai_client(provider)
    raw = await raw_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    expected = [chunk async for chunk in raw]
    assert all(c.choices for c in expected)

    llm = new_llm(provider, stores)
    stream = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    got = [chunk async for chunk in stream]
    assert [type(c) for c in got] == [type(c) for c in expected]
    assert [comparable(c) for c in got] == [comparable(c) for c in expected]
    assert all(c.choices for c in got)  # the usage-only chunk the wrapper asked for is hidden
    assert "".join(c.choices[0].delta.content or "" for c in got) == provider.reply_text

    # The wrapper asked the provider for usage on the caller's behalf ...
    assert provider.requests[-1].body["stream_options"] == {"include_usage": True}
    info = ml.call_info(stream)
    await llm.flush()
    row = stores.one_row()
    assert (row["operation"], row["status"], row["stream"]) == ("chat.completions", "ok", 1)
    assert row["served_model"] == "gpt-4o"
    assert_gpt4o_buckets(row)
    assert row["cost_status"] == "computed"
    assert dec(row["total_cost"]) == info.total_cost == GPT4O_COST
    assert info.request_id == row["request_id"]
    # ... but the stored request is what the caller sent.
    body = await stores.body(row)
    assert body["request"] == {"model": "gpt-4o", "messages": MESSAGES, "stream": True}
    assert "stream_options" not in body["request"]
    assert body["response"]["choices"][0]["message"]["content"] == provider.reply_text
    assert body["response"]["usage"]["prompt_tokens"] == 1000
    await llm.close()


async def test_chat_stream_caller_asked_for_usage_sees_it(
    provider: FakeProvider, stores: Any
) -> None:
    options = {"include_usage": True}
    raw = await fake_openai_client(provider).chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options=options
    )
    expected = [chunk async for chunk in raw]

    llm = new_llm(provider, stores)
    stream = await llm.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options=options
    )
    got = [chunk async for chunk in stream]
    assert [comparable(c) for c in got] == [comparable(c) for c in expected]
    assert got[-1].choices == []
    assert got[-1].usage is not None and got[-1].usage.prompt_tokens == 1000
    await llm.flush()
    row = stores.one_row()
    assert_gpt4o_buckets(row)
    assert row["cost_status"] == "computed"
    body = await stores.body(row)
    assert body["request"]["stream_options"] == {"include_usage": True}
    await llm.close()


async def test_chat_stream_keeps_callers_other_stream_options(
    provider: FakeProvider, stores: Any
) -> None:
    """The caller passed stream_options without include_usage: the wrapper adds
    include_usage for the provider, but the stored request must still hold the
    caller's own options (only the added key may be left out)."""
    llm = new_llm(provider, stores)
    stream = await llm.chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_obfuscation": False},
    )
    got = [chunk async for chunk in stream]
    assert all(c.choices for c in got)
    assert provider.requests[-1].body["stream_options"] == {
        "include_obfuscation": False,
        "include_usage": True,
    }
    await llm.flush()
    row = stores.one_row()
    assert_gpt4o_buckets(row)
    body = await stores.body(row)
    assert body["request"].get("stream_options") == {"include_obfuscation": False}
    await llm.close()


async def test_chat_stream_ttft_and_latency(provider: FakeProvider, stores: Any) -> None:
    provider.first_chunk_delay = 0.12
    provider.chunk_delay = 0.04
    provider.stream_chunks = 4
    llm = new_llm(provider, stores)
    stream = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    async for _ in stream:
        pass
    await llm.flush()
    row = stores.one_row()
    ttft, latency = row["time_to_first_token_ms"], row["latency_ms"]
    assert ttft is not None
    assert ttft < latency
    assert latency >= 120 + 3 * 40 - 5  # first delay + three later chunk delays
    assert latency - ttft >= 3 * 40 - 5  # the later chunks came after the first token
    await llm.close()


async def test_chat_stream_ttft_measures_first_content_token(
    provider: FakeProvider, stores: Any
) -> None:
    """first_chunk_delay is the wait before the first content delta; the role-only
    chunk before it carries no token, so time-to-first-TOKEN is at least that delay."""
    provider.first_chunk_delay = 0.15
    llm = new_llm(provider, stores)
    stream = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    async for _ in stream:
        pass
    await llm.flush()
    row = stores.one_row()
    assert row["time_to_first_token_ms"] >= 150 - 5
    await llm.close()


async def test_chat_stream_provider_request_id(provider: FakeProvider, stores: Any) -> None:
    llm = new_llm(provider, stores)
    stream = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    header_id = stream.response.headers["x-request-id"]
    async for _ in stream:
        pass
    await llm.flush()
    row = stores.one_row()
    assert row["provider_request_id"] == header_id
    await llm.close()


# -- responses streaming --------------------------------------------------------------------


async def test_responses_stream_ttft_measures_first_content_token(
    provider: FakeProvider, stores: Any
) -> None:
    """response.created / in_progress arrive before any token; the first
    output_text.delta comes after first_chunk_delay."""
    provider.first_chunk_delay = 0.15
    llm = new_llm(provider, stores)
    stream = await llm.responses.create(model="gpt-4o", input="hi", stream=True)
    async for _ in stream:
        pass
    await llm.flush()
    row = stores.one_row()
    assert row["time_to_first_token_ms"] >= 150 - 5
    await llm.close()


async def test_responses_stream(provider: FakeProvider, stores: Any) -> None:
    provider.first_chunk_delay = 0.05
    provider.chunk_delay = 0.02
    raw = await fake_openai_client(provider).responses.create(
        model="gpt-4o", input="hi", stream=True
    )
    expected_types = [event.type async for event in raw]

    llm = new_llm(provider, stores)
    stream = await llm.responses.create(model="gpt-4o", input="hi", stream=True)
    events = [event async for event in stream]
    assert [e.type for e in events] == expected_types
    assert events[-1].type == "response.completed"
    info = ml.call_info(stream)
    await llm.flush()
    row = stores.one_row()
    assert (row["operation"], row["status"], row["stream"]) == ("responses", "ok", 1)
    assert row["served_model"] == "gpt-4o"
    assert_gpt4o_buckets(row)
    assert row["cost_status"] == "computed"
    assert dec(row["total_cost"]) == info.total_cost == GPT4O_COST
    assert row["time_to_first_token_ms"] is not None
    assert row["time_to_first_token_ms"] < row["latency_ms"]
    body = await stores.body(row)
    assert body["request"] == {"model": "gpt-4o", "input": "hi", "stream": True}
    assert body["response"]["id"] == events[-1].response.id
    assert body["response"]["status"] == "completed"
    await llm.close()


async def test_responses_stream_helper_is_logged(provider: FakeProvider, stores: Any) -> None:
    """``client.responses.stream(...)`` is the SDK's streaming helper for a known
    operation: its call costs money and must be logged like stream=True."""
    llm = new_llm(provider, stores)
    async with llm.responses.stream(model="gpt-4o", input="hi") as stream:
        final = await stream.get_final_response()
    assert final.output_text == provider.reply_text
    await llm.flush()
    rows = stores.rows()
    assert len(rows) == 1
    assert rows[0]["operation"] == "responses"
    assert rows[0]["input_tokens"] == 600
    await llm.close()


# -- early abandonment ----------------------------------------------------------------------


async def test_abandoned_stream_collected_by_gc(provider: FakeProvider, stores: Any) -> None:
    llm = new_llm(provider, stores)
    stream = await llm.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    async for chunk in stream:
        if chunk.usage is not None:  # usage seen, then the caller walks away before [DONE]
            break
    request_id = ml.call_info(stream).request_id
    del stream
    gc.collect()
    await asyncio.sleep(0)
    await llm.flush()
    row = stores.one_row()
    assert row["request_id"] == request_id
    assert row["status"] == "incomplete"
    assert_gpt4o_buckets(row)
    assert row["cost_status"] == "incomplete"
    assert dec(row["total_cost"]) == GPT4O_COST
    await llm.close()
    gc.collect()
    assert len(stores.rows()) == 1


async def test_abandoned_stream_without_usage_seen(provider: FakeProvider, stores: Any) -> None:
    llm = new_llm(provider, stores)
    stream = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    async for _ in stream:
        break
    del stream
    gc.collect()
    await asyncio.sleep(0)
    await llm.flush()
    row = stores.one_row()
    assert row["status"] == "incomplete"
    assert row["input_tokens"] is None
    assert row["total_cost"] is None
    assert row["cost_status"] == "incomplete"  # not "missing_usage": the stream was cut short
    await llm.close()


async def test_stream_close_early(provider: FakeProvider, stores: Any) -> None:
    llm = new_llm(provider, stores)
    stream = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    first = await stream.__anext__()
    assert first.choices[0].delta.role == "assistant"
    await stream.close()
    await stream.close()  # a second close logs nothing more
    await llm.flush()
    row = stores.one_row()
    assert (row["status"], row["stream"]) == ("incomplete", 1)
    del stream
    gc.collect()
    await llm.flush()
    assert len(stores.rows()) == 1
    await llm.close()


async def test_stream_async_with_exit_early(provider: FakeProvider, stores: Any) -> None:
    llm = new_llm(provider, stores)
    async with await llm.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True
    ) as stream:
        async for _ in stream:
            break
    await llm.flush()
    row = stores.one_row()
    assert row["status"] == "incomplete"
    del stream
    gc.collect()
    await llm.flush()
    assert len(stores.rows()) == 1
    await llm.close()


async def test_stream_fully_consumed_then_closed_stays_ok(
    provider: FakeProvider, stores: Any
) -> None:
    llm = new_llm(provider, stores)
    async with await llm.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True
    ) as stream:
        async for _ in stream:
            pass
    await stream.close()
    await llm.flush()
    row = stores.one_row()
    assert row["status"] == "ok"
    assert row["cost_status"] == "computed"
    await llm.close()


# -- errors -------------------------------------------------------------------------------


async def test_rate_limit_error_propagates_and_is_logged(
    provider: FakeProvider, stores: Any
) -> None:
    llm = new_llm(provider, stores)
    provider.fail_next(status=429)
    with pytest.raises(openai.RateLimitError) as excinfo:
        await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert type(excinfo.value) is openai.RateLimitError
    assert excinfo.value.status_code == 429
    await llm.flush()
    row = stores.one_row()
    assert row["status"] == "error"
    assert row["error_type"] == "RateLimitError"
    assert "Rate limit reached" in row["error_message"]
    assert row["total_cost"] is None
    assert row["input_tokens"] is None
    assert row["cost_status"] == "error"
    assert row["provider_request_id"] == excinfo.value.request_id
    assert row["provider_request_id"].startswith("req_")
    body = await stores.body(row)
    assert body["error"]["type"] == "RateLimitError"
    assert body["request"] == {"model": "gpt-4o", "messages": MESSAGES}
    await llm.close()


async def test_stream_request_error_is_logged(provider: FakeProvider, stores: Any) -> None:
    llm = new_llm(provider, stores)
    provider.fail_next(status=500)
    with pytest.raises(openai.InternalServerError):
        await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    await llm.flush()
    row = stores.one_row()
    assert (row["status"], row["stream"], row["error_type"]) == ("error", 1, "InternalServerError")
    body = await stores.body(row)
    assert "stream_options" not in body["request"]
    await llm.close()


async def test_retries_inside_sdk_give_one_ok_row(provider: FakeProvider, stores: Any) -> None:
    llm = new_llm(provider, stores, max_retries=2)
    provider.fail_next(status=429, times=2)
    resp = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert isinstance(resp, ChatCompletion)
    assert len(provider.requests) == 3
    await llm.flush()
    row = stores.one_row()
    assert row["status"] == "ok"
    assert row["error_type"] is None
    assert row["cost_status"] == "computed"
    await llm.close()


# -- capture as sent ----------------------------------------------------------------------


async def test_request_captured_as_sent(provider: FakeProvider, stores: Any) -> None:
    llm = new_llm(provider, stores)
    messages: list[dict[str, Any]] = [{"role": "user", "content": "first"}]
    resp = await llm.chat.completions.create(model="gpt-4o", messages=messages)
    messages.append({"role": "assistant", "content": resp.choices[0].message.content})
    messages.append({"role": "user", "content": "second"})
    messages[0]["content"] = "edited"
    await llm.flush()
    body = await stores.body(stores.one_row())
    assert body["request"]["messages"] == [{"role": "user", "content": "first"}]
    await llm.close()


async def test_request_captured_as_sent_when_mutated_during_call(
    provider: FakeProvider, stores: Any
) -> None:
    """The stored request is the one that went over the wire, even if the caller's
    list changes while the call is in flight (a chat history shared between tasks)."""
    arrived, release = hold_answers(provider)
    llm = new_llm(provider, stores)
    messages: list[dict[str, Any]] = [{"role": "user", "content": "first"}]
    task = asyncio.create_task(llm.chat.completions.create(model="gpt-4o", messages=messages))
    await until_set(arrived, "the request reaching the provider")
    messages.append({"role": "user", "content": "added while in flight"})
    release.set()
    await task
    assert provider.requests[-1].body["messages"] == [{"role": "user", "content": "first"}]
    await llm.flush()
    body = await stores.body(stores.one_row())
    assert body["request"]["messages"] == [{"role": "user", "content": "first"}]
    await llm.close()


# -- API keys -----------------------------------------------------------------------------

SECRET_KEY = "sk-proj-TOPSECRET-0123456789abcdef"


def assert_secret_absent(stores: Any, secret: str) -> None:
    needle = secret.encode()
    for row in stores.rows():
        for column, value in row.items():
            assert secret not in str(value), f"{secret!r} found in column {column}"
    files = stores.raw_body_bytes()
    assert files, "no body was stored"
    for raw, unzipped in files:
        assert needle not in raw
        assert needle not in unzipped


async def test_api_key_never_stored(
    provider: FakeProvider, stores: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAJORDOMO_LOG_KEY_SECRET", raising=False)
    llm = new_llm(provider, stores, api_key=SECRET_KEY)
    await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    stream = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    async for _ in stream:
        pass
    # A provider that echoes the key in its error message (and the SDK then in str(exc)).
    provider.fail_next(status=401, message=f"Incorrect API key provided: {SECRET_KEY}.")
    with pytest.raises(openai.AuthenticationError):
        await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    # The key passed explicitly in a request body field.
    await llm.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": f"my key is {SECRET_KEY}"}]
    )
    await llm.flush()
    rows = stores.rows()
    assert len(rows) == 4
    assert_secret_absent(stores, SECRET_KEY)
    error_row = next(r for r in rows if r["status"] == "error")
    assert "[REDACTED]" in error_row["error_message"]

    hashes = {r["api_key_hash"] for r in rows}
    assert len(hashes) == 1
    (key_hash,) = hashes
    assert re.fullmatch(r"[0-9a-f]{64}", key_hash)
    expected = hmac.new(
        b"majordomo-log-default-key-secret-v1", SECRET_KEY.encode(), hashlib.sha256
    ).hexdigest()
    assert key_hash == expected
    assert key_hash != hashlib.sha256(SECRET_KEY.encode()).hexdigest()  # keyed, not a bare hash
    await llm.close()


async def test_api_key_hash_equal_for_same_key_differs_for_other(
    provider: FakeProvider, stores: Any
) -> None:
    llm1 = new_llm(provider, stores, api_key="sk-key-one")
    llm2 = new_llm(provider, stores, api_key="sk-key-one")
    llm3 = new_llm(provider, stores, api_key="sk-key-two")
    llm4 = new_llm(provider, stores, api_key="sk-key-one", key_hash_secret="other-secret")
    ids = {}
    for name, llm in (("one_a", llm1), ("one_b", llm2), ("two", llm3), ("one_other", llm4)):
        resp = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        ids[name] = ml.call_info(resp).request_id
    await llm1.flush()
    by_id = {r["request_id"]: r["api_key_hash"] for r in stores.rows()}
    h = {name: by_id[rid] for name, rid in ids.items()}
    assert all(re.fullmatch(r"[0-9a-f]{64}", v) for v in h.values())
    assert h["one_a"] == h["one_b"]
    assert h["two"] != h["one_a"]
    assert h["one_other"] != h["one_a"]
    for llm in (llm1, llm2, llm3, llm4):
        await llm.close()


async def test_authorization_extra_header_redacted(provider: FakeProvider, stores: Any) -> None:
    llm = new_llm(provider, stores)
    await llm.chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,
        extra_headers={"Authorization": "Bearer sk-secret", "X-Trace": "t-1"},
    )
    assert provider.requests[-1].headers["authorization"] == "Bearer sk-secret"
    await llm.flush()
    body = await stores.body(stores.one_row())
    assert body["request"]["extra_headers"] == {"Authorization": "[REDACTED]", "X-Trace": "t-1"}
    assert_secret_absent(stores, "sk-secret")
    await llm.close()


# -- tags ---------------------------------------------------------------------------------


async def test_tags_promoted_and_json(provider: FakeProvider, stores: Any) -> None:
    llm = new_llm(provider, stores, tags={"feature": "chat"})
    with ml.tags(user_id="u-42", workflow="support"):
        inside = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        with ml.tags(user_id="u-43", feature="inner", ticket=7):
            nested = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        after_nested = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    outside = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    await llm.flush()
    rows = {r["request_id"]: r for r in stores.rows()}

    row = rows[ml.call_info(inside).request_id]
    assert (row["feature"], row["user_id"], row["workflow"]) == ("chat", "u-42", "support")
    assert json.loads(row["tags"]) == {"feature": "chat", "user_id": "u-42", "workflow": "support"}

    row = rows[ml.call_info(nested).request_id]
    assert (row["feature"], row["user_id"], row["workflow"]) == ("inner", "u-43", "support")
    assert json.loads(row["tags"]) == {
        "feature": "inner",
        "user_id": "u-43",
        "workflow": "support",
        "ticket": 7,
    }

    row = rows[ml.call_info(after_nested).request_id]
    assert (row["feature"], row["user_id"]) == ("chat", "u-42")
    assert "ticket" not in json.loads(row["tags"])

    row = rows[ml.call_info(outside).request_id]
    assert (row["feature"], row["user_id"], row["workflow"]) == ("chat", None, None)
    assert json.loads(row["tags"]) == {"feature": "chat"}
    await llm.close()


async def test_tags_do_not_leak_to_concurrent_task(provider: FakeProvider, stores: Any) -> None:
    llm = new_llm(provider, stores)
    tagged_entered = asyncio.Event()
    other_done = asyncio.Event()

    async def tagged() -> str:
        with ml.tags(user_id="u-42"):
            tagged_entered.set()
            await other_done.wait()  # the other task calls while this block is open
            resp = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        return ml.call_info(resp).request_id

    async def other() -> str:
        await tagged_entered.wait()
        resp = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        other_done.set()
        return ml.call_info(resp).request_id

    tagged_id, other_id = await asyncio.gather(tagged(), other())
    await llm.flush()
    rows = {r["request_id"]: r for r in stores.rows()}
    assert rows[tagged_id]["user_id"] == "u-42"
    assert rows[other_id]["user_id"] is None
    assert json.loads(rows[other_id]["tags"]) == {}
    await llm.close()


# -- call_info and outcomes ---------------------------------------------------------------


async def test_call_info_request_id_is_uuid7(provider: FakeProvider, stores: Any) -> None:
    llm = new_llm(provider, stores, api_key_alias="prod-key")
    resp = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    info = ml.call_info(resp)
    parsed = uuid.UUID(info.request_id)
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert info.request_id[14] == "7"
    assert (info.operation, info.status, info.api_key_alias) == (
        "chat.completions",
        "ok",
        "prod-key",
    )
    await llm.flush()
    row = stores.one_row()
    assert row["request_id"] == info.request_id
    assert row["api_key_alias"] == "prod-key"
    assert dec(row["total_cost"]) == info.total_cost
    assert row["latency_ms"] == info.latency_ms
    await llm.close()


def live_records() -> int:
    gc.collect()
    return sum(type(o).__name__ == "CallRecord" for o in gc.get_objects())


async def test_written_records_are_freed_and_call_info_outlives_the_write(
    provider: FakeProvider, stores: Any
) -> None:
    """A record kept its response, and call_info()'s map kept the record while the
    response lived: no record was ever freed (every call leaked its response, record and
    body). Now: what the caller dropped is freed once written; what it keeps still
    answers call_info() in full."""
    llm = new_llm(provider, stores)
    before = live_records()
    for _ in range(200):
        await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # dropped
    kept = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    request_id = kept._request_id  # type: ignore[attr-defined]
    stats = await llm.flush()
    assert stats.written == 201
    assert live_records() - before <= 1  # the kept response's record only
    info = ml.call_info(kept)
    assert info.provider_request_id == request_id
    assert info.total_cost == GPT4O_COST
    assert stores.rows("request_id = ?", (info.request_id,))[0]["body_ref"]
    await llm.close()


async def test_dropped_records_are_freed(provider: FakeProvider, stores: Any) -> None:
    """Records dropped over budget (no spool) never reach the writer's release: they
    must let go of their responses when dropped, or they leak the same way."""
    llm = new_llm(provider, stores, spool=False, max_queue_records=10)
    before = live_records()
    for _ in range(100):  # never yields to the writer: 90 are over budget
        await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    stats = await llm.flush()
    assert (stats.written, stats.dropped) == (10, 90)
    assert live_records() - before == 0
    await llm.close()


async def test_call_info_rejects_foreign_objects(provider: FakeProvider) -> None:
    raw = await fake_openai_client(provider).chat.completions.create(
        model="gpt-4o", messages=MESSAGES
    )
    with pytest.raises(LookupError):
        ml.call_info(raw)
    with pytest.raises(LookupError):
        ml.call_info(object())
    with pytest.raises(LookupError):
        ml.call_info({"usage": {}})


async def test_record_outcome_while_record_queued(provider: FakeProvider, stores: Any) -> None:
    llm = new_llm(provider, stores, flush_interval=30.0)
    resp = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    request_id = ml.call_info(resp).request_id
    assert llm.stats().pending == 1  # the record has not been written yet
    await llm.record_outcome(request_id, "accepted")
    stats = await llm.flush()
    assert stats.outcomes_written == 1
    row = stores.one_row()
    assert row["outcome"] == "accepted"
    assert row["outcome_at"] is not None
    await llm.record_outcome(request_id, "escalated")  # later change, row already written
    await llm.flush()
    assert stores.one_row()["outcome"] == "escalated"
    await llm.close()


async def test_record_outcome_for_stream_before_it_ends(
    provider: FakeProvider, stores: Any
) -> None:
    """record_outcome 'may be called while the call's record still waits ... it lands
    either way': the request id of a stream is known before the stream ends."""
    llm = new_llm(provider, stores)
    stream = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    request_id = ml.call_info(stream).request_id
    await llm.record_outcome(request_id, "rejected")
    await llm.flush()  # the writer's timer fires while the stream is still being read
    async for _ in stream:
        pass
    stats = await llm.flush()
    assert stores.one_row()["outcome"] == "rejected"
    # The stream's row carried it: no update was sent ahead of the row to match nothing.
    assert stats.outcomes_unmatched == 0
    await llm.close()


async def test_record_outcome_invalid(provider: FakeProvider, stores: Any) -> None:
    llm = new_llm(provider, stores)
    resp = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    with pytest.raises(ValueError):
        await llm.record_outcome(ml.call_info(resp).request_id, "great")
    await llm.flush()
    assert stores.one_row()["outcome"] is None
    assert llm.stats().outcomes_written == 0
    await llm.close()


# -- missing usage ------------------------------------------------------------------------


async def test_missing_usage(stores: Any) -> None:
    provider = FakeProvider(omit_usage=True)
    llm = new_llm(provider, stores)
    resp = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert resp.usage is None
    stream = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    async for _ in stream:
        pass
    await llm.flush()
    rows = stores.rows()
    assert len(rows) == 2
    for row in rows:
        assert row["status"] == "ok"
        assert row["cost_status"] == "missing_usage"
        assert row["total_cost"] is None
        assert row["input_tokens"] is None
    await llm.close()


# -- cancellation -------------------------------------------------------------------------


async def test_cancelled_call_is_incomplete(provider: FakeProvider, stores: Any) -> None:
    arrived, _ = hold_answers(provider)  # never released: the answer never comes
    llm = new_llm(provider, stores)
    task = asyncio.create_task(llm.chat.completions.create(model="gpt-4o", messages=MESSAGES))
    await until_set(arrived, "the request reaching the provider")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await llm.flush()
    row = stores.one_row()
    assert row["status"] == "incomplete"
    assert row["error_type"] == "CancelledError"
    assert row["total_cost"] is None
    await llm.close()


async def test_cancelled_stream_consumer_is_incomplete(provider: FakeProvider, stores: Any) -> None:
    # The later content chunks are a minute away: the consumer is cancelled between the
    # first and the second on any machine (closing the stream ends the wait).
    provider.chunk_delay = 60.0
    llm = new_llm(provider, stores)
    stream = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    seen: list[Any] = []
    first_chunk = asyncio.Event()

    async def consume() -> None:
        async for chunk in stream:
            seen.append(chunk)
            first_chunk.set()

    task = asyncio.create_task(consume())
    await until_set(first_chunk, "the first chunk reaching the consumer")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert 1 <= len(seen) < 4
    await llm.flush()
    row = stores.one_row()
    assert (row["status"], row["stream"]) == ("incomplete", 1)
    await stream.close()
    await llm.flush()
    assert len(stores.rows()) == 1
    await llm.close()


# -- other ways into the SDK --------------------------------------------------------------


async def test_with_options_calls_are_logged(provider: FakeProvider, stores: Any) -> None:
    """``client.with_options(...)`` returns a configured copy of the client: a call made
    through it is a chat completion like any other and must be logged."""
    llm = new_llm(provider, stores)
    resp = await llm.with_options(timeout=30).chat.completions.create(
        model="gpt-4o", messages=MESSAGES
    )
    assert isinstance(resp, ChatCompletion)
    await llm.flush()
    rows = stores.rows()
    assert len(rows) == 1
    assert rows[0]["operation"] == "chat.completions"
    await llm.close()


async def test_with_raw_response_calls_are_logged(provider: FakeProvider, stores: Any) -> None:
    llm = new_llm(provider, stores)
    raw = await llm.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    completion = raw.parse()
    assert isinstance(completion, ChatCompletion)
    await llm.flush()
    rows = stores.rows()
    assert len(rows) == 1
    assert rows[0]["operation"] == "chat.completions"
    assert rows[0]["input_tokens"] == 600
    await llm.close()


async def test_chat_stream_helper_is_logged(provider: FakeProvider, stores: Any) -> None:
    llm = new_llm(provider, stores)
    async with llm.chat.completions.stream(
        model="gpt-4o", messages=MESSAGES, stream_options={"include_usage": True}
    ) as stream:
        final = await stream.get_final_completion()
    assert final.choices[0].message.content == provider.reply_text
    await llm.flush()
    rows = stores.rows()
    assert len(rows) == 1
    assert rows[0]["operation"] == "chat.completions"
    assert rows[0]["input_tokens"] == 600
    await llm.close()


async def test_paginated_list_still_async_iterable(provider: FakeProvider, stores: Any) -> None:
    """``client.models.list()`` returns an AsyncPaginator: awaitable AND async-iterable.
    The wrapper must not turn it into a bare coroutine. (The fake serves no /models, so
    both clients fail with the same provider 404 once iteration fetches the page.)"""
    raw = fake_openai_client(provider)
    with pytest.raises(openai.NotFoundError):
        async for _ in raw.models.list():
            pass
    llm = new_llm(provider, stores)
    with pytest.raises(openai.NotFoundError):
        async for _ in llm.models.list():
            pass
    await llm.close()
