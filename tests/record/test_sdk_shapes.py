"""The pieces behind the google-genai, mistralai and LiteLLM support, on their own:
stream assembly (record/sdk_shapes.py) on SDK objects and on the dicts the writer process
may be left with, in time linear in the chunks; which family a client is (the clouds'
clients too), its provider, model name and key (capture/families.py); the first token and
LiteLLM's usage chunk (capture/chunks.py)."""

from __future__ import annotations

import os
import types as pytypes
from typing import Any

import pytest
from google import genai
from google.genai import types
from linear_time import GROWTH, MAX_RATIO, growth
from mistralai.client import models as mistral

from majordomo_log.capture import chunks, families
from majordomo_log.record.assemble import Assembled
from majordomo_log.record.sdk_shapes import (
    assemble_chat_chunks,
    assemble_gemini,
    assemble_mistral,
    litellm_usage,
)
from majordomo_log.record.usage import normalize_any

# No network here: LiteLLM must not fetch its cost map when it is imported (below).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def gemini_chunk(parts: list[dict[str, Any]], **fields: Any) -> types.GenerateContentResponse:
    candidate = {"content": {"role": "model", "parts": parts}, "index": 0}
    if "finish_reason" in fields:
        candidate["finish_reason"] = fields.pop("finish_reason")
    return types.GenerateContentResponse.model_validate({"candidates": [candidate], **fields})


def test_gemini_parts_thoughts_and_calls_are_kept_apart() -> None:
    call = {"function_call": {"name": "lookup", "args": {"q": "x"}}}
    chunks_ = [
        gemini_chunk([{"text": "Let me ", "thought": True}], response_id="r1"),
        gemini_chunk([{"text": "think.", "thought": True}, {"text": "The "}]),
        gemini_chunk([{"text": "answer."}, call]),
        gemini_chunk(
            [],
            finish_reason="STOP",
            model_version="gemini-2.5-pro-002",
            usage_metadata={"prompt_token_count": 10, "candidates_token_count": 4},
        ),
    ]
    into = Assembled("ok", None, None)
    assemble_gemini(into, chunks_)
    candidate = into.response["candidates"][0]
    assert candidate["content"]["parts"] == [
        {"text": "Let me think.", "thought": True},
        {"text": "The answer."},
        call,
    ]
    assert candidate["finish_reason"] == "STOP"
    assert into.served_model == "gemini-2.5-pro-002"
    assert into.response["response_id"] == "r1"
    usage = normalize_any(into.usage)
    assert usage is not None and (usage.input, usage.output) == (10, 4)


def test_gemini_usage_is_the_last_running_total_even_as_dicts() -> None:
    """In the writer process a chunk the SDK will not validate again is its parsed JSON."""
    chunks_ = [
        {"candidates": [{"content": {"parts": [{"text": "a"}]}}], "usage_metadata": usage}
        for usage in (
            {"prompt_token_count": 5, "candidates_token_count": 1},
            {"prompt_token_count": 5, "candidates_token_count": 2},
            {"prompt_token_count": 5, "candidates_token_count": 3},
        )
    ]
    into = Assembled("ok", None, None)
    assemble_gemini(into, chunks_)
    assert into.usage == {"prompt_token_count": 5, "candidates_token_count": 3}
    assert into.response["candidates"][0]["content"]["parts"] == [{"text": "aaa"}]


def mistral_event(delta: dict[str, Any], **fields: Any) -> mistral.CompletionEvent:
    finish = fields.pop("finish_reason", None)
    chunk = {
        "id": "c1",
        "model": "magistral-medium-2509",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **fields,
    }
    return mistral.CompletionEvent.model_validate({"data": chunk})


