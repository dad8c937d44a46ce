"""Billing variants of one price version: service tiers, server-side tool fees, audio rates.

A price version in ``llm_config.yaml`` (or a user's price file) may carry, next to its
bucket rates::

    service_tiers:            # rates when the provider served the call in another tier
      flex: {input: "0.55", output: "2.20", cache_read: "0.138"}
      batch: {input: "0.55", output: "2.20"}
    web_search_per_1k: "10.00"  # USD per 1,000 server-side web searches
    input_audio: "32.00"        # USD per 1M audio tokens in the input / output
    output_audio: "64.00"

A service tier is priced like the standard price with some buckets replaced: a bucket
the tier names replaces the version's rate for that bucket, long-context tiers included
(a long-context tier of the service tier that leaves the bucket out keeps the service
tier's own rate for it, so a bucket named without ``tiers`` is flat); a bucket it does
not name is billed as in the standard price, long-context tiers included. That is how
genai-prices applies its price variants (``tests/record/test_price_table_vs_genai_prices.py``
holds the two together), and it is resolved here once, when the file is read, into a
full price per long-context threshold, so that pricing a tiered call is the same work as
pricing a standard one.

Audio rates apply to the audio part of the input and output buckets (the rest is text);
they are standard-tier rates, so a version that has them may have neither service tiers
nor long-context tiers (no model in the table has both; a price file that tries is
refused rather than priced in a way nobody checked).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from .._exceptions import ConfigError
from .prices_compiled import CompiledRates, compile_rates
from .rates import Rates, Tier

# The keys of a price version's billing variants (pricing.py reads a version's others).
EXTRA_PRICE_KEYS = ("service_tiers", "web_search_per_1k", "input_audio", "output_audio")

_RATE_FIELDS = ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h", "reasoning")
# Names a response uses for the standard tier: never a service tier of their own.
STANDARD_TIER_NAMES = frozenset({"default", "auto", "standard"})
_TIER_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")


@dataclass(frozen=True, slots=True)
class ServiceTierPrice:
    """One service tier of one price version, resolved: its rates below every long-context
    threshold (``rates``) and above each (``tiers``, ascending), every bucket filled in as
    the merge rules above say; and the same compiled for the integer path (``compiled``
    None when a rate is outside its bounds: the Decimal path prices the call)."""

    name: str
    rates: Rates
    tiers: tuple[Tier, ...]
    compiled: CompiledRates | None
    compiled_tiers: tuple[tuple[int, CompiledRates], ...]

    def rates_for(self, total_input: int) -> tuple[Rates, CompiledRates | None]:
        """The rates for a call with this many input tokens (cached ones included): the
        highest long-context threshold it exceeds, as for the standard price."""
        rates, compiled = self.rates, self.compiled
        for index, tier in enumerate(self.tiers):  # ascending: the highest crossed applies
            if total_input > tier.above_input_tokens:
                rates = tier.rates
                compiled = self.compiled_tiers[index][1] if self.compiled is not None else None
        return rates, compiled


@dataclass(frozen=True, slots=True)
class VersionExtras:
    """What a price version bills beyond its token buckets (see the module docstring)."""

    service_tiers: Mapping[str, ServiceTierPrice]
    web_search_per_1k: Decimal | None = None  # USD per 1,000 web searches
    input_audio: Decimal | None = None  # USD per 1M input audio tokens
    output_audio: Decimal | None = None  # USD per 1M output audio tokens
    audio: bool = False  # has either audio rate (read per call: kept ready)


def parse_extras(
    where: str, raw: Mapping[str, Any], base: Rates, tiers: tuple[Tier, ...]
) -> VersionExtras | None:
    """The extras of the price version ``raw`` (None when it has none), whose standard
    price is ``base`` with the long-context ``tiers`` (ascending, as parsed)."""
    if not any(raw.get(key) is not None for key in EXTRA_PRICE_KEYS):
        return None
    audio_in = _optional_rate(where, "input_audio", raw.get("input_audio"))
    audio_out = _optional_rate(where, "output_audio", raw.get("output_audio"))
    fee = _optional_rate(where, "web_search_per_1k", raw.get("web_search_per_1k"))
    named = raw.get("service_tiers") or {}
    if not isinstance(named, Mapping):
        raise ConfigError(f"{where}: 'service_tiers' must map tier names to prices")
    if (audio_in is not None or audio_out is not None) and (named or tiers):
        raise ConfigError(
            f"{where}: audio rates cannot be combined with service_tiers or long-context "
            "tiers (not supported: the audio rates are standard-tier rates)"
        )
    service_tiers = {
        name: _service_tier(f"{where} service tier {name!r}", name, spec, base, tiers)
        for name, spec in named.items()
    }
    has_audio = audio_in is not None or audio_out is not None
    return VersionExtras(service_tiers, fee, audio_in, audio_out, has_audio)


def _service_tier(
    where: str, name: Any, spec: Any, base: Rates, std_tiers: tuple[Tier, ...]
) -> ServiceTierPrice:
    if not isinstance(name, str) or not _TIER_NAME.fullmatch(name):
        raise ConfigError(f"{where}: a tier name is lower-case letters, digits, '-' and '_'")
    if name in STANDARD_TIER_NAMES:
        raise ConfigError(f"{where}: {name!r} is the standard price, not a service tier")
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: must be a mapping of rates")
    unknown = set(spec) - {*_RATE_FIELDS, "tiers"}
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    own = _rates_given(where, spec)
    if not own:
        raise ConfigError(f"{where}: names no rate (a tier priced as standard needs no entry)")
    own_tiers: list[tuple[int, dict[str, Decimal]]] = []
    for raw_tier in spec.get("tiers") or ():
        try:
            threshold = int(raw_tier["above_input_tokens"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: each tier needs an integer 'above_input_tokens'") from exc
        given = _rates_given(where, raw_tier)
        if set(given) - set(own):
            raise ConfigError(
                f"{where}: a long-context tier may only change rates the service tier names "
                f"({sorted(set(given) - set(own))} are billed as the standard price)"
            )
        own_tiers.append((threshold, given))
    own_tiers.sort(key=lambda pair: pair[0])

    def at(threshold: int | None) -> Rates:
        """Every bucket just above ``threshold`` (None: below every threshold)."""
        standard = base
        mine = dict(own)
        if threshold is not None:
            for tier in std_tiers:
                if tier.above_input_tokens <= threshold:
                    standard = tier.rates
            for above, given in own_tiers:
                if above <= threshold:
                    mine.update(given)
        return replace(standard, **mine)

    thresholds = sorted({t.above_input_tokens for t in std_tiers} | {t for t, _ in own_tiers})
    rates = at(None)
    tiers = tuple(Tier(threshold, at(threshold)) for threshold in thresholds)
    compiled = compile_rates(rates.effective())
    compiled_tiers = tuple(
        (tier.above_input_tokens, compile_rates(tier.rates.effective())) for tier in tiers
    )
    exact = compiled is not None and all(c is not None for _, c in compiled_tiers)
    return ServiceTierPrice(
        name,
        rates,
        tiers,
        compiled if exact else None,
        tuple((t, c) for t, c in compiled_tiers if c is not None) if exact else (),
    )


def _rates_given(where: str, spec: Mapping[str, Any]) -> dict[str, Decimal]:
    return {
        field: rate
        for field in _RATE_FIELDS
        if (rate := _optional_rate(where, field, spec.get(field))) is not None
    }


def _optional_rate(where: str, name: str, value: Any) -> Decimal | None:
    """A price as an exact Decimal >= 0 (read from its text: quoted in the file)."""
    if value is None:
        return None
    try:
        rate = Decimal(str(value))
    except InvalidOperation as exc:
        raise ConfigError(f"{where}: {name} price {value!r} is not a number") from exc
    if not rate.is_finite() or rate < 0:
        raise ConfigError(f"{where}: {name} price {value!r} must be a finite number >= 0")
    return rate
