"""Golden costs of the billing variants: service tiers (OpenAI flex / priority, Anthropic batch
and fast mode), server-side web search fees and audio tokens.

Each case is a response of the real openai / anthropic SDK (from the in-process fake
provider, ``majordomo_log.testing``), priced as the writer prices it (``CallRecord.priced``),
against a cost worked out BY HAND from the provider's published price, quoted in a comment
(the same figures as llm_config.yaml, which takes them from genai-prices 0.2.3 and is
cross-checked against it). A change to a price pinned here is deliberate: change both.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from majordomo_log.record.billing import Billing, decimal_amounts, read_billing
from majordomo_log.record.call import CallContext, CallRecord
from majordomo_log.record.price_extras import parse_extras
from majordomo_log.record.prices_compiled import amounts
from majordomo_log.record.pricing import PRICES_ENV_VAR, PriceTable, Rates
from majordomo_log.record.usage import MAX_SANE_TOKENS, Usage
from majordomo_log.testing import FakeProvider, fake_anthropic_client, fake_openai_client

M = Decimal(1_000_000)
UTC = dt.timezone.utc
# After genai-prices' verification of the tier prices (2026-10-12 and -14): they apply.
WHEN = dt.datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def table() -> Iterator[PriceTable]:
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(PRICES_ENV_VAR, raising=False)
        yield PriceTable.load()


def record_of(
    table: PriceTable,
    response: Any,
    *,
    provider: str = "openai",
    operation: str = "chat.completions",
    when: dt.datetime = WHEN,
    chunks: list[Any] | None = None,
) -> CallRecord:
    """The record the wrapper makes of a returned response (read in the background)."""
    ctx = CallContext(prices=table, api_key_alias=None, tags={}, secrets=())
    model = None if chunks is not None else response.model
    record = CallRecord(
        None, when.timestamp(), 0.0, provider, operation, model, chunks is not None, None, None, ctx
    )
    record.t_end = 0.5
    if chunks is not None:
        record.stream_chunks = chunks
    else:
        record.response = response
        record.response_unread = True
    return record


async def chat(provider: FakeProvider, model: str, **kwargs: Any) -> Any:
    client = fake_openai_client(provider)
    return await client.chat.completions.create(model=model, messages=[], **kwargs)


async def responses(provider: FakeProvider, model: str) -> Any:
    return await fake_openai_client(provider).responses.create(model=model, input="hi")


async def message(provider: FakeProvider, model: str) -> Any:
    client = fake_anthropic_client(provider)
    return await client.messages.create(model=model, max_tokens=5, messages=[])


# --------------------------------------------------------------------------- OpenAI tiers


async def test_openai_flex_o4_mini(table: PriceTable) -> None:
    # o4-mini flex (OpenAI pricing, Flex: $0.55 input / $0.138 cached input / $2.20 output per
    # 1M; standard $1.10 / $0.275 / $4.40). The response says which tier served it.
    provider = FakeProvider(
        service_tier="flex",
        openai_usage={
            "prompt_tokens": 5000,
            "cached_tokens": 3584,
            "completion_tokens": 1800,
            "reasoning_tokens": 1216,
        },
    )
    response = await chat(provider, "o4-mini-2025-04-16")
    assert response.service_tier == "flex"
    usage, cost, status = record_of(table, response).priced()
    assert status == "computed" and cost is not None and usage is not None
    # input      1416 * 0.55  =   778.8
    # cache_read 3584 * 0.138 =   494.592
    # output      584 * 2.20  = 1,284.8
    # reasoning  1216 * 2.20  = 2,675.2     sum 5,233.392 / 1e6
    assert cost.input == Decimal("0.0007788")
    assert cost.cache_read == Decimal("0.000494592")
    assert cost.total == Decimal("0.005233392")  # standard: 0.0104632
    assert cost.service_tier == "flex"
    assert cost.server_tool_cost is None
    assert cost.price_version == "o4-mini@2025-04-16"
    assert usage.flags == ()


@pytest.mark.parametrize("reported", ["priority", "fast"])
async def test_openai_priority_gpt_4o(table: PriceTable, reported: str) -> None:
    # gpt-4o priority (OpenAI pricing, Priority: $4.25 / $2.125 cached / $17.00 per 1M).
    # A request for `fast` is served and billed as priority.
    provider = FakeProvider(
        service_tier=reported,
        openai_usage={"prompt_tokens": 2006, "cached_tokens": 1920, "completion_tokens": 300},
    )
    _, cost, _ = record_of(table, await chat(provider, "gpt-4o")).priced()
    assert cost is not None
    # 86 * 4.25 + 1920 * 2.125 + 300 * 17 = 365.5 + 4,080 + 5,100 = 9,545.5 / 1e6
    assert cost.total == Decimal("0.0095455")  # standard: 0.005615
    assert cost.service_tier == "priority"


@pytest.mark.parametrize("reported", ["default", "auto", None])
async def test_openai_default_and_auto_are_standard(table: PriceTable, reported: Any) -> None:
    provider = FakeProvider(
        openai_usage={"prompt_tokens": 2006, "cached_tokens": 1920, "completion_tokens": 300}
    )
    response = await chat(provider, "gpt-4o")
    response.service_tier = reported
    record = record_of(table, response)
    _, cost, _ = record.priced()
    assert cost is not None and cost.total == Decimal("0.005615")  # test_costs_golden.py
    assert cost.service_tier is None and record.billing is None


async def test_openai_tiers_above_the_long_context_threshold_gpt_5_4(table: PriceTable) -> None:
    # gpt-5.4 above 272k input tokens: standard $5.00 / $0.50 cached / $22.50 (whole request).
    # Flex has its own long-context rates ($2.50 / $0.25 / $11.25); Priority is flat over the
    # whole context ($5.00 / $0.50 / $30.00).
    usage = {"input_tokens": 300_000, "cached_tokens": 250_000, "output_tokens": 8000}
    usage["reasoning_tokens"] = 6000
    costs = {}
    for tier in ("flex", "priority"):
        provider = FakeProvider(service_tier=tier, responses_usage=usage)  # type: ignore[arg-type]
        response = await responses(provider, "gpt-5.4")
        _, cost, _ = record_of(table, response, operation="responses").priced()
        assert cost is not None and cost.service_tier == tier
        costs[tier] = cost.total
    # flex:      50,000 * 2.50 + 250,000 * 0.25 + 8,000 * 11.25 = 125,000 + 62,500 + 90,000
    assert costs["flex"] == Decimal("0.2775")
    # priority:  50,000 * 5.00 + 250,000 * 0.50 + 8,000 * 30.00 = 250,000 + 125,000 + 240,000
    assert costs["priority"] == Decimal("0.615")  # standard: 0.555


async def test_a_tier_the_model_has_no_price_for_is_standard_and_flagged(
    table: PriceTable,
) -> None:
    # OpenAI offers no flex tier for gpt-4o: priced at the standard rates, flagged.
    provider = FakeProvider(
        service_tier="flex",
        openai_usage={"prompt_tokens": 2006, "cached_tokens": 1920, "completion_tokens": 300},
    )
    usage, cost, status = record_of(table, await chat(provider, "gpt-4o")).priced()
    assert status == "computed" and cost is not None and usage is not None
    assert cost.total == Decimal("0.005615") and cost.service_tier is None
    assert usage.flags == ("service_tier_unpriced",)


async def test_a_tier_before_its_price_version_is_flagged_not_guessed(table: PriceTable) -> None:
    # o3 has flex rates in its 2025-06-10 price only; a flex call on 2025-06-01 is priced by the
    # 2025-04-16 price ($10 / $0.50 cached / $40) at the standard rates, flagged.
    provider = FakeProvider(
        service_tier="flex", openai_usage={"prompt_tokens": 1000, "completion_tokens": 500}
    )
    record = record_of(table, await chat(provider, "o3"), when=dt.datetime(2025, 6, 1, tzinfo=UTC))
    usage, cost, _ = record.priced()
    assert cost is not None and usage is not None
    # 1000 * 10 + 500 * 40 = 30,000 / 1e6
    assert cost.total == Decimal("0.03") and cost.price_version == "o3@2025-04-16"
    assert usage.flags == ("service_tier_unpriced",)
    # ... and on 2025-06-10, the flex rates of that price: 1000 * 1.00 + 500 * 4.00 = 3,000
    record = record_of(table, await chat(provider, "o3"), when=dt.datetime(2025, 6, 10, tzinfo=UTC))
    _, cost, _ = record.priced()
    assert cost is not None and cost.total == Decimal("0.003") and cost.service_tier == "flex"


async def test_openai_chat_stream_reports_its_tier_in_the_chunks(table: PriceTable) -> None:
    # The chunks carry service_tier; the assembled body does not, the price does.
    provider = FakeProvider(
        service_tier="flex", openai_usage={"prompt_tokens": 1000, "completion_tokens": 200}
    )
    stream = await chat(provider, "gpt-5-mini", stream=True, stream_options={"include_usage": True})
    chunks = [chunk async for chunk in stream]
    record = record_of(table, None, chunks=chunks)
    _, cost, _ = record.priced()
    # gpt-5-mini flex: $0.125 / $1.00 per 1M: 1000 * 0.125 + 200 * 1.00 = 325 / 1e6
    assert cost is not None and cost.total == Decimal("0.000325")
    assert cost.service_tier == "flex"
    assert "service_tier" not in record.response


# --------------------------------------------------------------------------- Anthropic tiers


def _anthropic(**usage: Any) -> FakeProvider:
    return FakeProvider(anthropic_usage=usage)  # type: ignore[arg-type]


async def test_anthropic_message_batch_haiku_4_5(table: PriceTable) -> None:
    # Message Batches are billed at 50% (Anthropic pricing, Batch: claude-haiku-4-5 $0.50
    # input, $0.05 cache hits, $0.625 5m writes, $1.00 1h writes, $2.50 output per 1M).
    provider = _anthropic(
        input_tokens=50,
        cache_read_input_tokens=20_000,
        cache_creation_5m=1000,
        cache_creation_1h=2000,
        output_tokens=700,
        service_tier="batch",
    )
    response = await message(provider, "claude-haiku-4-5-20251001")
    assert response.usage.service_tier == "batch"
    _, cost, _ = record_of(table, response, provider="anthropic", operation="messages").priced()
    assert cost is not None
    # 50 * 0.50 + 20,000 * 0.05 + 1,000 * 0.625 + 2,000 * 1.00 + 700 * 2.50
    # = 25 + 1,000 + 625 + 2,000 + 1,750 = 5,400 / 1e6   (standard: 0.0108)
    assert cost.total == Decimal("0.0054")
    assert cost.cache_write == Decimal("0.002625")
    assert cost.service_tier == "batch"
    # savings: 23,000 cached tokens at the batch input rate (0.0115) minus reads and writes
    assert cost.cache_savings == Decimal("0.0115") - Decimal("0.001") - Decimal("0.002625")


async def test_anthropic_priority_tier_has_no_price_and_is_flagged(table: PriceTable) -> None:
    # Anthropic's Priority Tier is a capacity commitment with no per-token price of its own in
    # genai-prices: standard rates, flagged, and no service_tier on the cost.
    provider = _anthropic(input_tokens=1000, output_tokens=100, service_tier="priority")
    response = await message(provider, "claude-haiku-4-5")
    usage, cost, _ = record_of(table, response, provider="anthropic", operation="messages").priced()
    assert cost is not None and usage is not None
    assert cost.total == Decimal("0.0015")  # 1000 * 1.00 + 100 * 5.00 = 1,500 / 1e6
    assert cost.service_tier is None and usage.flags == ("service_tier_unpriced",)


async def test_anthropic_fast_mode_opus_5(table: PriceTable) -> None:
    # Fast mode (`usage.speed == "fast"`, Anthropic pricing: claude-opus-5 fast $10 input /
    # $50 output per 1M, twice the standard $5 / $25).
    provider = _anthropic(input_tokens=1000, output_tokens=500, speed="fast")
    response = await message(provider, "claude-opus-5")
    _, cost, _ = record_of(table, response, provider="anthropic", operation="messages").priced()
    assert cost is not None
    # 1000 * 10 + 500 * 50 = 35,000 / 1e6
    assert cost.total == Decimal("0.035") and cost.service_tier == "fast"


async def test_anthropic_batch_above_the_long_context_threshold(table: PriceTable) -> None:
    # claude-sonnet-4-5 batch above 200k input tokens (the whole request at the batch tier's
    # long-context rates: $3.00 input, $0.30 cache hits, $3.75 / $6.00 writes, $11.25 output).
    provider = _anthropic(
        input_tokens=1000,
        cache_read_input_tokens=150_000,
        cache_creation_5m=30_000,
        cache_creation_1h=20_000,
        output_tokens=2000,
        service_tier="batch",
    )
    response = await message(provider, "claude-sonnet-4-5")
    _, cost, _ = record_of(table, response, provider="anthropic", operation="messages").priced()
    assert cost is not None
    # 1,000 * 3 + 150,000 * 0.30 + 30,000 * 3.75 + 20,000 * 6 + 2,000 * 11.25
    # = 3,000 + 45,000 + 112,500 + 120,000 + 22,500 = 303,000 / 1e6  (standard: 0.606)
    assert cost.total == Decimal("0.303")


# --------------------------------------------------------------------------- web search fees


async def test_anthropic_web_search_requests_sonnet_4_5(table: PriceTable) -> None:
    # Anthropic web search: $10 per 1,000 searches, plus tokens (claude-sonnet-4-5 $3 / $15).
    provider = _anthropic(input_tokens=1200, output_tokens=800, web_search_requests=3)
    response = await message(provider, "claude-sonnet-4-5")
    record = record_of(table, response, provider="anthropic", operation="messages")
    _, cost, _ = record.priced()
    assert cost is not None
    # tokens: 1200 * 3 + 800 * 15 = 15,600 / 1e6 = 0.0156;  searches: 3 * 10 / 1000 = 0.03
    assert cost.server_tool_cost == Decimal("0.03")
    assert cost.total == Decimal("0.0456")
    assert cost.total == cost.input + cost.output + cost.server_tool_cost
    assert record.billing == Billing(web_search_calls=3)


async def test_anthropic_stream_web_search_and_batch_free_fetches(table: PriceTable) -> None:
    # A stream's message_delta repeats server_tool_use cumulatively: 2 searches, counted once.
    provider = _anthropic(input_tokens=100, output_tokens=10, web_search_requests=2)
    client = fake_anthropic_client(provider)
    stream = await client.messages.create(
        model="claude-haiku-4-5", max_tokens=5, messages=[], stream=True
    )
    chunks = [event async for event in stream]
    record = record_of(table, None, provider="anthropic", operation="messages", chunks=chunks)
    _, cost, _ = record.priced()
    # 100 * 1.00 + 10 * 5.00 = 150 / 1e6 = 0.00015; 2 searches = 0.02
    assert cost is not None and cost.total == Decimal("0.02015")
    assert record.billing is not None and record.billing.web_search_calls == 2


async def test_openai_responses_web_search_calls_gpt_5(table: PriceTable) -> None:
    # OpenAI web search tool: $10 per 1,000 calls, one per web_search_call output item (the
    # search content tokens are in input_tokens). gpt-5: $1.25 / $10.00 per 1M.
    provider = FakeProvider(
        web_search_calls=2, responses_usage={"input_tokens": 4000, "output_tokens": 500}
    )
    response = await responses(provider, "gpt-5")
    assert [item.type for item in response.output] == ["web_search_call"] * 2 + ["message"]
    _, cost, _ = record_of(table, response, operation="responses").priced()
    assert cost is not None
    # 4000 * 1.25 + 500 * 10 = 10,000 / 1e6 = 0.01;  2 * 10 / 1000 = 0.02
    assert cost.total == Decimal("0.03") and cost.server_tool_cost == Decimal("0.02")
    assert cost.service_tier is None


async def test_a_web_search_with_no_fee_is_flagged(table: PriceTable) -> None:
    # gpt-4.1-nano has no web search fee in the table: the tokens are priced, the fee is not
    # guessed, the row says so.
    provider = FakeProvider(
        web_search_calls=1, responses_usage={"input_tokens": 1000, "output_tokens": 100}
    )
    response = await responses(provider, "gpt-4.1-nano")
    usage, cost, _ = record_of(table, response, operation="responses").priced()
    assert cost is not None and usage is not None
    assert cost.total == Decimal("0.00014")  # 1000 * 0.10 + 100 * 0.40 = 140 / 1e6
    assert cost.server_tool_cost is None and usage.flags == ("web_search_unpriced",)


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True, MAX_SANE_TOKENS + 1])
def test_a_garbage_search_count_makes_the_cost_unknown(table: PriceTable, bad: Any) -> None:
    ctx = CallContext(prices=table, api_key_alias=None, tags={}, secrets=())
    record = CallRecord(
        "r", WHEN.timestamp(), 0.0, "anthropic", "messages", "claude-haiku-4-5", False, None,
        None, ctx,
    )  # fmt: skip
    record.usage = {
        "input_tokens": 10,
        "output_tokens": 5,
        "server_tool_use": {"web_search_requests": bad},
    }
    usage, cost, status = record.priced()
    assert (cost, status) == (None, "invalid_usage")
    assert usage is not None and "invalid_web_search_count" in usage.flags


# --------------------------------------------------------------------------- audio tokens


async def test_openai_audio_tokens_gpt_audio(table: PriceTable) -> None:
    # gpt-audio (OpenAI pricing: text $2.50 / $10.00, audio $32.00 / $64.00 per 1M). The audio
    # counts are parts of prompt_tokens and completion_tokens: priced at their own rate,
    # never on top of the text.
    provider = FakeProvider(
        openai_usage={
            "prompt_tokens": 1500,
            "audio_tokens": 1000,
            "completion_tokens": 600,
            "completion_audio_tokens": 400,
        }
    )
    usage, cost, _ = record_of(table, await chat(provider, "gpt-audio-2025-08-28")).priced()
    assert cost is not None and usage is not None
    assert (usage.input, usage.output, usage.total) == (1500, 600, 2100)  # buckets unchanged
    # input:  500 * 2.50 + 1000 * 32 = 1,250 + 32,000 = 33,250 / 1e6 = 0.03325
    # output: 200 * 10   +  400 * 64 = 2,000 + 25,600 = 27,600 / 1e6 = 0.0276
    assert cost.input == Decimal("0.03325")
    assert cost.output == Decimal("0.0276")
    assert cost.total == Decimal("0.06085")
    assert cost.price_version == "gpt-audio@2025-08-28"


async def test_audio_tokens_of_a_model_without_audio_rates_are_text(table: PriceTable) -> None:
    provider = FakeProvider(openai_usage={"prompt_tokens": 1000, "audio_tokens": 400})
    _, cost, _ = record_of(table, await chat(provider, "gpt-4o-mini")).priced()
    # gpt-4o-mini: 1000 * 0.15 + 8 * 0.60 = 154.8 / 1e6 (8 completion tokens by default)
    assert cost is not None and cost.total == Decimal("0.0001548")


def test_audio_counts_above_their_bucket_are_clamped_and_flagged(table: PriceTable) -> None:
    ctx = CallContext(prices=table, api_key_alias=None, tags={}, secrets=())
    record = CallRecord(
        "r", WHEN.timestamp(), 0.0, "openai", "chat.completions", "gpt-audio", False, None,
        None, ctx,
    )  # fmt: skip
    record.usage = {
        "prompt_tokens": 100,
        "completion_tokens": 10,
        "prompt_tokens_details": {"audio_tokens": 150, "cached_tokens": 0},
    }
    usage, cost, _ = record.priced()
    assert cost is not None and usage is not None
    assert usage.flags == ("audio_exceeds_input",)
    # all 100 input tokens as audio at $32, 10 output text at $10: 3,200 + 100 = 3,300 / 1e6
    assert cost.total == Decimal("0.0033")


# --------------------------------------------------------------------------- mechanics


def test_standard_calls_have_no_billing(table: PriceTable) -> None:
    assert read_billing(None, {"input_tokens": 5, "service_tier": "standard"}, None, None) is None
    assert read_billing({"service_tier": "default", "output": []}, None, None, None) is None
    assert read_billing(None, None, "batch", None) == Billing(service_tier="batch")
    assert read_billing({"service_tier": 7}, None, None, None) == Billing(
        flags=("service_tier_unpriced",)
    )


_rates = st.builds(
    lambda units, scale: Decimal(units).scaleb(-scale),
    st.integers(0, 10**6),
    st.integers(0, 7),
)
_counts = st.integers(0, MAX_SANE_TOKENS)


@settings(max_examples=200, deadline=None)
@given(
    std=st.tuples(_rates, _rates, _rates),
    tier=st.fixed_dictionaries(
        {}, optional={"input": _rates, "output": _rates, "cache_read": _rates}
    ),
    above=st.dictionaries(st.sampled_from(["input", "output"]), _rates),
    usage=st.builds(Usage, _counts, _counts, _counts, _counts, _counts, _counts),
)
def test_a_tier_prices_the_same_in_integers_and_in_decimal(
    std: tuple[Decimal, Decimal, Decimal], tier: dict[str, Decimal], above: dict[str, Decimal],
    usage: Usage,
) -> None:  # fmt: skip
    base = Rates(input=std[0], output=std[1], cache_read=std[2])
    tier = {"input": Decimal(1), **tier}
    spec: dict[str, Any] = {k: str(v) for k, v in tier.items()}
    above = {k: v for k, v in above.items() if k in tier}
    if above:
        spec["tiers"] = [{"above_input_tokens": 1000, **{k: str(v) for k, v in above.items()}}]
    extras = parse_extras("generated", {"service_tiers": {"flex": spec}}, base, ())
    assert extras is not None
    rates, compiled = extras.service_tiers["flex"].rates_for(usage.total_input)
    assert compiled is not None
    counts = (usage.input, usage.cache_read, usage.cache_write_5m, usage.cache_write_1h)
    got = amounts(compiled, *counts, usage.output, usage.reasoning)
    want = decimal_amounts(rates, usage)
    assert [(v, v.as_tuple()) for v in got] == [(v, v.as_tuple()) for v in want]


async def test_a_response_crossing_to_the_writer_process_keeps_its_tier(
    table: PriceTable,
) -> None:
    # writer="process": the response crosses as its JSON (delivery/wire.py Shipped), read
    # through its validated model, not as a dict.
    from majordomo_log.delivery.wire import Shipped

    provider = FakeProvider(
        service_tier="priority",
        openai_usage={"prompt_tokens": 2006, "cached_tokens": 1920, "completion_tokens": 300},
    )
    response = await chat(provider, "gpt-4o")
    record = record_of(table, response)
    record.response = Shipped(type(response), response.model_dump_json(warnings=False))
    _, cost, _ = record.priced()
    assert cost is not None and cost.total == Decimal("0.0095455")  # as priority above
    assert cost.service_tier == "priority"


def test_a_response_that_cannot_be_read_for_billing_is_standard_and_flagged(
    table: PriceTable,
) -> None:
    class Odd:
        model = "gpt-4o"

        @property
        def service_tier(self) -> str:
            raise RuntimeError("boom")

    ctx = CallContext(prices=table, api_key_alias=None, tags={}, secrets=())
    record = CallRecord(
        "r", WHEN.timestamp(), 0.0, "openai", "chat.completions", "gpt-4o", False, None,
        None, ctx,
    )  # fmt: skip
    record.response = Odd()
    record.usage = {"prompt_tokens": 1000, "completion_tokens": 100}
    usage, cost, status = record.priced()
    assert status == "computed" and cost is not None and usage is not None
    assert cost.total == Decimal("0.0035")  # 1000 * 2.50 + 100 * 10.00 = 3,500 / 1e6
    assert usage.flags == ("unreadable_billing",)