def test_mistral_content_chunks_and_split_tool_calls() -> None:
    thinking = {"type": "thinking", "thinking": [{"type": "text", "text": "hmm"}]}
    events = [
        mistral_event({"role": "assistant", "content": [thinking, {"type": "text", "text": "Hi"}]}),
        mistral_event({"content": " there"}),
        mistral_event(
            {"tool_calls": [{"id": "t1", "index": 0, "function": {"name": "f", "arguments": "{"}}]}
        ),
        mistral_event({"tool_calls": [{"index": 0, "function": {"name": "", "arguments": "}"}}]}),
        mistral_event(
            {"tool_calls": [{"id": "t2", "index": 1, "function": {"name": "g", "arguments": {}}}]}
        ),
        mistral_event(
            {"content": ""},
            finish_reason="tool_calls",
            usage={"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
        ),
    ]
    into = Assembled("ok", None, None)
    assemble_mistral(into, events)
    choice = into.response["choices"][0]
    assert choice["message"]["content"] == "Hi there"
    assert choice["message"]["content_parts"][0]["type"] == "thinking"
    assert choice["message"]["tool_calls"] == [
        {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
        {"id": "t2", "type": "function", "function": {"name": "g", "arguments": "{}"}},
    ]
    assert choice["finish_reason"] == "tool_calls"
    assert into.served_model == "magistral-medium-2509"
    usage = normalize_any(into.usage)
    assert usage is not None and (usage.input, usage.output) == (9, 3)


def test_a_stream_without_usage_keeps_what_the_record_had() -> None:
    into = Assembled("incomplete", None, None)
    assemble_mistral(into, [mistral_event({"content": "x"})])
    assert into.usage is None
    assert into.response["choices"][0]["message"]["content"] == "x"


@pytest.mark.parametrize("kind", ["gemini", "chat"])
def test_assembly_is_linear_in_the_chunks(kind: str) -> None:
    def make(n: int) -> list[Any]:
        if kind == "gemini":
            return [{"candidates": [{"content": {"parts": [{"text": "x"}]}}]}] * n
        return [{"model": "m", "choices": [{"index": 0, "delta": {"content": "x"}}]}] * n

    assemble = assemble_gemini if kind == "gemini" else assemble_chat_chunks
    small, large = make(20_000), make(20_000 * GROWTH)
    ratio = growth(lambda c: assemble(Assembled("ok", None, None), c), small, large)
    assert ratio < MAX_RATIO, f"{GROWTH}x the chunks took {ratio:.1f}x as long"


def test_litellm_usage_cache_writes() -> None:
    def usage(prompt: int, cached: int, written: int, split: Any = None) -> dict[str, Any]:
        details = {"cached_tokens": cached, "cache_creation_tokens": written}
        if split is not None:
            details["cache_creation_token_details"] = split
        return {"prompt_tokens": prompt, "completion_tokens": 10, "prompt_tokens_details": details}

    split = {"ephemeral_5m_input_tokens": 30, "ephemeral_1h_input_tokens": 20}
    got = litellm_usage(usage(150, 50, 50, split))
    buckets = (got.input, got.cache_read, got.cache_write_5m, got.cache_write_1h, got.output)
    assert buckets == (50, 50, 30, 20, 10) and got.flags == ()
    plain = usage(150, 50, 0)
    assert litellm_usage(plain) is plain  # no writes: the OpenAI shape reads it right
    # counts that overlap more than the prompt holds are flagged, never billed twice
    bad = litellm_usage(usage(60, 50, 50, split))
    assert "cached_exceeds_input" in bad.flags
    assert bad.total_input == 60 and bad.cache_write_1h <= 10
    # a 1-hour count larger than all the writes is not believed
    odd = litellm_usage(usage(150, 50, 50, {"ephemeral_1h_input_tokens": 99}))
    assert (odd.cache_write_5m, odd.cache_write_1h) == (50, 0)


# -- capture/families.py, capture/chunks.py -------------------------------------------------


@pytest.mark.parametrize(
    ("given", "column"),
    [
        ("gemini-2.5-flash", "gemini-2.5-flash"),
        ("models/gemini-2.5-flash", "gemini-2.5-flash"),
        ("publishers/google/models/gemini-2.5-pro", "gemini-2.5-pro"),
        ("projects/p/locations/l/publishers/google/models/gemini-2.5-pro", "gemini-2.5-pro"),
        ("tunedModels/abc-123", "tunedModels/abc-123"),
        ("google/gemini-2.5-flash", "google/gemini-2.5-flash"),
        ("mymodels/x", "mymodels/x"),
        ("models/", "models/"),
        (None, None),
    ],
)
def test_gemini_model_column(given: Any, column: Any) -> None:
    assert families.gemini_model_name(given) == column


def test_families_by_client() -> None:
    client = genai.Client(api_key="AIzaFamilyTestKey000000000000000000000000")

    class MyClient(genai.Client):  # an application's subclass is still google-genai
        pass

    mine = MyClient(api_key="AIzaFamilyTestKey000000000000000000000000")
    try:
        for c in (client, mine, client.aio):
            assert families.family_of(c) is families.GOOGLE_GENAI
        assert families.GOOGLE_GENAI.provider(client) == "google"
        assert families.GOOGLE_GENAI.api_key(client) == "AIzaFamilyTestKey000000000000000000000000"
    finally:
        client.close()
        mine.close()
    import litellm

    assert families.family_of(litellm) is families.LITELLM
    assert families.family_of(pytypes.ModuleType("litellm_helpers")) is families.OTHER
    assert families.family_of(object()) is families.OTHER


def test_cloud_families_by_client() -> None:
    """botocore's clients (any service: only Bedrock's four methods are known, the rest is
    handed back untouched) and anthropic's cloud clients are families too, with the
    cloud's provider and credentials (capture/cloud.py)."""
    import anthropic
    import boto3

    from majordomo_log.capture.methods import detect_provider, operation_of
    from majordomo_log.testing.cloud_clients import (
        TEST_AWS_ACCESS_KEY_ID,
        TEST_AWS_REGION,
        TEST_AWS_SECRET_ACCESS_KEY,
        TEST_VERTEX_ACCESS_TOKEN,
    )

    aws = {
        "region_name": TEST_AWS_REGION,
        "aws_access_key_id": TEST_AWS_ACCESS_KEY_ID,
        "aws_secret_access_key": TEST_AWS_SECRET_ACCESS_KEY,
    }
    runtime, s3 = boto3.client("bedrock-runtime", **aws), boto3.client("s3", **aws)
    assert families.family_of(runtime) is families.BOTOCORE is families.family_of(s3)
    assert detect_provider(runtime) == "bedrock" and detect_provider(s3) == "botocore"
    read = families.BOTOCORE.credentials
    assert read is not None
    values = read(runtime)  # the key id (its hash groups spend), then every value to scrub
    assert values[0] == TEST_AWS_ACCESS_KEY_ID and TEST_AWS_SECRET_ACCESS_KEY in values
    assert families.BOTOCORE.method(("converse_stream",)) == ("converse_stream", True)
    assert families.BOTOCORE.method(("invoke_model",)) == ("invoke_model", False)
    assert families.BOTOCORE.method(("list_foundation_models",)) is None
    # Bedrock's method names are the botocore family's alone: another client's `converse`
    # is no SDK call (logged only when it returns usage, like any method)
    assert operation_of(("converse",)) == (None, False)
    assert families.OTHER.method(("converse",)) is None

    bedrock = anthropic.AnthropicBedrock(
        aws_access_key=TEST_AWS_ACCESS_KEY_ID,
        aws_secret_key=TEST_AWS_SECRET_ACCESS_KEY,
        aws_region=TEST_AWS_REGION,
    )
    vertex = anthropic.AsyncAnthropicVertex(
        project_id="p", region="us-east5", access_token=TEST_VERTEX_ACCESS_TOKEN
    )
    assert families.family_of(bedrock) is families.ANTHROPIC_BEDROCK
    assert families.family_of(vertex) is families.ANTHROPIC_VERTEX
    assert (detect_provider(bedrock), detect_provider(vertex)) == ("bedrock", "vertex")
    assert families.family_of(anthropic.Anthropic(api_key="sk-ant-x")) is families.OTHER
    # Google Cloud's Vertex AI is one provider, whichever SDK calls it
    on_vertex = pytypes.SimpleNamespace(_api_client=pytypes.SimpleNamespace(vertexai=True))
    assert families.GOOGLE_GENAI.provider(on_vertex) == "vertex"


def test_mistral_provider_and_key() -> None:
    from mistralai.client import Mistral

    assert families.MISTRAL.provider(Mistral(api_key="m-key")) == "mistral"
    assert families.MISTRAL.api_key(Mistral(api_key="m-key")) == "m-key"
    # a key provider is the SDK's to call, not the logger's
    assert families.MISTRAL.api_key(Mistral(api_key=lambda: "m-key")) is None


def test_known_methods_by_path() -> None:
    generate = families.GOOGLE_GENAI.method(("aio", "models", "generate_content_stream"))
    assert generate == families.Method("generate_content", streams=True)
    assert families.GOOGLE_GENAI.method(("models", "count_tokens")) is None
    assert families.MISTRAL.method(("chat", "stream_async")) == ("chat.complete", True)
    assert families.MISTRAL.method(("embeddings", "create_async")) == ("embeddings", False)
    assert families.LITELLM.method(("acompletion",)) == ("completion", False)
    assert families.LITELLM.method(("token_counter",)) is None


def test_call_keys_are_hidden_and_hashed_once() -> None:
    shown = families.hide_call_keys({"model": "m", "api_key": "sk-secret-1"})
    assert shown == {"model": "m", "api_key": "[REDACTED]"}
    kwargs = {"model": "m"}
    assert families.hide_call_keys(kwargs) is kwargs
    hashed: list[object] = []
    keys = families.CallKeys(lambda key: hashed.append(key) or f"h({len(hashed)})")
    assert [keys.hash(k) for k in ("k1", "k2", "k1", "k2")] == ["h(1)", "h(2)", "h(1)", "h(2)"]
    assert hashed == ["k1", "k2"]


def test_litellm_usage_chunk_is_only_the_empty_one() -> None:
    import litellm

    def chunk(**delta: Any) -> Any:
        made = litellm.ModelResponseStream(choices=[{"index": 0, "delta": delta}])
        made.usage = litellm.Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2)
        return made

    assert chunks.litellm_usage_chunk(chunk())
    assert not chunks.litellm_usage_chunk(chunk(content="hi"))
    plain = litellm.ModelResponseStream(choices=[{"index": 0, "delta": {}}])
    assert not chunks.litellm_usage_chunk(plain)


def test_first_tokens() -> None:
    assert not chunks.gemini_token(types.GenerateContentResponse())
    assert chunks.gemini_token(gemini_chunk([{"text": "a"}]))
    assert not chunks.mistral_token(mistral_event({"role": "assistant", "content": ""}))
    assert chunks.mistral_token(mistral_event({"content": "a"}))
