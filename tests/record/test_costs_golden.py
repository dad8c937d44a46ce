"""Golden costs: real-looking provider usage payloads, normalized and priced, against costs
worked out BY HAND from the rates written here as literals (copied from llm_config.yaml).

Each expected value is Decimal arithmetic with a comment showing it; results compare with ==
(exact Decimals, no rounding). A change to a built-in price that one of these tests pins is a
deliberate change: update the literal here together with llm_config.yaml.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anthropic.types as at
import pytest
from openai.types import CompletionUsage
from openai.types.completion_usage import CompletionTokensDetails, PromptTokensDetails
from openai.types.create_embedding_response import Usage as EmbeddingUsage
from openai.types.responses import ResponseUsage
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

from majordomo_log.record.call import CallContext, CallRecord
from majordomo_log.record.pricing import PRICES_ENV_VAR, Cost, PriceTable
from majordomo_log.record.usage import (
    Usage,
    normalize_anthropic,
    normalize_any,
    normalize_bedrock,
    normalize_gemini,
    normalize_openai,
)

M = Decimal(1_000_000)
UTC = dt.timezone.utc
# A date after every effective date the goldens below rely on (and before announced changes
# to the models used here).
WHEN = dt.datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def table() -> Iterator[PriceTable]:
    """The built-in table only: a MAJORDOMO_LOG_PRICES set in the environment must not leak in."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(PRICES_ENV_VAR, raising=False)
        yield PriceTable.load()


def price(table: PriceTable, model: str, usage: Usage, when: dt.datetime = WHEN) -> Cost:
    entry = table.resolve(model)
    assert entry is not None, f"{model!r} does not resolve"
    return table.cost(entry, usage, when)


def assert_parts_sum(cost: Cost) -> None:
    assert cost.total == (
        cost.input + cost.cache_read + cost.cache_write + cost.output + cost.reasoning
    )


# --------------------------------------------------------------------------- OpenAI


def test_openai_chat_cached_and_reasoning_o4_mini(table: PriceTable) -> None:
    # o4-mini: input $1.10, output $4.40, cache_read $0.275 per MTok; reasoning = output rate.
    raw = CompletionUsage(
        prompt_tokens=5000,
        completion_tokens=1800,
        total_tokens=6800,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=3584, audio_tokens=0),
        completion_tokens_details=CompletionTokensDetails(
            reasoning_tokens=1216,
            audio_tokens=0,
            accepted_prediction_tokens=0,
            rejected_prediction_tokens=0,
        ),
    )
    usage = normalize_openai(raw)
    # cached ⊂ prompt, reasoning ⊂ completion: 5000-3584 = 1416 uncached, 1800-1216 = 584 text.
    assert (usage.input, usage.cache_read, usage.output, usage.reasoning) == (1416, 3584, 584, 1216)
    assert usage.total == 5000 + 1800
    assert usage.flags == ()
    assert normalize_any(raw) == usage

    cost = price(table, "o4-mini-2025-04-16", usage)
    # input      1416 * 1.10  / 1e6 = 0.0015576
    # cache_read 3584 * 0.275 / 1e6 = 0.0009856
    # output      584 * 4.40  / 1e6 = 0.0025696
    # reasoning  1216 * 4.40  / 1e6 = 0.0053504
    # total                          = 0.0104632
    assert cost.input == Decimal("1416") * Decimal("1.10") / M
    assert cost.cache_read == Decimal("3584") * Decimal("0.275") / M
    assert cost.output == Decimal("584") * Decimal("4.40") / M
    assert cost.reasoning == Decimal("1216") * Decimal("4.40") / M
    assert cost.cache_write == 0
    assert cost.total == Decimal("0.0104632")
    # Cached tokens are not ALSO billed as input, reasoning is not billed twice:
    # every completion token exactly once at $4.40, every prompt token exactly once.
    assert cost.output + cost.reasoning == Decimal("1800") * Decimal("4.40") / M
    assert cost.price_version == "o4-mini@2025-04-16"
    assert_parts_sum(cost)


