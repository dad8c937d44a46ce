"""What a call is billed beyond its six token buckets, and its cost with them.

Read off the response and its raw usage, in the background, when the record is priced:

* the **service tier** that served the call: OpenAI's ``response.service_tier``
  (``flex``, ``priority``; ``default``/``auto`` are standard; ``fast`` is served and
  billed as ``priority``), Anthropic's ``usage.service_tier`` (``priority``, ``batch``;
  ``standard``) and ``usage.speed == "fast"`` (fast mode). A tier declared for the call
  (``tier_hint``: ``log_batch_results(..., service_tier="batch")``, or seen in a chat
  stream's chunks) comes first;
* **server-side web searches**: Anthropic's ``usage.server_tool_use.web_search_requests``,
  or the ``web_search_call`` items of an OpenAI Responses ``output`` (one billed call each);
* **audio tokens** inside the input and output (OpenAI Chat Completions'
  ``prompt_tokens_details.audio_tokens`` and ``completion_tokens_details.audio_tokens``):
  a subset of the input and output buckets, never added to them.

A call with none of these (almost every call) has no ``Billing`` and is priced by
``PriceTable.cost_at`` as before. One with any of them is priced by ``billed_cost``: the
service tier's rates (``record/price_extras.py``) in the integer path of
``record/prices_compiled.py`` (the Decimal arithmetic below where the rates are outside its
bounds, and for audio), plus the tool fee, which ``total`` includes. What the price
table cannot price is never priced as something else silently: a tier with no rates
for the model is priced at the standard rates with the flag ``service_tier_unpriced``,
web searches with no fee with ``web_search_unpriced``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from .._log import warn_once
from .price_extras import STANDARD_TIER_NAMES
from .prices_compiled import amounts
from .pricing import COST_PLACES, Cost, ModelPrice, PriceTable, Rates, plain_decimal
from .usage import MAX_SANE_TOKENS, Usage, field_of

_MILLION = Decimal(1_000_000)
_THOUSAND = Decimal(1000)
_ZERO = Decimal(0)
_EPOCH = dt.date(1970, 1, 1)
# OpenAI: a request for `fast` is served as, and reported and billed as, `priority`.
_OPENAI_TIER_ALIASES = {"fast": "priority"}
_MAX_TIER_CHARS = 64


@dataclass(frozen=True, slots=True)
class Billing:
    """The billing facts of one call beyond its buckets (see the module docstring)."""

    service_tier: str | None = None  # a non-standard tier, lower case; None: standard
    web_search_calls: int = 0
    input_audio: int = 0  # of the input bucket (uncached input)
    output_audio: int = 0  # of the output bucket (output excluding reasoning)
    flags: tuple[str, ...] = ()


def read_billing(
    response: Any, raw_usage: Any, tier_hint: str | None, entry: ModelPrice | None
) -> Billing | None:
    """The billing facts of a response and its raw usage; None when it has none. Audio
    counts are read only for a model whose newest price has audio rates (``entry``, the
    price the call resolved to): for any other, audio tokens are billed as text."""
    extras = None if entry is None else entry.versions[0].extras
    audio = extras is not None and extras.audio
    # The common call, an OpenAI chat completion in the default tier, in a few lookups
    # (``_fields`` written out for an SDK model, whose class is known by the first call).
    reply: dict[str, Any] | _Attributes
    if _plain_models.get(type(response)):
        fields: dict[str, Any] = response.__dict__
        extra = response.__pydantic_extra__
        reply = {**extra, **fields} if extra else fields
    else:
        reply = _fields(response)
    tier = reply.get("service_tier", _ABSENT)
    if (
        tier_hint is None
        and not audio
        and (tier is None or (tier.__class__ is str and tier in STANDARD_TIER_NAMES))
        and not reply.get("output")
    ):
        return None
    usage = _fields(raw_usage)
    flags: list[str] = []
    source = "declared"
    if tier_hint is not None:
        tier = tier_hint
    elif (reported := usage.get("service_tier")) is not None:  # Anthropic: in usage
        tier, source = reported, "anthropic"
    else:
        tier, source = (None if tier is _ABSENT else tier), "openai"  # on the response
    tier = _tier(tier, flags)
    if source == "openai" and tier is not None:
        tier = _OPENAI_TIER_ALIASES.get(tier, tier)
    if tier is None and source != "declared" and usage.get("speed") == "fast":
        tier = "fast"  # Anthropic fast mode, served in the standard tier
    server_tools = usage.get("server_tool_use")
    if server_tools is not None:
        searches = _count(_fields(server_tools).get("web_search_requests"), "web_search", flags)
    else:
        searches = _web_search_items(reply.get("output"))
    audio_in = audio_out = 0
    if audio:
        details = usage.get("prompt_tokens_details")
        if details is not None:
            audio_in = _count(_fields(details).get("audio_tokens"), "audio", flags)
        details = usage.get("completion_tokens_details")
        if details is not None:
            audio_out = _count(_fields(details).get("audio_tokens"), "audio", flags)
    if tier is None and not (searches or audio_in or audio_out or flags):
        return None
    return Billing(tier, searches, audio_in, audio_out, tuple(flags))


def billed_cost(
    table: PriceTable, entry: ModelPrice, usage: Usage, billing: Billing, timestamp: float
) -> tuple[Cost, tuple[str, ...]]:
    """The cost of a call with billing facts, and the flags its pricing raised. ``usage``
    holds sane counts (as normalization and ``Usage.checked`` make them)."""
    standard = table.cost_at(entry, usage, timestamp)  # the price version, its id, exactly
    version = entry.version_at(dt.datetime.combine(_utc_day(timestamp), dt.time()))
    extras = version.extras
    flags: list[str] = []
    cost = standard
    if billing.service_tier is not None:
        priced_as = extras.service_tiers.get(billing.service_tier) if extras else None
        if priced_as is None:
            flags.append("service_tier_unpriced")
            warn_once(
                "service_tier_unpriced",
                f"{entry.id}:{billing.service_tier}",
                "no %r service tier price for %r: such calls are priced at the standard "
                "rates with usage_flags 'service_tier_unpriced'",
                billing.service_tier,
                entry.id,
            )
        else:
            rates, compiled = priced_as.rates_for(usage.total_input)
            if compiled is not None:
                parts = amounts(
                    compiled,
                    usage.input,
                    usage.cache_read,
                    usage.cache_write_5m,
                    usage.cache_write_1h,
                    usage.output,
                    usage.reasoning,
                )
            else:
                parts = decimal_amounts(rates, usage)
            cost = _with_parts(standard, parts, priced_as.name)
    audio_rates = (extras.input_audio, extras.output_audio) if extras is not None else (None, None)
    if (billing.input_audio or billing.output_audio) and audio_rates != (None, None):
        # parse_extras allows audio rates only on a version without tiers of either kind
        audio_in, audio_out = billing.input_audio, billing.output_audio
        if audio_in > usage.input:
            flags.append("audio_exceeds_input")
            audio_in = usage.input
        if audio_out > usage.output:
            flags.append("audio_exceeds_output")
            audio_out = usage.output
        parts = decimal_amounts(version.rates, usage, audio_in, audio_out, *audio_rates)
        cost = _with_parts(standard, parts, None)
    if billing.web_search_calls:
        fee_rate = extras.web_search_per_1k if extras is not None else None
        if fee_rate is None:
            flags.append("web_search_unpriced")
        else:
            fee = _usd(billing.web_search_calls * fee_rate / _THOUSAND)
            cost = replace(cost, total=cost.total + fee, server_tool_cost=fee)
    return cost, tuple(flags)


def decimal_amounts(
    rates: Rates,
    usage: Usage,
    audio_in: int = 0,
    audio_out: int = 0,
    rate_audio_in: Decimal | None = None,
    rate_audio_out: Decimal | None = None,
) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal, Decimal, Decimal]:
    """(input, cache read, cache write, output, reasoning, total, cache savings) in Decimal
    arithmetic, as ``pricing.py`` prices a standard call (the reference the integer path is
    held to): one rounding per bucket. Audio tokens (a part of the input and output
    buckets) are priced at the audio rates, the rest of each bucket at the text rate."""
    r_in, r_read, r_w5, r_w1, r_out, r_reason = rates.effective()
    a_in = r_in if rate_audio_in is None else rate_audio_in
    a_out = r_out if rate_audio_out is None else rate_audio_out
    c_in = _usd(((usage.input - audio_in) * r_in + audio_in * a_in) / _MILLION)
    c_read = _usd(usage.cache_read * r_read / _MILLION)
    c_write = _usd((usage.cache_write_5m * r_w5 + usage.cache_write_1h * r_w1) / _MILLION)
    c_out = _usd(((usage.output - audio_out) * r_out + audio_out * a_out) / _MILLION)
    c_reason = _usd(usage.reasoning * r_reason / _MILLION)
    cached = usage.cache_read + usage.cache_write_5m + usage.cache_write_1h
    savings = _usd(cached * r_in / _MILLION) - c_read - c_write
    total = c_in + c_read + c_write + c_out + c_reason
    return c_in, c_read, c_write, c_out, c_reason, total, savings


def _with_parts(
    standard: Cost,
    parts: tuple[Decimal, Decimal, Decimal, Decimal, Decimal, Decimal, Decimal],
    tier: str | None,
) -> Cost:
    c_in, c_read, c_write, c_out, c_reason, total, savings = parts
    return replace(
        standard,
        input=c_in,
        cache_read=c_read,
        cache_write=c_write,
        output=c_out,
        reasoning=c_reason,
        total=total,
        cache_savings=savings,
        service_tier=tier,
    )


def _usd(amount: Decimal) -> Decimal:
    """To the 10 places every cost column keeps, written as pricing.py writes amounts."""
    if not amount:
        return _ZERO
    return plain_decimal(amount.quantize(COST_PLACES))


def _utc_day(timestamp: float) -> dt.date:
    """The UTC day of a POSIX timestamp, by floor division (fromtimestamp() rounds to the
    microsecond, which may carry a moment before midnight into the next day)."""
    try:
        return _EPOCH + dt.timedelta(days=int(timestamp // 86400))
    except (OverflowError, ValueError):  # far outside any price's dates: the newest
        return dt.date.max


def _tier(value: Any, flags: list[str]) -> str | None:
    """A reported tier as its lower-case name; None for the standard tier."""
    if value is None:
        return None
    if not isinstance(value, str):
        flags.append("service_tier_unpriced")  # something, but not a tier we can read
        return None
    name = value.strip().lower()[:_MAX_TIER_CHARS]
    return None if not name or name in STANDARD_TIER_NAMES else name


def _web_search_items(output: Any) -> int:
    """OpenAI Responses: each ``web_search_call`` output item is one billed tool call."""
    if not isinstance(output, (list, tuple)):
        return 0
    return sum(1 for item in output if _fields(item).get("type") == "web_search_call")


def _count(value: Any, kind: str, flags: list[str]) -> int:
    """A reported count as a sane int; anything else is 0 with the flag
    ``invalid_<kind>_count`` (the cost is then unknown, never understated)."""
    if value is None:
        return 0
    if type(value) is int and 0 <= value <= MAX_SANE_TOKENS:
        return value
    flags.append(f"invalid_{kind}_count")
    return 0


class _Attributes:
    """``.get(name)`` as ``field_of(obj, name)``: for objects that are neither dicts nor
    plain pydantic models (a process writer's ``Shipped`` response, a client's own types)."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def get(self, name: str, default: Any = None) -> Any:
        value = field_of(self.obj, name)
        return default if value is None else value


