"""record/bedrock.py: the shapes Bedrock's results come in, and what the background makes
of them. Shapes from AWS's API reference (Converse ``usage`` and ``cacheDetails``, the
native bodies of Claude, Nova, Llama, Titan and OpenAI-format models, the token-count
response headers, ``amazon-bedrock-invocationMetrics``)."""

from __future__ import annotations

from typing import Any

import orjson
from linear_time import GROWTH, MAX_RATIO, growth

from majordomo_log.record.assemble import Assembled, assemble_stream
from majordomo_log.record.bedrock import converse_usage, model_usage
from majordomo_log.record.usage import Usage

HEAD: dict[str, Any] = {
    "ResponseMetadata": {
        "RequestId": "req-1",
        "HTTPHeaders": {"content-type": "application/json"},
    }
}


def assembled(operation: str, chunks: list[Any]) -> Assembled:
    return assemble_stream(operation, chunks, Assembled("ok", None, None))


def chunk(event: Any) -> dict[str, Any]:
    return {"chunk": {"bytes": orjson.dumps(event)}}


def test_converse_usage_is_additive() -> None:
    usage = converse_usage(
        {
            "inputTokens": 10,
            "outputTokens": 5,
            "totalTokens": 418,
            "cacheReadInputTokens": 300,
            "cacheWriteInputTokens": 103,
        }
    )
    assert usage == Usage(input=10, cache_read=300, cache_write_5m=103, output=5)
    assert usage is not None and usage.total == 418


def test_cache_details_split_one_hour_writes_from_five_minute_ones() -> None:
    usage = converse_usage(
        {
            "inputTokens": 10,
            "outputTokens": 5,
            "cacheWriteInputTokens": 100,
            "cacheDetails": [{"ttl": "5m", "inputTokens": 40}, {"ttl": "1h", "inputTokens": 60}],
        }
    )
    assert usage == Usage(input=10, cache_write_5m=40, cache_write_1h=60, output=5)


def test_no_counts_is_no_usage_never_a_free_call() -> None:
    assert converse_usage({}) is None
    assert converse_usage({"metrics": {"latencyMs": 3}}) is None
    assert converse_usage(None) is None
    assert converse_usage("12 tokens") is None


def test_bad_counts_are_flagged() -> None:
    usage = converse_usage({"inputTokens": -3, "outputTokens": "7"})
    assert usage is not None
    assert set(usage.flags) == {"negative_count", "non_numeric_count"}


def test_native_bodies_of_each_family() -> None:
    claude = {
        "usage": {
            "input_tokens": 7,
            "output_tokens": 3,
            "cache_read_input_tokens": 11,
            "cache_creation": {"ephemeral_5m_input_tokens": 2, "ephemeral_1h_input_tokens": 5},
        }
    }
    assert model_usage(claude) == Usage(
        input=7, cache_read=11, cache_write_5m=2, cache_write_1h=5, output=3
    )
    nova = {"usage": {"inputTokens": 9, "outputTokens": 4, "cacheReadInputTokenCount": 6}}
    assert model_usage(nova) == Usage(input=9, cache_read=6, output=4)
    # OpenAI's format (gpt-oss on Bedrock): cached inside prompt, reasoning inside output
    gpt_oss = {
        "usage": {
            "prompt_tokens": 100,
            "completion_tokens": 50,
            "prompt_tokens_details": {"cached_tokens": 20},
            "completion_tokens_details": {"reasoning_tokens": 30},
        }
    }
    assert model_usage(gpt_oss) == Usage(input=80, cache_read=20, output=20, reasoning=30)
    llama = {"generation": "hi", "prompt_token_count": 12, "generation_token_count": 8}
    assert model_usage(llama) == Usage(input=12, output=8)
    titan_embed = {"embedding": [0.1, 0.2], "inputTextTokenCount": 6}
    assert model_usage(titan_embed) == Usage(input=6)
    titan_text = {"inputTextTokenCount": 5, "results": [{"tokenCount": 9, "outputText": "x"}]}
    assert model_usage(titan_text) == Usage(input=5, output=9)
    assert model_usage({"outputs": [{"text": "no usage here"}]}) is None
    assert model_usage(["not", "a", "body"]) is None


def test_invoke_model_falls_back_to_bedrocks_headers() -> None:
    head = {
        "ResponseMetadata": {
            "RequestId": "req-2",
            "HTTPHeaders": {
                "x-amzn-bedrock-input-token-count": "120",
                "x-amzn-bedrock-output-token-count": "30",
                "x-amzn-bedrock-cache-read-input-token-count": "1000",
                "x-amzn-bedrock-cache-write-input-token-count": "not a number",
            },
        },
        "contentType": "application/json",
    }
    into = assembled("invoke_model", [head, b'{"outputs": [{"text": "hello"}]}'])
    assert into.usage == Usage(input=120, cache_read=1000, output=30)
    assert into.response["body"] == {"outputs": [{"text": "hello"}]}
    assert into.response["ResponseMetadata"]["RequestId"] == "req-2"