def test_openai_chat_cached_gpt_4o_dated_served_model(table: PriceTable) -> None:
    # gpt-4o: input $2.50, output $10.00, cache_read $1.25.
    raw = CompletionUsage(
        prompt_tokens=2006,
        completion_tokens=300,
        total_tokens=2306,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=1920, audio_tokens=0),
        completion_tokens_details=CompletionTokensDetails(reasoning_tokens=0),
    )
    cost = price(table, "gpt-4o-2024-08-06", normalize_openai(raw))
    # 86 * 2.50 + 1920 * 1.25 + 300 * 10.00 = 215 + 2400 + 3000 = 5615 -> /1e6 = 0.005615
    expected = (
        Decimal("86") * Decimal("2.50") + Decimal("1920") * Decimal("1.25") + 300 * Decimal("10")
    ) / M
    assert expected == Decimal("0.005615")
    assert cost.total == expected
    assert cost.model_id == "gpt-4o"
    assert cost.price_version == "gpt-4o@2024-08-06"


def test_openai_responses_api_gpt_5(table: PriceTable) -> None:
    # gpt-5: input $1.25, output $10.00, cache_read $0.125.
    raw = ResponseUsage(
        input_tokens=12000,
        input_tokens_details=InputTokensDetails(cached_tokens=8000, cache_write_tokens=0),
        output_tokens=3000,
        output_tokens_details=OutputTokensDetails(reasoning_tokens=2200),
        total_tokens=15000,
    )
    usage = normalize_openai(raw)
    assert (usage.input, usage.cache_read, usage.output, usage.reasoning) == (4000, 8000, 800, 2200)
    assert normalize_any(raw) == usage
    cost = price(table, "gpt-5-2025-08-07", usage)
    # input     4000 * 1.25  = 5000
    # cache     8000 * 0.125 = 1000
    # output     800 * 10    = 8000
    # reasoning 2200 * 10    = 22000      sum 36000 / 1e6 = 0.036
    assert cost.input == Decimal("4000") * Decimal("1.25") / M
    assert cost.cache_read == Decimal("8000") * Decimal("0.125") / M
    assert cost.output == Decimal("800") * Decimal("10.00") / M
    assert cost.reasoning == Decimal("2200") * Decimal("10.00") / M
    assert cost.total == Decimal("0.036")
    assert cost.price_version == "gpt-5@2025-08-07"


def test_openai_responses_long_context_gpt_5_4_above_272k(table: PriceTable) -> None:
    # gpt-5.4 base: input $2.50, output $15.00, cache_read $0.25;
    # above 272,000 input tokens (cached included): input $5.00, output $22.50, cache_read $0.50.
    raw = ResponseUsage(
        input_tokens=300_000,
        input_tokens_details=InputTokensDetails(cached_tokens=250_000, cache_write_tokens=0),
        output_tokens=8000,
        output_tokens_details=OutputTokensDetails(reasoning_tokens=6000),
        total_tokens=308_000,
    )
    usage = normalize_openai(raw)
    assert usage.input == 50_000  # the uncached part alone is far below 272k
    cost = price(table, "gpt-5.4", usage)
    # WHOLE request at the tier:
    #   50,000 * 5.00 = 250,000
    #  250,000 * 0.50 = 125,000
    #    2,000 * 22.50 =  45,000
    #    6,000 * 22.50 = 135,000   sum 555,000 / 1e6 = 0.555
    expected = (
        Decimal("50000") * Decimal("5.00")
        + Decimal("250000") * Decimal("0.50")
        + Decimal("2000") * Decimal("22.50")
        + Decimal("6000") * Decimal("22.50")
    ) / M
    assert expected == Decimal("0.555")
    assert cost.total == expected
    assert cost.cache_read == Decimal("250000") * Decimal("0.50") / M
    assert cost.price_version == "gpt-5.4@2026-03-05"


