"""The fast pricing paths give exactly what the Decimal ones gave.

``PriceTable.cost`` prices with integers compiled per price version (record/prices_compiled.py)
and ``normalize_any`` reads the common payloads directly (record/usage_shapes.py). Here each is
held against its reference on generated input: the Decimal algorithm pricing used before
(copied below, as it was), to the last of the 10 places and to the Decimal exponent (``0.0040``
is not ``0.004`` in a row), and ``normalize_generic``, flags included.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import anthropic.types as at
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from openai.types import CompletionUsage
from openai.types.completion_usage import CompletionTokensDetails, PromptTokensDetails
from openai.types.create_embedding_response import Usage as EmbeddingUsage
from openai.types.responses import ResponseUsage
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails
from pydantic import ValidationError

from majordomo_log.record.pricing import (
    PRICES_ENV_VAR,
    Cost,
    ModelPrice,
    PriceTable,
    PriceVersion,
    Rates,
    Tier,
)
from majordomo_log.record.usage import MAX_SANE_TOKENS, Usage, normalize_any, normalize_generic
from majordomo_log.record.usage_shapes import fast_buckets

SETTINGS = settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
UTC = dt.timezone.utc

# -- the reference: pricing as it was, in Decimal arithmetic --------------------------------


def _ref_plain(value: Decimal) -> Decimal:
    trimmed = value.normalize()
    if trimmed.is_finite() and -Decimal(10) < trimmed < Decimal(10):
        return trimmed
    exponent = trimmed.as_tuple().exponent
    return trimmed.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else trimmed


def _ref_cents(tokens_times_rate: Decimal) -> Decimal:
    if not tokens_times_rate:
        return Decimal(0)
    return _ref_plain((tokens_times_rate / Decimal(1_000_000)).quantize(Decimal("1e-10")))


def reference_cost(entry: ModelPrice, usage: Usage, when: dt.datetime) -> Cost:
    version = entry.version_at(when)
    rates = version.rates
    for tier in version.tiers:
        if usage.total_input > tier.above_input_tokens:
            rates = tier.rates
    r_in, r_read, r_w5, r_w1, r_out, r_reason = rates.effective()
    c_in = _ref_cents(usage.input * r_in)
    c_read = _ref_cents(usage.cache_read * r_read)
    c_write = _ref_cents(usage.cache_write_5m * r_w5 + usage.cache_write_1h * r_w1)
    c_out = _ref_cents(usage.output * r_out)
    c_reason = _ref_cents(usage.reasoning * r_reason)
    cached = usage.cache_read + usage.cache_write_5m + usage.cache_write_1h
    savings = _ref_cents(cached * r_in) - c_read - c_write
    suffix = "" if entry.origin == "built-in" else "+custom"
    return Cost(
        input=c_in,
        cache_read=c_read,
        cache_write=c_write,
        output=c_out,
        reasoning=c_reason,
        total=c_in + c_read + c_write + c_out + c_reason,
        model_id=entry.id,
        price_version=f"{entry.id}@{version.effective.isoformat()}{suffix}",
        cache_savings=savings,
    )


def exactly(cost: Cost) -> tuple[Any, ...]:
    """Every field with its type and, for a Decimal, its digits and exponent."""
    return tuple(
        (type(v).__name__, v.as_tuple() if isinstance(v, Decimal) else v)
        for v in (
            cost.input,
            cost.cache_read,
            cost.cache_write,
            cost.output,
            cost.reasoning,
            cost.total,
            cost.model_id,
            cost.price_version,
            cost.cache_savings,
        )
    )


# -- generated usage, dates and prices -------------------------------------------------------

token_counts = st.one_of(
    st.just(0),
    st.integers(0, 2_000),
    st.integers(0, MAX_SANE_TOKENS),
    st.integers(MAX_SANE_TOKENS - 3, MAX_SANE_TOKENS),
)
usages = st.builds(
    Usage,
    input=token_counts,
    cache_read=token_counts,
    cache_write_5m=token_counts,
    cache_write_1h=token_counts,
    output=token_counts,
    reasoning=token_counts,
)
days = st.dates(dt.date(2020, 1, 1), dt.date(2031, 12, 31))
times = st.builds(
    lambda day, seconds: dt.datetime.combine(day, dt.time(), UTC) + dt.timedelta(seconds=seconds),
    days,
    st.floats(0, 86_399.999_999),
)


@st.composite
def rates_(draw: st.DrawFn, places: int = 8) -> Decimal:
    """A rate in USD per 1M tokens with 0 to ``places`` decimal places."""
    scale = draw(st.integers(0, places))
    units = draw(st.one_of(st.just(0), st.integers(1, 10**4), st.integers(0, 10 ** (scale + 4))))
    return Decimal(units).scaleb(-scale)


optional_rates = st.one_of(st.none(), rates_())
rate_sets = st.builds(
    Rates,
    input=rates_(),
    output=rates_(),
    cache_read=optional_rates,
    cache_write_5m=optional_rates,
    cache_write_1h=optional_rates,
    reasoning=optional_rates,
)


@st.composite
def versions(draw: st.DrawFn) -> PriceVersion:
    thresholds = sorted(set(draw(st.lists(st.integers(0, 3 * MAX_SANE_TOKENS), max_size=3))))
    tiers = tuple(Tier(t, draw(rate_sets)) for t in thresholds)
    return PriceVersion(draw(days), draw(rate_sets), tiers)


@st.composite
def entries(draw: st.DrawFn) -> ModelPrice:
    found = draw(st.lists(versions(), min_size=1, max_size=3, unique_by=lambda v: v.effective))
    found.sort(key=lambda v: v.effective, reverse=True)
    origin = draw(st.sampled_from(["built-in", "/etc/prices.yaml"]))
    return ModelPrice("generated-model", "x", tuple(found), None, origin)


_builtin: list[PriceTable] = []


def builtin_table() -> PriceTable:
    if not _builtin:
        with pytest.MonkeyPatch.context() as mp:
            mp.delenv(PRICES_ENV_VAR, raising=False)
            _builtin.append(PriceTable.load())
    return _builtin[0]


# -- costs -----------------------------------------------------------------------------------


@SETTINGS
@given(data=st.data(), usage=usages, when=times)
def test_every_builtin_entry_prices_as_the_decimal_path(
    data: st.DataObject, usage: Usage, when: dt.datetime
) -> None:
    table = builtin_table()
    entry = data.draw(st.sampled_from(table.models))
    # the days around each price change too, where the version in force changes
    change = data.draw(st.sampled_from(entry.versions)).effective
    near = dt.datetime.combine(change, dt.time(), UTC) + dt.timedelta(
        days=data.draw(st.integers(-1, 1))
    )
    for moment in (when, near):
        assert exactly(table.cost(entry, usage, moment)) == exactly(
            reference_cost(entry, usage, moment)
        )


def test_every_builtin_entry_and_version_on_one_usage() -> None:
    # the exhaustive part: every entry, every version, every tier, with every bucket used
    table = builtin_table()
    usage = Usage(123_457, 98_765, 4_321, 1_234, 56_789, 7_654)
    big = Usage(MAX_SANE_TOKENS, 7, 3, 1, MAX_SANE_TOKENS - 1, 999_999)
    for entry in table.models:
        for version in entry.versions:
            when = dt.datetime.combine(version.effective, dt.time(12), UTC)
            for u in (usage, big, Usage(), Usage(input=1), Usage(cache_write_1h=1)):
                assert exactly(table.cost(entry, u, when)) == exactly(
                    reference_cost(entry, u, when)
                )


@SETTINGS
@given(entry=entries(), usage=usages, when=times)
@example(  # 1.5 units: a tie, rounded to even (2), and 0.5 units rounded to 0
    entry=ModelPrice(
        "tie",
        "x",
        (PriceVersion(dt.date(2020, 1, 1), Rates(Decimal("0.00015"), Decimal("0.00005"))),),
    ),
    usage=Usage(input=1, output=1),
    when=dt.datetime(2025, 1, 1, tzinfo=UTC),
)
@example(  # whole dollars: 100, not 1E+2
    entry=ModelPrice(
        "whole", "x", (PriceVersion(dt.date(2020, 1, 1), Rates(Decimal(100), Decimal(10))),)
    ),
    usage=Usage(input=1_000_000, output=1_000_000, cache_read=10),
    when=dt.datetime(2025, 1, 1, tzinfo=UTC),
)
def test_generated_prices_match_the_decimal_path(
    entry: ModelPrice, usage: Usage, when: dt.datetime
) -> None:
    table = PriceTable([entry])
    assert exactly(table.cost(entry, usage, when)) == exactly(reference_cost(entry, usage, when))
    # the same entry again (cached compiled price) and through the timestamp
    assert exactly(table.cost_at(entry, usage, when.timestamp())) == exactly(
        reference_cost(entry, usage, when)
    )


@SETTINGS
@given(
    rate=st.one_of(
        st.decimals(allow_nan=False, allow_infinity=False, min_value=0, places=30),
        st.decimals(allow_nan=False, allow_infinity=False, min_value=10**8, max_value=10**30),
        st.sampled_from(
            [Decimal("1E+2"), Decimal("1E+12"), Decimal("0.1234567890123456789012345")]
        ),
    ),
    usage=usages,
)
def test_rates_outside_the_integer_bounds_price_as_before(rate: Decimal, usage: Usage) -> None:
    entry = ModelPrice("odd", "x", (PriceVersion(dt.date(2020, 1, 1), Rates(rate, rate, rate)),))
    when = dt.datetime(2025, 1, 1, tzinfo=UTC)
    try:
        expected: Any = exactly(reference_cost(entry, usage, when))
    except ArithmeticError as exc:  # the Decimal path fails: so must this one
        expected = type(exc)
    try:
        got: Any = exactly(PriceTable([entry]).cost(entry, usage, when))
    except ArithmeticError as exc:
        got = type(exc)
    assert got == expected


@SETTINGS
@given(
    counts=st.lists(
        st.one_of(
            st.integers(-(10**12), 10**12),
            st.booleans(),
            st.just(MAX_SANE_TOKENS + 1),
            token_counts,
        ),
        min_size=6,
        max_size=6,
    )
)
def test_a_usage_built_by_hand_with_odd_counts_prices_as_before(counts: list[Any]) -> None:
    # PriceTable.cost is public: a Usage that never went through normalization may hold
    # anything; the Decimal path takes it.
    usage = Usage(*counts)
    table = builtin_table()
    entry = table.resolve("claude-sonnet-4-5")
    assert entry is not None
    when = dt.datetime(2026, 1, 1, tzinfo=UTC)
    assert exactly(table.cost(entry, usage, when)) == exactly(reference_cost(entry, usage, when))


@given(
    day=st.dates(dt.date(1970, 1, 2), dt.date(2099, 12, 30)),
    offset=st.one_of(
        st.floats(-0.01, 0.01),
        st.sampled_from([-0.0000005, -0.0000004, -0.0000006, 0.0, 0.001, -0.001, 86399.9995]),
        st.floats(0, 86_400),
    ),
)
@SETTINGS
def test_the_day_of_a_timestamp_is_the_day_of_its_datetime(day: dt.date, offset: float) -> None:
    # cost_at() takes the UTC day from the number; fromtimestamp() rounds to the µs
    entry = ModelPrice(
        "daily",
        "x",
        tuple(
            PriceVersion(day + dt.timedelta(days=d), Rates(Decimal(d + 2), Decimal(1)))
            for d in (1, 0, -1)
        ),
    )
    timestamp = dt.datetime.combine(day, dt.time(), UTC).timestamp() + offset
    assume(timestamp >= 0)
    table = PriceTable([entry])
    usage = Usage(input=1_000_000)
    by_datetime = table.cost(entry, usage, dt.datetime.fromtimestamp(timestamp, UTC))
    assert exactly(table.cost_at(entry, usage, timestamp)) == exactly(by_datetime)


# -- normalization ---------------------------------------------------------------------------

odd_counts = st.one_of(
    st.none(),
    st.integers(0, 5_000),
    st.integers(-3, 3),
    st.integers(MAX_SANE_TOKENS - 1, MAX_SANE_TOKENS + 1),
    st.just(2**70),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1.0, 2.5, "12", b"3", [1]]),
)
counts = st.one_of(st.integers(0, 5_000), st.none(), odd_counts)


def model(cls: type[Any], nested: bool, **fields: Any) -> Any:
    """The SDK model as the SDK builds it, or, when it refuses an odd value (or ``nested``
    is False), as ``model_construct`` keeps it."""
    if nested:
        try:
            return cls(**fields)
        except ValidationError:
            pass
    return cls.model_construct(**fields)


def details(draw: st.DrawFn, cls: type[Any] | None, **fields: st.SearchStrategy[Any]) -> Any:
    """A nested details object: None, a dict, the SDK model, or something odd."""
    values = {name: draw(s) for name, s in fields.items() if draw(st.booleans())}
    kind = draw(st.sampled_from(["none", "dict", "model", "model", "odd"]))
    if kind == "none" or (kind == "model" and cls is None):
        return None
    if kind == "dict":
        return values
    if kind == "odd":
        return draw(st.sampled_from([5, "x", [1], object()]))
    assert cls is not None
    return model(cls, draw(st.booleans()), **values)


@st.composite
def payloads(draw: st.DrawFn) -> Any:
    shape = draw(
        st.sampled_from(["chat", "embedding", "responses", "anthropic", "gemini", "bedrock"])
    )
    as_dict = draw(st.booleans())
    extras: dict[str, Any] = {}
    if shape == "chat":
        cls: type[Any] = CompletionUsage
        fields = {
            "prompt_tokens": draw(counts),
            "completion_tokens": draw(counts),
            "total_tokens": draw(counts),
            "prompt_tokens_details": details(
                draw, PromptTokensDetails, cached_tokens=counts, cache_write_tokens=counts
            ),
            "completion_tokens_details": details(
                draw, CompletionTokensDetails, reasoning_tokens=counts
            ),
        }
        if draw(st.booleans()):  # DeepSeek
            extras["prompt_cache_hit_tokens"] = draw(counts)
    elif shape == "embedding":
        cls = EmbeddingUsage
        fields = {"prompt_tokens": draw(counts), "total_tokens": draw(counts)}
    elif shape == "responses":
        cls = ResponseUsage
        fields = {
            "input_tokens": draw(counts),
            "output_tokens": draw(counts),
            "total_tokens": draw(counts),
            "input_tokens_details": details(
                draw, InputTokensDetails, cached_tokens=counts, cache_write_tokens=counts
            ),
            "output_tokens_details": details(draw, OutputTokensDetails, reasoning_tokens=counts),
        }
    elif shape == "anthropic":
        cls = at.Usage
        fields = {
            "input_tokens": draw(counts),
            "output_tokens": draw(counts),
            "cache_read_input_tokens": draw(counts),
            "cache_creation_input_tokens": draw(counts),
            "cache_creation": details(
                draw,
                at.CacheCreation,
                ephemeral_5m_input_tokens=counts,
                ephemeral_1h_input_tokens=counts,
            ),
        }
        if draw(st.booleans()):  # what makes normalize_any read it as OpenAI's
            extras["input_tokens_details"] = details(draw, None, cached_tokens=counts)
    else:  # no SDK installed for these here: the dicts their SDKs' payloads hold
        names = {
            "gemini": [
                "prompt_token_count",
                "candidates_token_count",
                "cached_content_token_count",
                "thoughts_token_count",
                "tool_use_prompt_token_count",
                "total_token_count",
            ],
            "bedrock": [
                "inputTokens",
                "outputTokens",
                "totalTokens",
                "cacheReadInputTokens",
                "cacheWriteInputTokens",
            ],
        }[shape]
        return {name: draw(counts) for name in names if draw(st.booleans()) or name == names[0]}
    fields = {
        k: v
        for k, v in fields.items()
        if draw(st.booleans()) or k in ("prompt_tokens", "input_tokens")
    }
    if as_dict:
        return {**fields, **extras}
    return model(cls, draw(st.booleans()), **fields, **extras)


def same_usage(a: Usage | None, b: Usage | None) -> bool:
    return repr(a) == repr(b) and (a is None) == (b is None)


@settings(SETTINGS, max_examples=1500)
@given(payload=payloads(), provider=st.sampled_from([None, "openai", "azure", "anthropic"]))
def test_the_fast_normalization_equals_the_generic_one(payload: Any, provider: str | None) -> None:
    assert same_usage(normalize_any(payload, provider), normalize_generic(payload, provider))


@pytest.mark.parametrize(
    "payload",
    [
        CompletionUsage(
            prompt_tokens=1200,
            completion_tokens=80,
            total_tokens=1280,
            prompt_tokens_details=PromptTokensDetails(cached_tokens=1024),
            completion_tokens_details=CompletionTokensDetails(reasoning_tokens=20),
        ),
        ResponseUsage(
            input_tokens=10,
            output_tokens=5,
            total_tokens=15,
            input_tokens_details=InputTokensDetails(cached_tokens=4, cache_write_tokens=0),
            output_tokens_details=OutputTokensDetails(reasoning_tokens=2),
        ),
        at.Usage(
            input_tokens=10,
            output_tokens=5,
            cache_read_input_tokens=3,
            cache_creation=at.CacheCreation(
                ephemeral_5m_input_tokens=1, ephemeral_1h_input_tokens=2
            ),
        ),
        {
            "prompt_tokens": 10,
            "completion_tokens": 2,
            "prompt_tokens_details": {"cached_tokens": 3},
        },
        {"prompt_token_count": 10, "candidates_token_count": 3, "thoughts_token_count": 4},
        {"inputTokens": 10, "outputTokens": 3, "cacheReadInputTokens": 2},
    ],
    ids=["chat", "responses", "anthropic", "chat-dict", "gemini-dict", "bedrock-dict"],
)
def test_the_common_payloads_take_the_fast_path(payload: Any) -> None:
    # otherwise the equality above would hold by falling back every time
    assert fast_buckets(payload, None) is not None
    assert same_usage(normalize_any(payload), normalize_generic(payload))
