"""The usage normalizer on edge cases: missing or None fields, impossible counts, junk values,
and the shape dispatch of ``normalize_any``.

Counts that cannot be real (negative, NaN, absurdly large, bool, str, ...) become 0 and leave a
flag ending in ``_count`` (the record then gets ``cost_status='invalid_usage'``); counts that
contradict each other (cached > prompt) are clamped and flagged, and the call is still priced.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import anthropic.types as at
import pytest
from openai.types import CompletionUsage
from openai.types.completion_usage import CompletionTokensDetails, PromptTokensDetails
from openai.types.create_embedding_response import Usage as EmbeddingUsage
from openai.types.responses import ResponseUsage
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

from majordomo_log.record.usage import (
    MAX_SANE_TOKENS,
    Usage,
    normalize_anthropic,
    normalize_any,
    normalize_bedrock,
    normalize_gemini,
    normalize_openai,
)

Normalizer = Callable[[Any], Usage]

JUNK_FLAGS = {"negative_count", "nan_count", "absurd_count", "non_numeric_count"}


def count_flags(usage: Usage) -> set[str]:
    return {f for f in usage.flags if f.endswith("_count")}


# --------------------------------------------------------------------------- OpenAI


def test_openai_chat_without_detail_objects() -> None:
    raw = CompletionUsage(prompt_tokens=100, completion_tokens=20, total_tokens=120)
    assert normalize_openai(raw) == Usage(input=100, output=20)


def test_openai_chat_detail_objects_with_none_fields() -> None:
    raw = CompletionUsage(
        prompt_tokens=100,
        completion_tokens=20,
        total_tokens=120,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=None, audio_tokens=None),
        completion_tokens_details=CompletionTokensDetails(reasoning_tokens=None),
    )
    assert normalize_openai(raw) == Usage(input=100, output=20)


def test_openai_dict_with_none_details_and_counts() -> None:
    raw = {
        "prompt_tokens": 100,
        "completion_tokens": None,
        "total_tokens": 100,
        "prompt_tokens_details": None,
        "completion_tokens_details": None,
    }
    assert normalize_openai(raw) == Usage(input=100)


def test_openai_cached_exceeds_prompt_is_clamped_and_flagged() -> None:
    raw = CompletionUsage(
        prompt_tokens=100,
        completion_tokens=10,
        total_tokens=110,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=150),
    )
    usage = normalize_openai(raw)
    assert (usage.input, usage.cache_read, usage.output) == (0, 100, 10)
    assert "cached_exceeds_input" in usage.flags
    assert not count_flags(usage)  # priced anyway, with the clamped numbers


def test_openai_reasoning_exceeds_completion_is_clamped_and_flagged() -> None:
    raw = ResponseUsage(
        input_tokens=10,
        input_tokens_details=InputTokensDetails(cached_tokens=0, cache_write_tokens=0),
        output_tokens=50,
        output_tokens_details=OutputTokensDetails(reasoning_tokens=80),
        total_tokens=60,
    )
    usage = normalize_openai(raw)
    assert (usage.input, usage.output, usage.reasoning) == (10, 0, 50)
    assert "reasoning_exceeds_output" in usage.flags


def test_openai_responses_dict_without_details() -> None:
    raw = {"input_tokens": 40, "output_tokens": 7, "total_tokens": 47}
    assert normalize_openai(raw) == Usage(input=40, output=7)
    assert normalize_any(raw, "openai") == Usage(input=40, output=7)
    assert normalize_any(raw, "azure") == Usage(input=40, output=7)


def test_embeddings_usage_has_no_completion() -> None:
    assert normalize_openai(EmbeddingUsage(prompt_tokens=9, total_tokens=9)) == Usage(input=9)


def test_deepseek_hit_tokens_used_only_when_no_cached_tokens() -> None:
    raw = {"prompt_tokens": 100, "completion_tokens": 5, "prompt_cache_hit_tokens": 60}
    assert normalize_openai(raw) == Usage(input=40, cache_read=60, output=5)
    raw["prompt_tokens_details"] = {"cached_tokens": 60}
    assert normalize_openai(raw) == Usage(input=40, cache_read=60, output=5)


# --------------------------------------------------------------------------- junk counts


JUNK = [
    pytest.param(-1, "negative_count", id="negative"),
    pytest.param(-0.5, "negative_count", id="negative-float"),
    pytest.param(float("nan"), "nan_count", id="nan"),
    pytest.param(float("inf"), "absurd_count", id="inf"),
    pytest.param(float("-inf"), "negative_count", id="-inf"),
    pytest.param(MAX_SANE_TOKENS + 1, "absurd_count", id="huge"),
    pytest.param(10**30, "absurd_count", id="huger"),
    pytest.param(True, "non_numeric_count", id="True"),
    pytest.param("12", "non_numeric_count", id="str"),
    pytest.param(b"12", "non_numeric_count", id="bytes"),
    pytest.param([12], "non_numeric_count", id="list"),
    pytest.param({"n": 12}, "non_numeric_count", id="dict"),
]

# (normalizer, a valid payload as a dict, path of each count field in it)
SHAPES: list[tuple[str, Normalizer, dict[str, Any], list[tuple[str, ...]]]] = [
    (
        "openai-chat",
        normalize_openai,
        {
            "prompt_tokens": 100,
            "completion_tokens": 50,
            "prompt_tokens_details": {"cached_tokens": 20},
            "completion_tokens_details": {"reasoning_tokens": 10},
        },
        [
            ("prompt_tokens",),
            ("completion_tokens",),
            ("prompt_tokens_details", "cached_tokens"),
            ("completion_tokens_details", "reasoning_tokens"),
        ],
    ),
    (
        "openai-responses",
        normalize_openai,
        {
            "input_tokens": 100,
            "output_tokens": 50,
            "input_tokens_details": {"cached_tokens": 20},
            "output_tokens_details": {"reasoning_tokens": 10},
        },
        [
            ("input_tokens",),
            ("output_tokens",),
            ("input_tokens_details", "cached_tokens"),
            ("output_tokens_details", "reasoning_tokens"),
        ],
    ),
    (
        "deepseek",
        normalize_openai,
        {"prompt_tokens": 100, "completion_tokens": 50, "prompt_cache_hit_tokens": 20},
        [("prompt_cache_hit_tokens",)],
    ),
    (
        "anthropic",
        normalize_anthropic,
        {
            "input_tokens": 100,
            "output_tokens": 50,
            "cache_read_input_tokens": 20,
            "cache_creation_input_tokens": 30,
            "cache_creation": {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 20},
        },
        [
            ("input_tokens",),
            ("output_tokens",),
            ("cache_read_input_tokens",),
            ("cache_creation", "ephemeral_5m_input_tokens"),
            ("cache_creation", "ephemeral_1h_input_tokens"),
        ],
    ),
    (
        "anthropic-no-breakdown",
        normalize_anthropic,
        {"input_tokens": 100, "output_tokens": 50, "cache_creation_input_tokens": 30},
        [("cache_creation_input_tokens",)],
    ),
    (
        "gemini",
        normalize_gemini,
        {
            "prompt_token_count": 100,
            "candidates_token_count": 50,
            "cached_content_token_count": 20,
            "thoughts_token_count": 10,
            "tool_use_prompt_token_count": 5,
        },
        [
            ("prompt_token_count",),
            ("candidates_token_count",),
            ("cached_content_token_count",),
            ("thoughts_token_count",),
            ("tool_use_prompt_token_count",),
        ],
    ),
    (
        "bedrock",
        normalize_bedrock,
        {
            "inputTokens": 100,
            "outputTokens": 50,
            "cacheReadInputTokens": 20,
            "cacheWriteInputTokens": 30,
        },
        [
            ("inputTokens",),
            ("outputTokens",),
            ("cacheReadInputTokens",),
            ("cacheWriteInputTokens",),
        ],
    ),
]

FIELD_CASES = [
    pytest.param(normalize, payload, path, id=f"{name}:{'.'.join(path)}")
    for name, normalize, payload, paths in SHAPES
    for path in paths
]


def _with(payload: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in payload.items()}
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return out


@pytest.mark.parametrize(("normalize", "payload", "path"), FIELD_CASES)
def test_valid_payloads_have_no_flags(
    normalize: Normalizer, payload: dict[str, Any], path: tuple[str, ...]
) -> None:
    usage = normalize(payload)
    assert usage.flags == ()
    assert usage.total > 0


@pytest.mark.parametrize(("value", "flag"), JUNK)
@pytest.mark.parametrize(("normalize", "payload", "path"), FIELD_CASES)
def test_junk_count_is_flagged_and_zero(
    normalize: Normalizer, payload: dict[str, Any], path: tuple[str, ...], value: Any, flag: str
) -> None:
    good = normalize(payload)
    usage = normalize(_with(payload, path, value))  # must not raise
    assert flag in usage.flags, f"{path} = {value!r} gave flags {usage.flags}"
    # The junk count counts as 0: every bucket stays >= 0 and the call never grows.
    for bucket in (
        "input",
        "cache_read",
        "cache_write_5m",
        "cache_write_1h",
        "output",
        "reasoning",
    ):
        assert getattr(usage, bucket) >= 0, bucket
    assert usage.total <= good.total


def test_falsy_junk_count_is_flagged_in_every_field() -> None:
    # False and "" are junk like True and "12": a payload carrying them is not a real usage
    # report, so it must be flagged (-> cost_status 'invalid_usage'), not priced as if the
    # field were 0. Collected over all fields so that one failure lists every field concerned.
    unflagged = []
    for _name, normalize, payload, paths in SHAPES:
        for path in paths:
            for value in (False, ""):
                usage = normalize(_with(payload, path, value))
                if "non_numeric_count" not in usage.flags:
                    unflagged.append(f"{_name}:{'.'.join(path)}={value!r}")
    assert unflagged == []


@pytest.mark.parametrize(
    ("value", "flag"),
    [*JUNK, (False, "non_numeric_count"), ("", "non_numeric_count")],
)
def test_usage_constructors_flag_junk(value: Any, flag: str) -> None:
    inc = Usage.inclusive(value, 10, cached_tokens=value, reasoning_tokens=value)
    assert flag in inc.flags
    assert (inc.input, inc.cache_read, inc.output, inc.reasoning) == (0, 0, 10, 0)
    add = Usage.additive(
        value,
        value,
        cache_read_tokens=value,
        cache_write_5m_tokens=value,
        cache_write_1h_tokens=value,
        reasoning_tokens=value,
    )
    assert flag in add.flags
    assert add.total == 0


def test_sane_limits_and_floats() -> None:
    assert Usage.additive(MAX_SANE_TOKENS, 0).input == MAX_SANE_TOKENS
    assert Usage.additive(MAX_SANE_TOKENS, 0).flags == ()
    assert Usage.additive(0, 0) == Usage()
    assert Usage.additive(None, None) == Usage()  # absent is not junk
    whole = Usage.additive(100.0, 7.0)  # JSON decoders may hand integral floats
    assert (whole.input, whole.output, whole.flags) == (100, 7, ())
    assert isinstance(whole.input, int)
    frac = Usage.additive(10.5, 1)
    assert "fractional_count" in frac.flags
    assert frac.input == 10


# --------------------------------------------------------------------------- Anthropic


def test_anthropic_without_cache_creation_breakdown_is_all_5m() -> None:
    raw = at.Usage(
        input_tokens=10,
        output_tokens=5,
        cache_creation_input_tokens=700,
        cache_read_input_tokens=300,
    )
    assert normalize_anthropic(raw) == Usage(
        input=10, cache_read=300, cache_write_5m=700, cache_write_1h=0, output=5
    )
    as_dict = {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 700}
    assert normalize_anthropic(as_dict) == Usage(input=10, cache_write_5m=700, output=5)
    explicit_none = dict(as_dict, cache_creation=None)
    assert normalize_anthropic(explicit_none) == Usage(input=10, cache_write_5m=700, output=5)


def test_anthropic_with_breakdown_uses_it() -> None:
    raw = at.Usage(
        input_tokens=10,
        output_tokens=5,
        cache_creation_input_tokens=700,
        cache_creation=at.CacheCreation(ephemeral_5m_input_tokens=0, ephemeral_1h_input_tokens=700),
    )
    assert normalize_anthropic(raw) == Usage(input=10, cache_write_1h=700, output=5)


def test_anthropic_none_cache_fields() -> None:
    raw = at.Usage(
        input_tokens=10,
        output_tokens=5,
        cache_creation_input_tokens=None,
        cache_read_input_tokens=None,
        cache_creation=None,
    )
    assert normalize_anthropic(raw) == Usage(input=10, output=5)


def test_anthropic_stream_style_dict_usage() -> None:
    # What the stream assembler keeps: message_start.message.usage merged with the cumulative
    # message_delta.usage (the last value of each field), as a plain dict.
    merged = {
        "input_tokens": 12,
        "cache_creation_input_tokens": 2048,
        "cache_read_input_tokens": 4096,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 2048},
        "output_tokens": 503,
        "service_tier": "standard",
        "server_tool_use": None,
    }
    expected = Usage(input=12, cache_read=4096, cache_write_1h=2048, output=503)
    assert normalize_anthropic(merged) == expected
    assert normalize_any(merged) == expected
    assert normalize_any(merged, "anthropic") == expected


def test_anthropic_message_delta_usage_type() -> None:
    # message_delta.usage: input fields may be None, output_tokens is cumulative.
    delta = at.MessageDeltaUsage(
        output_tokens=503,
        input_tokens=None,
        cache_creation_input_tokens=None,
        cache_read_input_tokens=None,
    )
    assert normalize_anthropic(delta) == Usage(output=503)


# --------------------------------------------------------------------------- Gemini, Bedrock


def test_gemini_minimal_and_none_fields() -> None:
    assert normalize_gemini({"prompt_token_count": 10}) == Usage(input=10)
    raw = {
        "prompt_token_count": 10,
        "candidates_token_count": None,
        "cached_content_token_count": None,
        "thoughts_token_count": None,
        "tool_use_prompt_token_count": None,
        "total_token_count": 10,
    }
    assert normalize_gemini(raw) == Usage(input=10)


def test_gemini_cached_exceeds_prompt() -> None:
    usage = normalize_gemini({"prompt_token_count": 10, "cached_content_token_count": 25})
    assert (usage.input, usage.cache_read) == (0, 10)
    assert "cached_exceeds_input" in usage.flags


def test_gemini_object_attributes() -> None:
    class UsageMetadata:  # google-genai's pydantic type, as attributes
        prompt_token_count = 300
        cached_content_token_count = 100
        candidates_token_count = 40
        thoughts_token_count = 60
        tool_use_prompt_token_count = None
        total_token_count = 400

    usage = normalize_any(UsageMetadata())
    assert usage == Usage(input=200, cache_read=100, output=40, reasoning=60)


def test_bedrock_minimal() -> None:
    assert normalize_bedrock({"inputTokens": 3, "outputTokens": 4, "totalTokens": 7}) == Usage(
        input=3, output=4
    )
    assert normalize_bedrock({"inputTokens": 3}) == Usage(input=3)


# --------------------------------------------------------------------------- normalize_any


@pytest.mark.parametrize(
    ("raw", "provider", "expected"),
    [
        pytest.param(
            CompletionUsage(
                prompt_tokens=100,
                completion_tokens=10,
                total_tokens=110,
                prompt_tokens_details=PromptTokensDetails(cached_tokens=40),
            ),
            None,
            Usage(input=60, cache_read=40, output=10),
            id="openai-chat",
        ),
        pytest.param(
            ResponseUsage(
                input_tokens=100,
                input_tokens_details=InputTokensDetails(cached_tokens=40, cache_write_tokens=0),
                output_tokens=10,
                output_tokens_details=OutputTokensDetails(reasoning_tokens=4),
                total_tokens=110,
            ),
            None,
            Usage(input=60, cache_read=40, output=6, reasoning=4),
            id="openai-responses",
        ),
        pytest.param(
            {
                "input_tokens": 100,
                "output_tokens": 10,
                "input_tokens_details": {"cached_tokens": 40},
            },
            None,
            Usage(input=60, cache_read=40, output=10),
            id="openai-responses-dict",
        ),
        pytest.param(
            EmbeddingUsage(prompt_tokens=5, total_tokens=5), None, Usage(input=5), id="embeddings"
        ),
        pytest.param(
            {"prompt_tokens": 100, "completion_tokens": 10, "prompt_cache_hit_tokens": 40},
            "deepseek",
            Usage(input=60, cache_read=40, output=10),
            id="deepseek",
        ),
        pytest.param(
            at.Usage(input_tokens=100, output_tokens=10, cache_read_input_tokens=40),
            None,
            Usage(input=100, cache_read=40, output=10),  # additive: input not reduced
            id="anthropic",
        ),
        pytest.param(
            {"input_tokens": 100, "output_tokens": 10, "cache_read_input_tokens": 40},
            "anthropic",
            Usage(input=100, cache_read=40, output=10),
            id="anthropic-dict",
        ),
        pytest.param(
            {"prompt_token_count": 100, "candidates_token_count": 10, "thoughts_token_count": 7},
            None,
            Usage(input=100, output=10, reasoning=7),
            id="gemini",
        ),
        pytest.param(
            {"inputTokens": 100, "outputTokens": 10, "cacheReadInputTokens": 40},
            None,
            Usage(input=100, cache_read=40, output=10),
            id="bedrock",
        ),
    ],
)
def test_normalize_any_dispatch(raw: Any, provider: str | None, expected: Usage) -> None:
    assert normalize_any(raw, provider) == expected


@pytest.mark.parametrize(
    "raw",
    [
        None,
        {},
        {"foo": 1},
        {"total_tokens": 10},
        "prompt_tokens",
        42,
        [1, 2, 3],
        object(),
    ],
    ids=repr,
)
def test_normalize_any_unknown_shape_is_none(raw: Any) -> None:
    assert normalize_any(raw) is None
    assert normalize_any(raw, "openai") is None


WEIRD_PAYLOADS: list[Any] = [
    {"prompt_tokens": "abc", "prompt_tokens_details": "x", "completion_tokens_details": 5},
    {"prompt_tokens": 5, "prompt_tokens_details": [1], "completion_tokens": {"a": 1}},
    {"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": float("nan")}},
    {"input_tokens": [], "input_tokens_details": {}, "output_tokens_details": None},
    {"input_tokens": 5, "cache_creation": "5m", "cache_read_input_tokens": -3},
    {"input_tokens": 5, "cache_creation": {"ephemeral_1h_input_tokens": "x"}},
    {"prompt_token_count": float("inf"), "thoughts_token_count": "many"},
    {"inputTokens": None, "outputTokens": 2},
    {"inputTokens": -1, "cacheWriteInputTokens": 10**12},
]


@pytest.mark.parametrize("raw", WEIRD_PAYLOADS, ids=repr)
def test_weird_payloads_never_raise(raw: Any) -> None:
    for provider in (None, "openai", "anthropic", "google", "bedrock"):
        usage = normalize_any(raw, provider)
        if usage is not None:
            assert all(
                isinstance(v, int) and v >= 0
                for v in (
                    usage.input,
                    usage.cache_read,
                    usage.cache_write_5m,
                    usage.cache_write_1h,
                    usage.output,
                    usage.reasoning,
                )
            )


# --------------------------------------------------------------------------- properties
# hypothesis is not a dev dependency yet, so these are seeded random properties: deterministic,
# no extra package, many cases per run.

SEED = 20261123


def test_property_inclusive_buckets_sum_to_prompt_plus_completion() -> None:
    rng = random.Random(SEED)
    for _ in range(5000):
        prompt = rng.choice([0, 1, rng.randint(0, 1000), rng.randint(0, MAX_SANE_TOKENS)])
        completion = rng.choice([0, 1, rng.randint(0, 1000), rng.randint(0, MAX_SANE_TOKENS)])
        cached = rng.choice([0, prompt, prompt + 1, rng.randint(0, MAX_SANE_TOKENS)])
        reasoning = rng.choice([0, completion, completion + 1, rng.randint(0, MAX_SANE_TOKENS)])
        usage = Usage.inclusive(
            prompt, completion, cached_tokens=cached, reasoning_tokens=reasoning
        )
        buckets = (
            usage.input,
            usage.cache_read,
            usage.cache_write_5m,
            usage.cache_write_1h,
            usage.output,
            usage.reasoning,
        )
        assert all(b >= 0 for b in buckets), (prompt, completion, cached, reasoning, usage)
        assert usage.total == prompt + completion, (prompt, completion, cached, reasoning)
        assert usage.total_input == prompt
        assert not count_flags(usage)
        assert ("cached_exceeds_input" in usage.flags) == (cached > prompt)
        assert ("reasoning_exceeds_output" in usage.flags) == (reasoning > completion)


def _junk(rng: random.Random) -> Any:
    return rng.choice(
        [
            None,
            0,
            rng.randint(-(10**12), 10**12),
            rng.uniform(-1e12, 1e12),
            float("nan"),
            float("inf"),
            -math.inf,
            True,
            False,
            "",
            "12",
            b"\x00",
            [],
            {},
            {"cached_tokens": "x"},
            object(),
            10**40,
            -0.0,
        ]
    )


def test_property_junk_never_raises() -> None:
    rng = random.Random(SEED)
    keys = [
        "prompt_tokens",
        "completion_tokens",
        "prompt_tokens_details",
        "completion_tokens_details",
        "prompt_cache_hit_tokens",
        "input_tokens",
        "output_tokens",
        "input_tokens_details",
        "output_tokens_details",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "cache_creation",
        "prompt_token_count",
        "candidates_token_count",
        "cached_content_token_count",
        "thoughts_token_count",
        "tool_use_prompt_token_count",
        "inputTokens",
        "outputTokens",
        "cacheReadInputTokens",
        "cacheWriteInputTokens",
    ]
    nested = [
        "cached_tokens",
        "reasoning_tokens",
        "ephemeral_5m_input_tokens",
        "ephemeral_1h_input_tokens",
    ]
    normalizers: list[Callable[[Any], Usage | None]] = [
        normalize_openai,
        normalize_anthropic,
        normalize_gemini,
        normalize_bedrock,
        normalize_any,
    ]
    for _ in range(3000):
        raw: dict[str, Any] = {}
        for key in rng.sample(keys, rng.randint(0, len(keys))):
            if key.endswith("_details") or key == "cache_creation":
                raw[key] = rng.choice([_junk(rng), {k: _junk(rng) for k in rng.sample(nested, 2)}])
            else:
                raw[key] = _junk(rng)
        for normalize in normalizers:
            usage = normalize(raw)
            if usage is None:
                continue
            for bucket in (
                usage.input,
                usage.cache_read,
                usage.cache_write_5m,
                usage.cache_write_1h,
                usage.output,
                usage.reasoning,
            ):
                assert isinstance(bucket, int) and not isinstance(bucket, bool), raw
                assert 0 <= bucket <= 2 * MAX_SANE_TOKENS, raw


class AttrDict(dict):  # type: ignore[type-arg]
    """addict/DotMap style: any missing attribute is a new empty child."""

    def __getattr__(self, name: str) -> Any:
        return self.setdefault(name, AttrDict())


def test_attribute_style_dict_usage_is_read_as_a_mapping() -> None:
    from majordomo_log.record.usage import normalize_anthropic

    raw = AttrDict(input_tokens=10, output_tokens=5)
    usage = normalize_anthropic(raw)
    assert (usage.input, usage.output, usage.flags) == (10, 5, ())
    assert dict(raw) == {"input_tokens": 10, "output_tokens": 5}  # not written to