def test_openai_long_context_threshold_is_exclusive(table: PriceTable) -> None:
    # Exactly 272,000 input tokens does not EXCEED the threshold: base rates.
    usage = Usage.inclusive(272_000, 1000, cached_tokens=72_000)
    cost = price(table, "gpt-5.4", usage)
    # 200,000 * 2.50 + 72,000 * 0.25 + 1,000 * 15.00 = 500,000 + 18,000 + 15,000 = 533,000
    assert (
        cost.total
        == (
            Decimal("200000") * Decimal("2.50")
            + Decimal("72000") * Decimal("0.25")
            + Decimal("1000") * Decimal("15.00")
        )
        / M
    )
    # One more token crosses it: 200,001 * 5.00 + 72,000 * 0.50 + 1,000 * 22.50
    cost = price(table, "gpt-5.4", Usage.inclusive(272_001, 1000, cached_tokens=72_000))
    assert (
        cost.total
        == (
            Decimal("200001") * Decimal("5.00")
            + Decimal("72000") * Decimal("0.50")
            + Decimal("1000") * Decimal("22.50")
        )
        / M
    )


WHEN_GPT_5_6 = dt.datetime(2026, 9, 1, tzinfo=UTC)  # gpt-5.6-sol price of 2026-08-21


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(
            ResponseUsage(
                input_tokens=20_000,
                input_tokens_details=InputTokensDetails(
                    cached_tokens=12_000, cache_write_tokens=6_000
                ),
                output_tokens=1000,
                output_tokens_details=OutputTokensDetails(reasoning_tokens=400),
                total_tokens=21_000,
            ),
            id="responses",
        ),
        pytest.param(
            CompletionUsage(
                prompt_tokens=20_000,
                completion_tokens=1000,
                total_tokens=21_000,
                prompt_tokens_details=PromptTokensDetails(
                    cached_tokens=12_000, cache_write_tokens=6_000
                ),
                completion_tokens_details=CompletionTokensDetails(reasoning_tokens=400),
            ),
            id="chat",
        ),
    ],
)
def test_openai_cache_write_tokens_gpt_5_6(table: PriceTable, raw: Any) -> None:
    # The OpenAI SDK reports `cache_write_tokens` (⊂ input, like cached_tokens) and the table
    # has an OpenAI cache-write rate for gpt-5.6 / gpt-6. gpt-5.6-sol from 2026-08-21:
    # input $4.00, output $20.00, cache_read $0.40, cache_write_5m $5.00.
    usage = normalize_any(raw)
    assert usage is not None
    assert (usage.input, usage.cache_read, usage.cache_write_5m) == (2000, 12_000, 6000)
    assert (usage.output, usage.reasoning) == (600, 400)
    cost = price(table, "gpt-5.6", usage, WHEN_GPT_5_6)
    #  2,000 * 4.00 =  8,000
    # 12,000 * 0.40 =  4,800
    #  6,000 * 5.00 = 30,000   (written tokens at the write rate, not at the input rate)
    #    600 * 20   = 12,000
    #    400 * 20   =  8,000   sum 62,800 / 1e6 = 0.0628
    assert cost.cache_write == Decimal("6000") * Decimal("5.00") / M
    assert cost.total == Decimal("0.0628")
    assert cost.price_version == "gpt-5.6-sol@2026-08-21"


def test_openai_embeddings(table: PriceTable) -> None:
    # text-embedding-3-small: input $0.02, output $0.
    raw = EmbeddingUsage(prompt_tokens=8192, total_tokens=8192)
    usage = normalize_openai(raw)
    assert usage == Usage(input=8192)
    assert normalize_any(raw) == usage
    cost = price(table, "openai/text-embedding-3-small", usage)
    # 8192 * 0.02 / 1e6 = 0.00016384
    assert cost.total == Decimal("8192") * Decimal("0.02") / M == Decimal("0.00016384")
    assert cost.output == 0
    assert cost.price_version == "text-embedding-3-small@2024-01-25"


# --------------------------------------------------------------------------- Anthropic