def test_a_body_that_is_not_json_is_kept_as_text() -> None:
    into = assembled("invoke_model", [HEAD, b"plain \xff text"])
    assert into.response["body"] == {"$text": "plain \ufffd text"}
    assert into.usage is None and into.served_model is None


def test_converse_stream_with_reasoning_and_a_tool_call() -> None:
    events = [
        {"messageStart": {"role": "assistant"}},
        {
            "contentBlockDelta": {
                "delta": {"reasoningContent": {"text": "Let me "}},
                "contentBlockIndex": 0,
            }
        },
        {
            "contentBlockDelta": {
                "delta": {"reasoningContent": {"text": "think."}},
                "contentBlockIndex": 0,
            }
        },
        {"contentBlockDelta": {"delta": {"text": "Calling."}, "contentBlockIndex": 1}},
        {
            "contentBlockStart": {
                "start": {"toolUse": {"toolUseId": "tu-1", "name": "weather"}},
                "contentBlockIndex": 2,
            }
        },
        {
            "contentBlockDelta": {
                "delta": {"toolUse": {"input": '{"city": '}},
                "contentBlockIndex": 2,
            }
        },
        {
            "contentBlockDelta": {
                "delta": {"toolUse": {"input": '"Paris"}'}},
                "contentBlockIndex": 2,
            }
        },
        {"contentBlockStop": {"contentBlockIndex": 2}},
        {"messageStop": {"stopReason": "tool_use"}},
        {
            "metadata": {
                "usage": {"inputTokens": 50, "outputTokens": 20},
                "metrics": {"latencyMs": 9},
            }
        },
    ]
    into = assembled("converse_stream", [HEAD, *events])
    assert into.usage == Usage(input=50, output=20)
    assert into.response["output"]["message"]["content"] == [
        {"reasoningContent": {"reasoningText": {"text": "Let me think."}}},
        {"text": "Calling."},
        {"toolUse": {"toolUseId": "tu-1", "name": "weather", "input": {"city": "Paris"}}},
    ]
    assert into.response["stopReason"] == "tool_use"
    assert into.response["stream_events"] == len(events)
    assert into.response["ResponseMetadata"]["RequestId"] == "req-1"


def test_invoke_stream_of_nova_and_the_invocation_metrics_fallback() -> None:
    nova = [
        chunk({"messageStart": {"role": "assistant"}}),
        chunk({"contentBlockDelta": {"delta": {"text": "Hi"}, "contentBlockIndex": 0}}),
        chunk({"metadata": {"usage": {"inputTokens": 8, "outputTokens": 2}}}),
    ]
    into = assembled("invoke_model_with_response_stream", [HEAD, *nova])
    assert into.usage == Usage(input=8, output=2)
    assert into.response["body"]["output"]["message"]["content"] == [{"text": "Hi"}]
    llama = [
        chunk({"generation": "Hel", "prompt_token_count": None}),
        {"chunk": {"bytes": b"not json"}},
        chunk(
            {
                "generation": "lo",
                "amazon-bedrock-invocationMetrics": {
                    "inputTokenCount": 14,
                    "outputTokenCount": 2,
                    "cacheReadInputTokenCount": 4,
                },
            }
        ),
    ]
    into = assembled("invoke_model_with_response_stream", [HEAD, *llama])
    assert into.usage == Usage(input=14, cache_read=4, output=2)
    assert into.response["body"]["events"][1] == {"$text": "not json"}


def test_an_unrelated_clients_method_of_the_same_name_is_not_read_as_bedrocks() -> None:
    class Chunk:
        def __init__(self) -> None:
            self.usage = {"prompt_tokens": 3, "completion_tokens": 1}

    into = assembled("converse", [Chunk()])  # no botocore head: the generic path
    assert into.usage == {"prompt_tokens": 3, "completion_tokens": 1}
    assert "chunks" in into.response


def test_assembly_is_linear_in_the_events() -> None:
    def events(n: int) -> list[Any]:
        delta = {"contentBlockDelta": {"delta": {"text": "token "}, "contentBlockIndex": 0}}
        return [HEAD, *([delta] * n), {"metadata": {"usage": {"inputTokens": 1}}}]

    ratio = growth(
        lambda chunks: assembled("converse_stream", chunks), events(5_000), events(5_000 * GROWTH)
    )
    assert ratio < MAX_RATIO