_EMPTY: dict[str, Any] = {}
_ABSENT = object()
# type -> whether its instances' fields are their __dict__ and pydantic extras (bounded)
_plain_models: dict[type, bool] = {dict: False}


def _is_plain_model(cls: type) -> bool:
    """A pydantic model with the default attribute lookup: its fields are its instance
    ``__dict__``, then its ``__pydantic_extra__`` (as ``usage_shapes.py`` reads them)."""
    return (
        not issubclass(cls, Mapping)
        and hasattr(cls, "__pydantic_fields__")
        and hasattr(cls, "__pydantic_extra__")
        and cls.__getattribute__ is object.__getattribute__
    )


def _fields(obj: Any) -> dict[str, Any] | _Attributes:
    """Something whose ``.get(name)`` is ``field_of(obj, name)``: the object itself for a
    dict, a pydantic model's ``__dict__`` (with its extras), else ``_Attributes``. An SDK
    model answers a name it does not declare through ``__getattr__`` and an AttributeError;
    read from its ``__dict__``, the dozen names looked up per call cost a dict lookup each."""
    if obj is None:
        return _EMPTY
    cls = type(obj)
    if cls is dict:
        return obj  # type: ignore[no-any-return]
    plain = _plain_models.get(cls)
    if plain is None:
        plain = _is_plain_model(cls)
        if len(_plain_models) < 256:  # classes made on the fly must not grow it
            _plain_models[cls] = plain
    if not plain:
        return _Attributes(obj)
    fields = obj.__dict__
    extra = obj.__pydantic_extra__
    if extra:  # an instance attribute is found before pydantic's extras
        return {**extra, **fields}
    return fields  # type: ignore[no-any-return]