def _claude(inp: int, read: int, w5: int, w1: int, out: int, **extra: Any) -> at.Usage:
    return at.Usage(
        input_tokens=inp,
        cache_read_input_tokens=read,
        cache_creation_input_tokens=w5 + w1,
        cache_creation=at.CacheCreation(ephemeral_5m_input_tokens=w5, ephemeral_1h_input_tokens=w1),
        output_tokens=out,
        service_tier="standard",
        **extra,
    )


def test_anthropic_5m_and_1h_cache_writes_haiku_4_5(table: PriceTable) -> None:
    # claude-haiku-4-5: input $1.00, output $5.00, cache_read $0.10,
    # cache_write_5m $1.25, cache_write_1h $2.00.
    raw = _claude(50, 20_000, 1000, 2000, 700)
    usage = normalize_anthropic(raw)
    # Additive: input_tokens excludes cache reads and writes.
    assert (usage.input, usage.cache_read, usage.cache_write_5m, usage.cache_write_1h) == (
        50,
        20_000,
        1000,
        2000,
    )
    assert (usage.output, usage.reasoning) == (700, 0)
    assert usage.total == 50 + 20_000 + 3000 + 700
    assert normalize_any(raw) == usage
    cost = price(table, "claude-haiku-4-5-20251001", usage)
    #     50 * 1.00 =    50
    # 20,000 * 0.10 = 2,000
    #  1,000 * 1.25 = 1,250
    #  2,000 * 2.00 = 4,000
    #    700 * 5.00 = 3,500    sum 10,800 / 1e6 = 0.0108
    assert cost.input == Decimal("50") * Decimal("1.00") / M
    assert cost.cache_read == Decimal("20000") * Decimal("0.10") / M
    assert cost.cache_write == (Decimal("1000") * Decimal("1.25") + 2000 * Decimal("2.00")) / M
    assert cost.output == Decimal("700") * Decimal("5.00") / M
    assert cost.total == Decimal("0.0108")
    assert cost.price_version == "claude-haiku-4-5@2025-10-01"

    # The same 3000 written tokens, all with a 5-minute TTL, cost less.
    cost_5m = price(
        table, "claude-haiku-4-5", normalize_anthropic(_claude(50, 20_000, 3000, 0, 700))
    )
    assert cost_5m.cache_write == Decimal("3000") * Decimal("1.25") / M
    assert cost.cache_write > cost_5m.cache_write


def test_anthropic_thinking_details_not_billed_twice(table: PriceTable) -> None:
    # output_tokens_details.thinking_tokens is a decomposition of output_tokens (which stays the
    # billed total): 700 output tokens at $5.00, whatever the split.
    raw = _claude(
        50, 0, 0, 0, 700, output_tokens_details=at.OutputTokensDetails(thinking_tokens=500)
    )
    usage = normalize_anthropic(raw)
    assert usage.output + usage.reasoning == 700
    cost = price(table, "anthropic/claude-haiku-4-5", usage)
    # 50 * 1.00 + 700 * 5.00 = 3,550 / 1e6
    assert cost.total == (Decimal("50") * Decimal("1.00") + Decimal("700") * Decimal("5.00")) / M


def test_anthropic_long_context_counts_cache_reads_and_writes(table: PriceTable) -> None:
    # claude-sonnet-4-5 base: 3.00 / 15.00 / read 0.30 / 5m 3.75 / 1h 6.00;
    # above 200,000 input tokens: 6.00 / 22.50 / read 0.60 / 5m 7.50 / 1h 12.00.
    # input_tokens alone (1,000) is tiny; input + cache read + cache write = 201,000 > 200,000.
    raw = _claude(1000, 150_000, 30_000, 20_000, 2000)
    usage = normalize_anthropic(raw)
    assert usage.total_input == 201_000
    cost = price(table, "claude-sonnet-4-5-20250929", usage)
    #   1,000 *  6.00 =     6,000
    # 150,000 *  0.60 =    90,000
    #  30,000 *  7.50 =   225,000
    #  20,000 * 12.00 =   240,000
    #   2,000 * 22.50 =    45,000   sum 606,000 / 1e6 = 0.606
    assert cost.input == Decimal("1000") * Decimal("6.00") / M
    assert cost.cache_read == Decimal("150000") * Decimal("0.60") / M
    assert cost.cache_write == (Decimal("30000") * Decimal("7.50") + 20000 * Decimal("12.00")) / M
    assert cost.output == Decimal("2000") * Decimal("22.50") / M
    assert cost.total == Decimal("0.606")
    assert cost.price_version == "claude-sonnet-4-5@2025-09-29"

    # Exactly 200,000 in total: base rates.
    at_threshold = normalize_anthropic(_claude(0, 150_000, 30_000, 20_000, 2000))
    cost = price(table, "claude-sonnet-4-5", at_threshold)
    # 150,000 * 0.30 + 30,000 * 3.75 + 20,000 * 6.00 + 2,000 * 15.00
    # = 45,000 + 112,500 + 120,000 + 30,000 = 307,500 / 1e6 = 0.3075
    assert cost.total == Decimal("0.3075")


def test_one_token_cache_write_is_exact(table: PriceTable) -> None:
    # claude-sonnet-4-5: cache_write_5m $3.75 / MTok. An old-style payload without the
    # cache_creation breakdown: every write is a 5-minute write.
    raw = at.Usage(input_tokens=0, output_tokens=0, cache_creation_input_tokens=1)
    usage = normalize_anthropic(raw)
    assert usage == Usage(cache_write_5m=1)
    cost = price(table, "claude-sonnet-4-5", usage)
    # 1 * 3.75 / 1e6 = 0.00000375
    assert cost.cache_write == Decimal("0.00000375")
    assert cost.total == Decimal("0.00000375")
    assert str(cost.total.normalize()) in ("0.00000375", "3.75E-6")


# --------------------------------------------------------------------------- Google Gemini


def test_gemini_thoughts_and_cached_content(table: PriceTable) -> None:
    # gemini-2.5-flash: input $0.30, output $2.50, cache_read $0.03.
    raw = {
        "prompt_token_count": 12_000,
        "cached_content_token_count": 8_000,  # ⊂ prompt
        "candidates_token_count": 900,
        "thoughts_token_count": 1500,  # NOT in candidates, billed as output
        "tool_use_prompt_token_count": 200,  # next to prompt
        "total_token_count": 14_600,
    }
    usage = normalize_gemini(raw)
    assert (usage.input, usage.cache_read, usage.output, usage.reasoning) == (4200, 8000, 900, 1500)
    assert usage.total == raw["total_token_count"]
    assert normalize_any(raw) == usage
    cost = price(table, "gemini-2.5-flash", usage)
    # input     4,200 * 0.30 = 1,260
    # cache     8,000 * 0.03 =   240
    # output      900 * 2.50 = 2,250
    # thoughts  1,500 * 2.50 = 3,750    sum 7,500 / 1e6 = 0.0075
    assert cost.reasoning == Decimal("1500") * Decimal("2.50") / M
    assert cost.cache_read == Decimal("8000") * Decimal("0.03") / M
    assert cost.total == Decimal("0.0075")
    assert cost.price_version == "gemini-2.5-flash@2025-06-17"


def test_gemini_long_context_2_5_pro_above_200k(table: PriceTable) -> None:
    # gemini-2.5-pro base 1.25 / 10.00 / read 0.125; above 200,000: 2.50 / 15.00 / read 0.25.
    raw = {
        "prompt_token_count": 250_000,
        "cached_content_token_count": 120_000,
        "candidates_token_count": 4000,
        "thoughts_token_count": 6000,
        "total_token_count": 260_000,
    }
    usage = normalize_gemini(raw)
    assert usage.total_input == 250_000
    cost = price(table, "models/gemini-2.5-pro", usage)
    # 130,000 * 2.50 = 325,000
    # 120,000 * 0.25 =  30,000
    #   4,000 * 15   =  60,000
    #   6,000 * 15   =  90,000   sum 505,000 / 1e6 = 0.505
    assert (
        cost.total
        == (
            Decimal("130000") * Decimal("2.50")
            + Decimal("120000") * Decimal("0.25")
            + Decimal("4000") * Decimal("15.00")
            + Decimal("6000") * Decimal("15.00")
        )
        / M
    )
    assert cost.total == Decimal("0.505")
    assert cost.price_version == "gemini-2.5-pro@2025-06-17"


# --------------------------------------------------------------------------- DeepSeek


@pytest.mark.parametrize("as_sdk_type", [False, True], ids=["dict", "openai-sdk"])
def test_deepseek_prompt_cache_hit_tokens(table: PriceTable, as_sdk_type: bool) -> None:
    # deepseek-chat: input $0.27, output $1.10, cache_read $0.07. hit + miss = prompt.
    raw: Any = {
        "prompt_tokens": 3000,
        "completion_tokens": 400,
        "total_tokens": 3400,
        "prompt_cache_hit_tokens": 2560,
        "prompt_cache_miss_tokens": 440,
    }
    if as_sdk_type:  # what the openai SDK hands back when pointed at DeepSeek
        raw = CompletionUsage.model_validate(raw)
    usage = normalize_any(raw)
    assert usage == Usage(input=440, cache_read=2560, output=400)
    cost = price(table, "deepseek/deepseek-chat", usage)
    # 440 * 0.27 + 2560 * 0.07 + 400 * 1.10 = 118.8 + 179.2 + 440 = 738 / 1e6 = 0.000738
    assert (
        cost.total
        == (
            Decimal("440") * Decimal("0.27")
            + Decimal("2560") * Decimal("0.07")
            + Decimal("400") * Decimal("1.10")
        )
        / M
    )
    assert cost.total == Decimal("0.000738")
    assert cost.price_version == "deepseek-chat@2025-02-09"


def test_deepseek_reasoner_with_cached_tokens_details(table: PriceTable) -> None:
    # deepseek-reasoner: input $0.55, output $2.19, cache_read $0.14; reasoning = output.
    # Current DeepSeek responses carry prompt_tokens_details.cached_tokens as well.
    raw = {
        "prompt_tokens": 1000,
        "completion_tokens": 3000,
        "total_tokens": 4000,
        "prompt_tokens_details": {"cached_tokens": 640},
        "prompt_cache_hit_tokens": 640,
        "prompt_cache_miss_tokens": 360,
        "completion_tokens_details": {"reasoning_tokens": 2500},
    }
    usage = normalize_any(raw)
    assert usage == Usage(input=360, cache_read=640, output=500, reasoning=2500)
    cost = price(table, "deepseek-reasoner", usage)
    # 360 * 0.55 + 640 * 0.14 + 500 * 2.19 + 2500 * 2.19 = 198 + 89.6 + 1095 + 5475 = 6857.6
    assert cost.total == Decimal("6857.6") / M == Decimal("0.0068576")


# --------------------------------------------------------------------------- Bedrock


def test_bedrock_converse_claude(table: PriceTable) -> None:
    # A geographic (us.) profile of Claude Haiku 4.5 on Bedrock: 1.10 / 5.50 / read 0.11 /
    # write(5m) 1.375, 10% over the global profile's (Anthropic's) 1.00 / 5.00 / 0.10 / 1.25
    # (aws.amazon.com/bedrock/pricing, as genai-prices 0.2.3 has it).
    raw = {
        "inputTokens": 120,
        "outputTokens": 450,
        "totalTokens": 5570,
        "cacheReadInputTokens": 4000,
        "cacheWriteInputTokens": 1000,
    }
    usage = normalize_bedrock(raw)
    assert usage == Usage(input=120, cache_read=4000, cache_write_5m=1000, output=450)
    assert usage.total == raw["totalTokens"]
    assert normalize_any(raw) == usage
    cost = price(table, "us.anthropic.claude-haiku-4-5-20251001-v1:0", usage)
    # 120 * 1.10 + 4000 * 0.11 + 1000 * 1.375 + 450 * 5.50 = 132 + 440 + 1375 + 2475 = 4422
    assert cost.total == Decimal("4422") / M == Decimal("0.004422")
    assert cost.model_id == "anthropic.claude-haiku-4-5"
    cost = price(table, "global.anthropic.claude-haiku-4-5-20251001-v1:0", usage)
    # 120 * 1.00 + 4000 * 0.10 + 1000 * 1.25 + 450 * 5.00 = 120 + 400 + 1250 + 2250 = 4020
    assert cost.total == Decimal("4020") / M == Decimal("0.00402")
    assert cost.price_version == "global.anthropic.claude-haiku-4-5@2025-10-01"


# --------------------------------------------------------------------------- model names


@pytest.mark.parametrize(
    ("name", "entry_id"),
    [
        ("gpt-4o", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-2024-11-20", "gpt-4o"),
        ("openai/gpt-4o", "gpt-4o"),
        ("GPT-4o", "gpt-4o"),
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("openai/gpt-4o-mini", "gpt-4o-mini"),
        ("anthropic/claude-haiku-4-5", "claude-haiku-4-5"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("us.anthropic.claude-haiku-4-5-20251001-v1:0", "anthropic.claude-haiku-4-5"),
        ("global.anthropic.claude-haiku-4-5-20251001-v1:0", "global.anthropic.claude-haiku-4-5"),
        ("claude-haiku-4-5@20251001", "claude-haiku-4-5"),  # Vertex AI: Anthropic's rates
        ("models/gemini-2.5-pro", "gemini-2.5-pro"),
        ("gemini-2.5-flash-lite", "gemini-2.5-flash-lite"),
    ],
)
def test_model_names_resolve(table: PriceTable, name: str, entry_id: str) -> None:
    entry = table.resolve(name)
    assert entry is not None, name
    assert entry.id == entry_id


def test_gpt_4o_mini_is_not_priced_as_gpt_4o(table: PriceTable) -> None:
    usage = Usage(input=1_000_000, output=1_000_000)
    # gpt-4o-mini: 1M * 0.15 + 1M * 0.60 = $0.75 (gpt-4o would be $12.50)
    assert price(table, "gpt-4o-mini-2024-07-18", usage).total == Decimal("0.15") + Decimal("0.60")
    assert price(table, "gpt-4o-2024-08-06", usage).total == Decimal("2.50") + Decimal("10.00")


# --------------------------------------------------------------------------- price versions


def test_price_version_by_date_o3(table: PriceTable) -> None:
    # o3: $10 / $40 from 2025-04-16, cut to $2 / $8 on 2025-06-10 (cache_read $0.50 both).
    usage = Usage(input=1000, cache_read=2000, output=500)
    before = price(table, "o3", usage, dt.datetime(2025, 6, 9, 23, 59, 59, tzinfo=UTC))
    # 1000 * 10 + 2000 * 0.50 + 500 * 40 = 10,000 + 1,000 + 20,000 = 31,000 / 1e6
    assert before.total == Decimal("0.031")
    assert before.price_version == "o3@2025-04-16"

    on_the_day = price(table, "o3-2025-04-16", usage, dt.datetime(2025, 6, 10, tzinfo=UTC))
    # 1000 * 2 + 2000 * 0.50 + 500 * 8 = 2,000 + 1,000 + 4,000 = 7,000 / 1e6
    assert on_the_day.total == Decimal("0.007")
    assert on_the_day.price_version == "o3@2025-06-10"

    # A call older than the oldest known price uses the oldest.
    ancient = price(table, "o3", usage, dt.datetime(2024, 1, 1, tzinfo=UTC))
    assert ancient.price_version == "o3@2025-04-16"
    assert ancient.total == Decimal("0.031")


def test_price_version_effective_date_is_utc(table: PriceTable) -> None:
    # 2025-06-10 03:00 at UTC+05:00 is 2025-06-09 22:00 UTC: the old o3 price still applies
    # (effective dates are UTC dates, llm_config.yaml).
    usage = Usage(input=1000, output=500)
    plus5 = dt.timezone(dt.timedelta(hours=5))
    cost = price(table, "o3", usage, dt.datetime(2025, 6, 10, 3, 0, tzinfo=plus5))
    assert cost.price_version == "o3@2025-04-16"
    # And 2025-06-09 20:00 at UTC-05:00 is already 2025-06-10 01:00 UTC: the new price.
    minus5 = dt.timezone(dt.timedelta(hours=-5))
    cost = price(table, "o3", usage, dt.datetime(2025, 6, 9, 20, 0, tzinfo=minus5))
    assert cost.price_version == "o3@2025-06-10"


def test_long_context_tier_ends_with_its_price_version(table: PriceTable) -> None:
    # claude-sonnet-4-6 had a >200k tier until 2026-03-13 (6.00 / 22.50), none after (3 / 15).
    usage = Usage(input=250_000, output=1000)
    old = price(table, "claude-sonnet-4-6", usage, dt.datetime(2026, 3, 12, tzinfo=UTC))
    # 250,000 * 6.00 + 1,000 * 22.50 = 1,500,000 + 22,500 = 1,522,500 / 1e6
    assert old.total == Decimal("1.5225")
    assert old.price_version == "claude-sonnet-4-6@2026-02-17"
    new = price(table, "claude-sonnet-4-6", usage, dt.datetime(2026, 3, 13, tzinfo=UTC))
    # 250,000 * 3.00 + 1,000 * 15.00 = 750,000 + 15,000 = 765,000 / 1e6
    assert new.total == Decimal("0.765")
    assert new.price_version == "claude-sonnet-4-6@2026-03-13"


def test_announced_future_price_takes_over_on_the_day(table: PriceTable) -> None:
    # gemini-3.6-flash: 0.75 / 3.75 from 2026-07-21, 1.50 / 7.50 from 2027-01-01.
    usage = Usage(input=1000, output=1000)
    dec = price(table, "gemini-3.6-flash", usage, dt.datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    assert dec.total == (Decimal("1000") * Decimal("0.75") + 1000 * Decimal("3.75")) / M
    assert dec.price_version == "gemini-3.6-flash@2026-07-21"
    jan = price(table, "gemini-3.6-flash", usage, dt.datetime(2027, 1, 1, tzinfo=UTC))
    assert jan.total == (Decimal("1000") * Decimal("1.50") + 1000 * Decimal("7.50")) / M
    assert jan.price_version == "gemini-3.6-flash@2027-01-01"


# --------------------------------------------------------------------------- cost_status


def _record(table: PriceTable, model: str | None, raw_usage: Any) -> CallRecord:
    ctx = CallContext(
        prices=table,
        api_key_alias=None,
        tags={},
        secrets=(),
        extractor=None,
        capture_bodies=False,
    )
    record = CallRecord(
        "req-1",
        WHEN.timestamp(),
        0.0,
        "openai",
        "chat.completions",
        model,
        False,
        None,
        None,
        ctx,
    )
    record.usage = raw_usage
    return record


def test_call_record_cost_status(table: PriceTable) -> None:
    good = CompletionUsage(
        prompt_tokens=2006,
        completion_tokens=300,
        total_tokens=2306,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=1920),
    )
    usage, cost, status = _record(table, "gpt-4o", good).priced()
    assert status == "computed"
    assert cost is not None and cost.total == Decimal("0.005615")  # as in the golden above

    record = _record(table, "gpt-4o", good)
    record.status = "incomplete"
    assert record.priced()[2] == "incomplete"

    assert _record(table, "no-such-model-xyz", good).priced()[1:] == (None, "unknown_model")
    assert _record(table, "gpt-4o", None).priced() == (None, None, "missing_usage")
    errored = _record(table, "gpt-4o", None)
    errored.status = "error"
    assert errored.priced()[2] == "error"

    bad = {"prompt_tokens": -5, "completion_tokens": 10}
    usage, cost, status = _record(table, "gpt-4o", bad).priced()
    assert (cost, status) == (None, "invalid_usage")
    assert usage is not None and "negative_count" in usage.flags
