"""The built-in price table (``llm_config.yaml``) against the data of genai-prices.

Two kinds of checks, both offline:

* the file itself: required keys, exact (quoted) Decimal prices >= 0, dates strictly
  descending, unique ids, ``match`` regexes that admit their own id (plus the dated and
  provider-prefixed forms) and never another entry's id;
* every entry against genai-prices' bundled data (``genai_prices.data``; no network, no
  auto-update), on every date where either side's price changes: base rates, cache writes,
  long-context tiers, and any rate genai-prices has that the table cannot hold.

A difference is allowed only when the entry lists it under ``genai_prices.differences`` with a
non-empty reason, and a listed difference that no longer differs fails as stale.
"""

from __future__ import annotations

import copy
import datetime as dt
import importlib.metadata
import re
import sys
from collections.abc import Iterator, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pytest
import yaml

if sys.version_info < (3, 11):  # genai-prices 0.2.3 (pinned) needs Python 3.11+; CI runs 3.11
    pytest.skip("genai-prices 0.2.3 requires Python 3.11+", allow_module_level=True)

from genai_prices.data import providers as GENAI_PROVIDERS
from genai_prices.types import (
    ModelInfo,
    ModelPrice,
    StartDateConstraint,
    TieredPrices,
    TimeOfDateConstraint,
)

CONFIG_PATH = Path(__file__).parents[2] / "llm_config.yaml"

PROVIDERS = ("openai", "anthropic", "google", "mistral", "deepseek", "bedrock")
RATE_FIELDS = ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h", "reasoning")
ENTRY_KEYS = {"id", "provider", "source", "match", "prices", "genai_prices"}
# A price version's billing variants (record/price_extras.py), checked by _extra_differences
EXTRA_PRICE_KEYS = {"service_tiers", "web_search_per_1k", "input_audio", "output_audio"}
PRICE_KEYS = {"effective", "tiers", *RATE_FIELDS, *EXTRA_PRICE_KEYS}
TIER_KEYS = {"above_input_tokens", *RATE_FIELDS}
MIN_MODELS = 35
# The demo and the other tests price calls with these ids.
REQUIRED_IDS = (
    "gpt-4o",
    "gpt-4o-mini",
    "o4-mini",
    "text-embedding-3-small",
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
    # tests/capture/test_wrapper_{gemini,mistral,litellm}*.py
    "gemini-2.5-flash",
    "gemini-embedding-001",
    "mistral-small-latest",
    "mistral-embed",
    "codestral-2508",
)

# Our bucket -> genai-prices price keys (the first one present wins). genai-prices'
# `cache_write_mtok` is the TTL-less / 5-minute write; `cache_write_1h_mtok` the 1-hour one.
GENAI_KEYS: dict[str, tuple[str, ...]] = {
    "input": ("input_mtok",),
    "output": ("output_mtok",),
    "cache_read": ("cache_read_mtok",),
    "cache_write_5m": ("cache_write_5m_mtok", "cache_write_mtok"),
    "cache_write_1h": ("cache_write_1h_mtok",),
    "reasoning": ("output_reasoning_mtok",),
}
MAPPED_GENAI_KEYS = {key for keys in GENAI_KEYS.values() for key in keys}
# File search fees are out of scope for the whole table (its header says so), so they need
# no per-entry explanation; web search fees too for the providers whose responses are not
# read for web searches (WEB_SEARCH_PROVIDERS). Any other genai-prices rate the table cannot
# hold (image, cached audio, ...) must be listed under `differences` by its genai-prices key,
# e.g. `cache_audio_read_mtok`; so are those below where an entry does not hold them.
GENAI_IGNORED_KEYS = {"storage_searches_kcount"}
# genai-prices keys the table holds under its own names, per price version; a difference is
# reported (and listed) under the genai-prices key, as before the table could hold them.
GENAI_EXTRA_KEYS = {
    "web_searches_kcount": "web_search_per_1k",
    "input_audio_mtok": "input_audio",
    "output_audio_mtok": "output_audio",
}
WEB_SEARCH_PROVIDERS = {"openai", "anthropic"}

# Names a call may use or be served under -> the entry that must price it.
ALIASES = (
    ("gpt-4o", "gpt-4o"),
    ("GPT-4o", "gpt-4o"),
    ("openai/gpt-4o", "gpt-4o"),
    ("gpt-4o-2024-08-06", "gpt-4o"),
    ("gpt-4o-2024-11-20", "gpt-4o"),
    ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),
    ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
    ("openai/gpt-4o-mini", "gpt-4o-mini"),
    ("o4-mini-2025-04-16", "o4-mini"),
    ("o3-2025-04-16", "o3"),
    ("gpt-4.1-2025-04-14", "gpt-4.1"),
    ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
    ("gpt-5-2025-08-07", "gpt-5"),
    ("gpt-5-chat-latest", "gpt-5"),
    ("gpt-5-mini-2025-08-07", "gpt-5-mini"),
    ("gpt-5.1-codex-max", "gpt-5.1"),
    ("gpt-5-2-2025-12-11", "gpt-5.2"),
    ("gpt-5.6", "gpt-5.6-sol"),
    ("openai/text-embedding-3-small", "text-embedding-3-small"),
    ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
    ("anthropic/claude-sonnet-4-5", "claude-sonnet-4-5"),
    ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
    # Bedrock: the inference profile decides the rate (global = Anthropic's, the rest +10%).
    ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "anthropic.claude-sonnet-4-5"),
    ("eu.anthropic.claude-sonnet-4-5-20250929-v1:0", "anthropic.claude-sonnet-4-5"),
    ("anthropic.claude-sonnet-4-5-20250929-v1:0", "anthropic.claude-sonnet-4-5"),
    ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", "global.anthropic.claude-sonnet-4-5"),
    (
        "bedrock/global.anthropic.claude-haiku-4-5-20251001-v1:0",
        "global.anthropic.claude-haiku-4-5",
    ),
    ("apac.anthropic.claude-haiku-4-5-20251001-v1:0", "anthropic.claude-haiku-4-5"),
    ("us-gov.anthropic.claude-3-5-haiku-20241022-v1:0", "anthropic.claude-3-5-haiku"),
    ("us.anthropic.claude-sonnet-4-20250514-v1:0", "anthropic.claude-sonnet-4"),
    ("us.anthropic.claude-opus-4-1-20250805-v1:0", "anthropic.claude-opus-4-1"),
    ("global.anthropic.claude-opus-4-6-v1", "global.anthropic.claude-opus-4-6"),
    (
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "anthropic.claude-sonnet-4-5",
    ),
    (
        "arn:aws:bedrock:us-west-2::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0",
        "anthropic.claude-haiku-4-5",
    ),
    ("amazon.nova-micro-v1:0", "amazon.nova-micro"),
    ("us.amazon.nova-pro-v1:0", "amazon.nova-pro"),
    ("global.amazon.nova-2-lite-v1:0", "global.amazon.nova-2-lite"),
    ("us.amazon.nova-2-lite-v1:0", "amazon.nova-2-lite"),
    ("us.meta.llama3-2-11b-instruct-v1:0", "meta.llama3-2-11b-instruct"),
    ("meta.llama4-scout-17b-instruct-v1:0", "meta.llama4-scout-17b-instruct"),
    ("mistral.mistral-7b-instruct-v0:2", "mistral.mistral-7b-instruct"),
    ("mistral.mixtral-8x7b-instruct-v0:1", "mistral.mixtral-8x7b-instruct"),
    ("claude-sonnet-4-20250514", "claude-sonnet-4"),
    ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
    ("anthropic/claude-haiku-4-5-20251001", "claude-haiku-4-5"),
    ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
    ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
    ("claude-opus-4-1-20250805", "claude-opus-4-1"),
    ("claude-opus-5", "claude-opus-5"),
    ("claude-opus-5-5", "claude-opus-5-5"),
    ("gemini-2.5-pro", "gemini-2.5-pro"),
    ("models/gemini-2.5-pro", "gemini-2.5-pro"),
    ("google/gemini-2.5-flash", "gemini-2.5-flash"),
    ("gemini-2.5-flash-lite", "gemini-2.5-flash-lite"),
    ("gemini-2.5-flash-lite-preview-06-2025", "gemini-2.5-flash-lite"),
    ("gemini-3.5-flash-lite", "gemini-3.5-flash-lite"),
    ("mistral-large-4-0", "mistral-large-4"),
    ("mistralai/mistral-small-2603", "mistral-small-2603"),
    ("mistral-medium-3.5", "mistral-medium-3-5"),
    ("mistral-medium-2508", "mistral-medium-2508"),
    ("deepseek/deepseek-chat", "deepseek-chat"),
    ("deepseek-reasoner", "deepseek-reasoner"),
    ("deepseek-v4-flash-0731", "deepseek-v4-flash"),
    # issue 15: what google-genai and mistralai calls name (google-genai's `models/` prefix
    # stays in a name the wrapper did not strip, e.g. one read off an old row)
    ("models/gemini-embedding-001", "gemini-embedding-001"),
    ("gemini-embedding-2-preview", "gemini-embedding-2"),
    ("gemini-2.5-flash-001", "gemini-2.5-flash"),
    ("codestral-embed", "codestral-embed-2505"),
    ("open-mistral-nemo", "mistral-nemo"),
    ("mistral-nemo-2407", "mistral-nemo"),
    ("pixtral-12b-2409", "pixtral-12b"),
    ("pixtral-large-latest", "pixtral-large"),
    ("mistral-saba-latest", "mistral-saba"),
    ("mistral/ministral-8b-latest", "ministral-8b-latest"),
)
# Names that must resolve to nothing: a near miss must not be priced as a different model.
NON_MODELS = (
    "gpt-4o-mini-search-preview",
    "gpt-5.1-codex-mini",
    "gemini-2.5-pro-tts",
    "gpt-4",
    # An application inference profile names no model; a near miss is no Bedrock model.
    "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6",
    "us.anthropic.claude-sonnet-4-5-extra-v1:0",
    "ca.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "global.meta.llama3-1-8b-instruct-v1:0",
    # a moving alias whose current price is not known (see its note in llm_config.yaml)
    "mistral-large-latest",
    "gemini-embedding-2-exp",
)


def _load_config() -> dict[str, Any]:
    with CONFIG_PATH.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    assert isinstance(data, dict), f"{CONFIG_PATH} must be a YAML mapping"
    return data


CONFIG = _load_config()
ENTRIES: list[dict[str, Any]] = [e for e in CONFIG.get("models") or [] if isinstance(e, dict)]
ENTRY_IDS = [str(e.get("id")) for e in ENTRIES]


# --------------------------------------------------------------------------- helpers


def _rate(value: object, where: str, errors: list[str]) -> Decimal | None:
    if not isinstance(value, str):
        errors.append(
            f"{where}: price must be a quoted string, got {type(value).__name__} {value!r}"
        )
        return None
    try:
        rate = Decimal(value)
    except InvalidOperation:
        errors.append(f"{where}: {value!r} is not a decimal number")
        return None
    if not rate.is_finite() or rate < 0:
        errors.append(f"{where}: {value!r} must be a finite number >= 0")
        return None
    return rate


def _date(value: object, where: str, errors: list[str]) -> dt.date | None:
    if not isinstance(value, str):
        errors.append(f"{where}: must be a quoted 'YYYY-MM-DD' string, got {value!r}")
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        errors.append(f"{where}: {value!r} is not a YYYY-MM-DD date")
        return None


def _pattern(entry: Mapping[str, Any]) -> re.Pattern[str] | None:
    match = entry.get("match")
    return re.compile(match, re.IGNORECASE) if isinstance(match, str) else None


def _probes(entry: Mapping[str, Any]) -> list[str]:
    """Names the entry's regex must admit: its id, provider-prefixed and dated forms."""
    mid, provider = str(entry["id"]), str(entry["provider"])
    names = [mid, f"{provider}/{mid}"]
    if provider == "anthropic":
        names += [f"{mid}-20991231", f"{provider}/{mid}-20991231"]
    elif provider == "bedrock":  # versioned, under a profile, or an ARN
        names += [f"{mid}-v1:0", f"arn:aws:bedrock:us-east-1::foundation-model/{mid}-v1:0"]
        if ".anthropic." in f".{mid}":
            names += [f"{mid}-20991231-v1:0"]
        if not mid.startswith("global."):
            names += [f"us.{mid}-v1:0", f"eu.{mid}-v1:0"]
    elif (
        provider == "openai" and "embedding" not in mid and not re.search(r"\d{4}-\d\d-\d\d$", mid)
    ):
        names += [f"{mid}-2099-12-31", f"{provider}/{mid}-2099-12-31"]
    return names


def _matching_ids(name: str) -> list[str]:
    return [str(e["id"]) for e in ENTRIES if (p := _pattern(e)) is not None and p.fullmatch(name)]


def _genai_model(entry: Mapping[str, Any]) -> tuple[str, str, ModelInfo | None]:
    mapping = entry.get("genai_prices") or {}
    provider_id = str(mapping.get("provider") or entry["provider"])
    model_id = str(mapping.get("model") or entry["id"])
    provider = next((p for p in GENAI_PROVIDERS if p.id == provider_id), None)
    model = None
    if provider is not None:
        model = next((m for m in provider.models if m.id == model_id), None)
    return provider_id, model_id, model


def _genai_price_at(model: ModelInfo, day: dt.date) -> ModelPrice:
    """genai-prices' standard price on ``day``.

    The last conditional price that is unconstrained or has started by ``day`` (the order
    genai-prices itself resolves them in). Time-of-day windows (DeepSeek peak / off-peak) are
    ignored, so the unconstrained price of such a model is its answer; request variants (batch,
    flex, priority, fast mode) are never applied.
    """
    if isinstance(model.prices, ModelPrice):
        return model.prices
    chosen = model.prices[0].prices
    for conditional in model.prices:
        constraint = conditional.constraint
        if constraint is None or (
            isinstance(constraint, StartDateConstraint) and constraint.start_date <= day
        ):
            chosen = conditional.prices
    return chosen


def _genai_change_dates(model: ModelInfo) -> set[dt.date]:
    if isinstance(model.prices, ModelPrice):
        return set()
    return {
        c.constraint.start_date
        for c in model.prices
        if isinstance(c.constraint, StartDateConstraint)
    }


def _genai_values(price: ModelPrice) -> dict[str, Decimal | TieredPrices]:
    return {
        key: value
        for key, value in vars(price).items()
        if not key.startswith("_") and value is not None
    }


def _genai_raw(values: Mapping[str, Decimal | TieredPrices], field: str) -> Any:
    return next((values[key] for key in GENAI_KEYS[field] if key in values), None)


def _base(value: Decimal | TieredPrices | None) -> Decimal | None:
    return value.base if isinstance(value, TieredPrices) else value


def _at_threshold(value: Decimal | TieredPrices | None, threshold: int) -> Decimal | None:
    """genai-prices' rate for a request whose input just exceeds ``threshold``."""
    if not isinstance(value, TieredPrices):
        return value
    rate = value.base
    for tier in sorted(value.tiers, key=lambda t: t.start):
        if tier.start <= threshold:
            rate = tier.price
    return rate


def _ours_at(entry: Mapping[str, Any], day: dt.date) -> Mapping[str, Any]:
    """Our price in force on ``day`` (a day before the oldest price gets the oldest)."""
    prices: list[Mapping[str, Any]] = entry["prices"]
    for price in prices:  # newest first
        if dt.date.fromisoformat(price["effective"]) <= day:
            return price
    return prices[-1]


def _dec(value: object) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _ours_tier_rate(price: Mapping[str, Any], field: str, threshold: int) -> Decimal | None:
    """Our rate for a request whose input just exceeds ``threshold``: the highest tier crossed,
    a bucket omitted in that tier falling back to the base rate."""
    crossed = [t for t in price.get("tiers") or () if int(t["above_input_tokens"]) <= threshold]
    if crossed:
        top = max(crossed, key=lambda t: int(t["above_input_tokens"]))
        if field in top:
            return _dec(top[field])
    return _dec(price.get(field))


Difference = tuple[str, str, object, object]  # field, date, ours, theirs


def _raw_differences(entry: Mapping[str, Any]) -> Iterator[Difference]:
    """Every difference between the entry and genai-prices, explained or not."""
    provider_id, model_id, model = _genai_model(entry)
    if model is None:
        yield "model", "-", entry["id"], f"no model {model_id!r} in genai-prices {provider_id!r}"
        return
    our_dates = {dt.date.fromisoformat(p["effective"]) for p in entry["prices"]}
    oldest = min(our_dates)
    changes = _genai_change_dates(model) | _genai_variant_dates(model)
    check_dates = our_dates | {d for d in changes if d >= oldest}
    for day in sorted(check_dates):
        ours = _ours_at(entry, day)
        values = _genai_values(_genai_price_at(model, day))
        when = day.isoformat()

        theirs_output = _base(_genai_raw(values, "output"))
        if theirs_output is None:  # genai-prices bills nothing for output it has no price for
            theirs_output = Decimal(0)
        for field in RATE_FIELDS:
            mine = _dec(ours.get(field))
            theirs = _base(_genai_raw(values, field))
            if field == "output":
                theirs = theirs_output
            elif field == "reasoning":  # both sides: no reasoning price = the output price
                if mine is None and theirs is None:
                    continue  # follows output on both sides, compared there
                mine = mine if mine is not None else _dec(ours["output"])
                theirs = theirs if theirs is not None else theirs_output
            if mine != theirs:
                yield field, when, mine, theirs

        our_thresholds = {int(t["above_input_tokens"]) for t in ours.get("tiers") or ()}
        their_thresholds = {
            tier.start
            for field in GENAI_KEYS
            if isinstance(raw := _genai_raw(values, field), TieredPrices)
            for tier in raw.tiers
        }
        if our_thresholds != their_thresholds:
            yield "tiers", when, sorted(our_thresholds), sorted(their_thresholds)
        for threshold in sorted(our_thresholds | their_thresholds):
            for field in RATE_FIELDS:
                mine = _ours_tier_rate(ours, field, threshold)
                theirs = _at_threshold(_genai_raw(values, field), threshold)
                if field == "output" and theirs is None:
                    theirs = Decimal(0)
                if field == "reasoning":
                    if mine is None and theirs is None:
                        continue
                    if mine is None:
                        mine = _ours_tier_rate(ours, "output", threshold)
                    if theirs is None:
                        theirs = _at_threshold(_genai_raw(values, "output"), threshold)
                if mine != theirs:
                    yield f"tiers[{threshold}].{field}", when, mine, theirs

        held = {key for key, field in GENAI_EXTRA_KEYS.items() if ours.get(field) is not None}
        for key in sorted((set(values) | held) - MAPPED_GENAI_KEYS - GENAI_IGNORED_KEYS):
            if key == "web_searches_kcount" and entry["provider"] not in WEB_SEARCH_PROVIDERS:
                continue
            mine = _dec(ours.get(GENAI_EXTRA_KEYS[key])) if key in GENAI_EXTRA_KEYS else None
            if mine != values.get(key):
                yield key, when, mine, values.get(key)
        yield from _service_tier_differences(entry, model, ours, day)


def _explaining_fields(field: str) -> set[str]:
    """A listed field explains itself and everything under it: `tiers` covers
    `tiers[200000]` and `tiers[200000].input`."""
    names = {field}
    for marker in ("[", "."):
        index = field.find(marker)
        while index != -1:
            names.add(field[:index])
            index = field.find(marker, index + 1)
    return names


def _listed(entry: Mapping[str, Any]) -> dict[str, str]:
    differences = (entry.get("genai_prices") or {}).get("differences") or []
    return {str(d.get("field")): str(d.get("reason") or "").strip() for d in differences}


def _is_checkable(field: str) -> bool:
    """Fields the cross-check compares; anything else under `differences` is a note."""
    head = re.split(r"[\[.]", field, maxsplit=1)[0]
    return (
        head in RATE_FIELDS
        or head in {"tiers", "model", "service_tiers"}
        or field.endswith(("_mtok", "_kcount"))
    )


def _problems(entry: Mapping[str, Any]) -> list[str]:
    """Unexplained and stale differences of one entry, as readable lines."""
    listed = _listed(entry)
    explained = {field for field, reason in listed.items() if reason}
    used: set[str] = set()
    lines = []
    provider_id, model_id, _ = _genai_model(entry)
    for field, when, mine, theirs in _raw_differences(entry):
        covering = _explaining_fields(field) & explained
        if covering:
            used |= covering
            continue
        lines.append(
            f"{entry['id']}: {field} @ {when}: ours={mine} theirs={theirs} "
            f"(genai-prices {provider_id}/{model_id})"
        )
    for field, reason in listed.items():
        if not reason:
            lines.append(f"{entry['id']}: difference {field!r} has no reason")
        elif _is_checkable(field) and field not in used:
            lines.append(
                f"{entry['id']}: difference {field!r} is listed but no longer differs from "
                f"genai-prices {provider_id}/{model_id}: remove it"
            )
    return lines


# --------------------------------------------------------------------------- the file


def test_top_level_keys() -> None:
    assert CONFIG.get("version") == 1
    assert CONFIG.get("currency") == "USD"
    assert CONFIG.get("unit") == "per_1m_tokens"
    assert isinstance(CONFIG.get("source"), str) and CONFIG["source"].strip()
    errors: list[str] = []
    _date(CONFIG.get("checked"), "checked", errors)
    assert not errors, errors
    assert isinstance(CONFIG.get("models"), list)
    assert len(ENTRIES) == len(CONFIG["models"]), "every model must be a mapping"


def test_source_names_the_installed_genai_prices() -> None:
    installed = importlib.metadata.version("genai-prices")
    assert f"genai-prices {installed}" in CONFIG["source"], (
        f"genai-prices {installed} is installed but `source` says {CONFIG['source']!r}: "
        "re-check the table against it and update `source` and `checked`"
    )


def test_coverage() -> None:
    assert len(ENTRIES) >= MIN_MODELS, f"only {len(ENTRIES)} models"
    duplicates = sorted({i for i in ENTRY_IDS if ENTRY_IDS.count(i) > 1})
    assert not duplicates, f"duplicate ids: {duplicates}"
    missing = [i for i in REQUIRED_IDS if i not in ENTRY_IDS]
    assert not missing, f"required ids missing: {missing}"
    providers = {e.get("provider") for e in ENTRIES}
    assert providers == set(PROVIDERS), f"providers present: {sorted(map(str, providers))}"


@pytest.mark.parametrize("entry", ENTRIES, ids=ENTRY_IDS)
def test_entry_schema(entry: dict[str, Any]) -> None:
    errors: list[str] = []
    mid = entry.get("id")
    where = f"model {mid!r}"
    if extra := set(entry) - ENTRY_KEYS:
        errors.append(f"{where}: unknown keys {sorted(extra)}")
    if not isinstance(mid, str) or not mid or mid != mid.strip().lower():
        errors.append(f"{where}: id must be a non-empty lower-case string")
    if entry.get("provider") not in PROVIDERS:
        errors.append(f"{where}: provider must be one of {PROVIDERS}")
    if entry.get("source", "genai-prices") != "genai-prices":  # tools/update_prices.py's mark
        errors.append(f"{where}: source, when present, must be 'genai-prices'")

    prices = entry.get("prices")
    if not isinstance(prices, list) or not prices:
        errors.append(f"{where}: prices must be a non-empty list")
        prices = []
    dates: list[dt.date] = []
    for index, price in enumerate(prices):
        at = f"{where} prices[{index}]"
        if not isinstance(price, dict):
            errors.append(f"{at}: must be a mapping")
            continue
        if extra := set(price) - PRICE_KEYS:
            errors.append(f"{at}: unknown keys {sorted(extra)}")
        if (day := _date(price.get("effective"), f"{at}.effective", errors)) is not None:
            dates.append(day)
        for field in ("input", "output"):
            if field not in price:
                errors.append(f"{at}: {field} is required")
        for field in RATE_FIELDS:
            if field in price:
                _rate(price[field], f"{at}.{field}", errors)
        _extras_errors(price, at, errors)
        tiers = price.get("tiers")
        if tiers is None:
            continue
        if not isinstance(tiers, list) or not tiers:
            errors.append(f"{at}.tiers: must be a non-empty list")
            continue
        thresholds = []
        for t_index, tier in enumerate(tiers):
            t_at = f"{at}.tiers[{t_index}]"
            if not isinstance(tier, dict):
                errors.append(f"{t_at}: must be a mapping")
                continue
            if extra := set(tier) - TIER_KEYS:
                errors.append(f"{t_at}: unknown keys {sorted(extra)}")
            threshold = tier.get("above_input_tokens")
            if type(threshold) is not int or threshold <= 0:
                errors.append(f"{t_at}.above_input_tokens: must be a positive integer")
            else:
                thresholds.append(threshold)
            rates = [f for f in RATE_FIELDS if f in tier]
            if not rates:
                errors.append(f"{t_at}: names no rate")
            for field in rates:
                _rate(tier[field], f"{t_at}.{field}", errors)
        if thresholds != sorted(set(thresholds)):
            errors.append(f"{at}.tiers: thresholds must be strictly ascending")
    if dates != sorted(set(dates), reverse=True):
        errors.append(f"{where}: effective dates must be strictly descending (newest first)")
    checked = dt.date.fromisoformat(CONFIG["checked"])
    if dates and min(dates) > checked:
        errors.append(f"{where}: no price in force on the `checked` date {checked}")

    if "match" in entry:
        if not isinstance(entry["match"], str) or not entry["match"]:
            errors.append(f"{where}: match must be a non-empty string")
        else:
            try:
                pattern = re.compile(entry["match"], re.IGNORECASE)
            except re.error as exc:
                errors.append(f"{where}: match does not compile: {exc}")
            else:
                if isinstance(mid, str) and not pattern.fullmatch(mid):
                    errors.append(f"{where}: match does not full-match its own id")

    mapping = entry.get("genai_prices")
    if mapping is not None:
        if not isinstance(mapping, dict):
            errors.append(f"{where}: genai_prices must be a mapping")
        else:
            if extra := set(mapping) - {"provider", "model", "differences"}:
                errors.append(f"{where}: genai_prices has unknown keys {sorted(extra)}")
            for key in ("provider", "model"):
                if key in mapping and (not isinstance(mapping[key], str) or not mapping[key]):
                    errors.append(f"{where}: genai_prices.{key} must be a non-empty string")
            differences = mapping.get("differences", [])
            if not isinstance(differences, list):
                errors.append(f"{where}: genai_prices.differences must be a list")
                differences = []
            fields = []
            for diff in differences:
                ok = (
                    isinstance(diff, dict)
                    and set(diff) == {"field", "reason"}
                    and all(isinstance(diff[k], str) and diff[k].strip() for k in diff)
                )
                if not ok:
                    errors.append(f"{where}: each difference needs a non-empty field and reason")
                else:
                    fields.append(diff["field"])
            if len(fields) != len(set(fields)):
                errors.append(f"{where}: a difference field is listed twice")
    assert not errors, "\n".join(errors)


# --------------------------------------------------------------------------- match regexes


def test_no_regex_matches_another_entrys_id() -> None:
    clashes = [
        f"{e['id']}'s match {e['match']!r} full-matches the id {other!r}"
        for e in ENTRIES
        if (pattern := _pattern(e)) is not None
        for other in ENTRY_IDS
        if other != e["id"] and pattern.fullmatch(other)
    ]
    assert not clashes, "\n".join(clashes)


@pytest.mark.parametrize("entry", ENTRIES, ids=ENTRY_IDS)
def test_regex_admits_dated_and_prefixed_names_only_for_itself(entry: dict[str, Any]) -> None:
    assert "match" in entry, f"{entry['id']} has no match regex"
    problems = []
    for name in _probes(entry):
        matched = _matching_ids(name)
        if matched != [entry["id"]]:
            problems.append(f"{name!r} is matched by {matched}, expected only {entry['id']!r}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(("name", "expected"), ALIASES)
def test_alias_resolves_to_one_entry(name: str, expected: str) -> None:
    assert _matching_ids(name) == [expected]


@pytest.mark.parametrize("name", NON_MODELS)
def test_near_miss_names_match_nothing(name: str) -> None:
    assert _matching_ids(name) == []


# --------------------------------------------------------------------------- vs genai-prices


@pytest.mark.parametrize("entry", ENTRIES, ids=ENTRY_IDS)
def test_matches_genai_prices(entry: dict[str, Any]) -> None:
    problems = _problems(entry)
    assert not problems, (
        "llm_config.yaml differs from genai-prices; fix the price, or list the field under "
        "`genai_prices.differences` with a reason if the difference is deliberate:\n"
        + "\n".join(problems)
    )


def _unconditionally_priced(entry: dict[str, Any]) -> bool:
    _, _, model = _genai_model(entry)
    return model is not None and (
        isinstance(model.prices, ModelPrice)
        or not any(isinstance(c.constraint, TimeOfDateConstraint) for c in model.prices)
    )


RESOLVABLE = [e for e in ENTRIES if _unconditionally_priced(e)]


@pytest.mark.parametrize("entry", RESOLVABLE, ids=[e["id"] for e in RESOLVABLE])
def test_resolver_agrees_with_genai_prices(entry: dict[str, Any]) -> None:
    """Our reading of genai-prices' conditional prices is the one genai-prices uses itself
    (time-of-day models are left out: there we deliberately read the unconstrained price)."""
    _, _, model = _genai_model(entry)
    assert model is not None
    days = {dt.date.fromisoformat(p["effective"]) for p in entry["prices"]}
    for day in days | _genai_change_dates(model):
        noon = dt.datetime.combine(day, dt.time(12), tzinfo=dt.timezone.utc)
        assert _genai_price_at(model, day) == model.get_prices(noon), (entry["id"], day)


# --------------------------------------------------------------------------- the check bites


def _entry(model_id: str) -> dict[str, Any]:
    return copy.deepcopy(next(e for e in ENTRIES if e["id"] == model_id))


def test_check_catches_a_changed_price() -> None:
    entry = _entry("gpt-4o")
    entry["prices"][0]["input"] = str(Decimal(entry["prices"][0]["input"]) + Decimal("0.01"))
    assert any(": input @ " in line for line in _problems(entry))


def test_check_catches_a_changed_tier_and_a_dropped_cache_write() -> None:
    entry = _entry("claude-sonnet-4-5")
    entry["prices"][0]["tiers"][0]["output"] = "99"
    del entry["prices"][0]["cache_write_1h"]
    problems = "\n".join(_problems(entry))
    assert "tiers[200000].output" in problems
    assert ": cache_write_1h @ " in problems


def test_check_catches_a_missing_announced_price() -> None:
    entry = _entry("gemini-3.6-flash")
    entry["prices"] = [p for p in entry["prices"] if p["effective"] != "2027-01-01"]
    assert any("@ 2027-01-01" in line for line in _problems(entry))


def test_check_catches_an_unknown_model_and_a_stale_difference() -> None:
    entry = _entry("gpt-4o")
    entry["genai_prices"] = {"model": "no-such-model"}
    assert any(": model @ " in line for line in _problems(entry))
    entry = _entry("gpt-4o")
    entry["genai_prices"] = {"differences": [{"field": "output", "reason": "because"}]}
    assert any("no longer differs" in line for line in _problems(entry))


# --------------------------------------------------------------------------- billing variants
#
# Service tiers (`service_tiers`) against genai-prices' price variants: each of our tiers is
# the variant selected by these request contexts (OpenAI shows `fast` as `priority`, and the
# two are one price there). genai-prices dates its variants from when it verified them
# (OpenAI 2026-10-12 and -14, Anthropic 2026-10-14) and models no earlier history: on a day
# before a variant starts there, ours is not compared (it belongs to the price version in force
# when the variant was verified, llm_config.yaml's header says so). A variant genai-prices has
# that we lack is a difference for the providers whose calls report their tier.

TIER_CONTEXTS: dict[str, tuple[dict[str, str], ...]] = {
    "flex": ({"service_tier": "flex"},),
    "priority": ({"service_tier": "priority"}, {"service_tier": "fast"}),
    "batch": ({"processing": "batch"},),
    "fast": ({"speed": "fast"},),
}
TIER_PROVIDERS = {"openai", "anthropic"}
TIER_KEYS_OF_SERVICE = {"tiers", *RATE_FIELDS}


def _genai_variant_dates(model: ModelInfo) -> set[dt.date]:
    return {
        v.constraint.start_date
        for v in model.price_variants or ()
        if isinstance(v.constraint, StartDateConstraint)
    }


def _has_variant(model: ModelInfo, context: Mapping[str, str]) -> bool:
    return any(
        v.when == dict(context) and _genai_values(v.prices) for v in model.price_variants or ()
    )


def _ours_service_rate(
    price: Mapping[str, Any], spec: Mapping[str, Any], field: str, threshold: int | None
) -> Decimal | None:
    """Our service tier's rate, as llm_config.yaml's header says it is read: a bucket the tier
    names is the tier's own (its `tiers` above a threshold, else flat); any other is the
    standard price's (its long-context tiers included)."""
    if field not in spec:
        if threshold is None:
            return _dec(price.get(field))
        return _ours_tier_rate(price, field, threshold)
    rate = _dec(spec[field])
    if threshold is not None:
        for tier in sorted(spec.get("tiers") or (), key=lambda t: int(t["above_input_tokens"])):
            if int(tier["above_input_tokens"]) <= threshold and field in tier:
                rate = _dec(tier[field])
    return rate


def _service_tier_differences(
    entry: Mapping[str, Any], model: ModelInfo, ours: Mapping[str, Any], day: dt.date
) -> Iterator[Difference]:
    when = day.isoformat()
    noon = dt.datetime.combine(day, dt.time(12), tzinfo=dt.timezone.utc)
    standard = _genai_values(model.get_prices(noon))
    ours_tiers: Mapping[str, Any] = ours.get("service_tiers") or {}
    for name in sorted(set(ours_tiers) - set(TIER_CONTEXTS)):
        yield f"service_tiers.{name}", when, "a tier genai-prices has no variant for", None
    for name, contexts in TIER_CONTEXTS.items():
        spec = ours_tiers.get(name)
        for context in contexts:
            values = _genai_values(model.get_prices(noon, context))
            active = values != standard
            if spec is None:
                if active and entry["provider"] in TIER_PROVIDERS:
                    yield f"service_tiers.{name}", when, None, f"a variant for {context}"
                continue
            if not active:
                if not _has_variant(model, context):
                    yield f"service_tiers.{name}", when, "rates", f"no variant for {context}"
                continue  # before genai-prices' verification date: not modelled there
            thresholds = {
                int(t["above_input_tokens"])
                for t in [*(ours.get("tiers") or ()), *(spec.get("tiers") or ())]
            } | {
                tier.start
                for field in GENAI_KEYS
                if isinstance(raw := _genai_raw(values, field), TieredPrices)
                for tier in raw.tiers
            }
            for threshold in [None, *sorted(thresholds)]:
                where = "" if threshold is None else f"tiers[{threshold}]."

                def theirs_of(
                    field: str,
                    threshold: int | None = threshold,
                    values: Mapping[str, Decimal | TieredPrices] = values,
                ) -> Decimal | None:
                    raw = _genai_raw(values, field)
                    return _base(raw) if threshold is None else _at_threshold(raw, threshold)

                for field in RATE_FIELDS:
                    mine = _ours_service_rate(ours, spec, field, threshold)
                    theirs = theirs_of(field)
                    if field == "output" and theirs is None:
                        theirs = Decimal(0)
                    if field == "reasoning":  # both sides: no reasoning price = the output one
                        if mine is None and theirs is None:
                            continue
                        if mine is None:
                            mine = _ours_service_rate(ours, spec, "output", threshold)
                        if theirs is None:
                            theirs = theirs_of("output")
                    if mine != theirs:
                        yield f"service_tiers.{name}.{where}{field}", when, mine, theirs


def _extras_errors(price: Mapping[str, Any], at: str, errors: list[str]) -> None:
    """The billing-variant keys of one price version, in the file's format."""
    for field in ("web_search_per_1k", "input_audio", "output_audio"):
        if field in price:
            _rate(price[field], f"{at}.{field}", errors)
    if ("input_audio" in price or "output_audio" in price) and (
        price.get("tiers") or price.get("service_tiers")
    ):
        errors.append(f"{at}: audio rates cannot be combined with tiers or service_tiers")
    tiers = price.get("service_tiers")
    if tiers is None:
        return
    if not isinstance(tiers, dict) or not tiers:
        errors.append(f"{at}.service_tiers: must be a non-empty mapping")
        return
    for name, spec in tiers.items():
        s_at = f"{at}.service_tiers.{name}"
        if name not in TIER_CONTEXTS:
            errors.append(f"{s_at}: not a tier a response reports ({sorted(TIER_CONTEXTS)})")
        if not isinstance(spec, dict):
            errors.append(f"{s_at}: must be a mapping")
            continue
        if extra := set(spec) - TIER_KEYS_OF_SERVICE:
            errors.append(f"{s_at}: unknown keys {sorted(extra)}")
        named = [f for f in RATE_FIELDS if f in spec]
        if not named:
            errors.append(f"{s_at}: names no rate")
        for field in named:
            _rate(spec[field], f"{s_at}.{field}", errors)
        for index, tier in enumerate(spec.get("tiers") or ()):
            t_at = f"{s_at}.tiers[{index}]"
            if not isinstance(tier, dict) or type(tier.get("above_input_tokens")) is not int:
                errors.append(f"{t_at}: must be a mapping with an integer above_input_tokens")
                continue
            if extra := set(tier) - {"above_input_tokens", *named}:
                errors.append(f"{t_at}: may only change the rates the tier names, not {extra}")
            for field in RATE_FIELDS:
                if field in tier:
                    _rate(tier[field], f"{t_at}.{field}", errors)


def test_check_catches_a_changed_service_tier_rate_and_a_missing_tier() -> None:
    entry = _entry("o4-mini")
    entry["prices"][0]["service_tiers"]["flex"]["cache_read"] = "0.1375"  # genai: 0.138
    del entry["prices"][0]["service_tiers"]["priority"]
    problems = "\n".join(_problems(entry))
    assert "o4-mini: service_tiers.flex.cache_read @ 2026-10-12: ours=0.1375 theirs=0.138" in (
        problems
    )
    assert "o4-mini: service_tiers.priority @ 2026-10-12: ours=None" in problems


def test_check_catches_a_long_context_rate_of_a_tier_and_a_tier_genai_lacks() -> None:
    entry = _entry("gpt-5.4")
    entry["prices"][0]["service_tiers"]["flex"]["tiers"][0]["output"] = "11.00"
    entry["prices"][0]["service_tiers"]["priority"]["tiers"] = [
        {"above_input_tokens": 272000, "input": "10.00"}  # genai: priority is flat at 5.00
    ]
    problems = "\n".join(_problems(entry))
    assert "service_tiers.flex.tiers[272000].output @ 2026-10-12: ours=11.00 theirs=11.25" in (
        problems
    )
    assert "service_tiers.priority.tiers[272000].input @ 2026-10-12: ours=10.00 theirs=5" in (
        problems
    )
    entry = _entry("claude-opus-4-1")  # genai-prices has no batch variant for it
    entry["prices"][0]["service_tiers"] = {"batch": {"input": "7.50"}}
    assert any("service_tiers.batch @ " in line for line in _problems(entry))


def test_check_catches_a_changed_web_search_fee_and_audio_rate() -> None:
    entry = _entry("claude-haiku-4-5")
    entry["prices"][0]["web_search_per_1k"] = "25.00"
    assert any(": web_searches_kcount @ " in line for line in _problems(entry))
    entry = _entry("gpt-4o")
    del entry["prices"][0]["web_search_per_1k"]
    assert any(": web_searches_kcount @ " in line for line in _problems(entry))
    entry = _entry("gpt-audio")
    entry["prices"][0]["output_audio"] = "80.00"
    assert any(": output_audio_mtok @ " in line for line in _problems(entry))


def test_loader_and_this_check_agree_on_the_extra_keys() -> None:
    from majordomo_log.record.price_extras import EXTRA_PRICE_KEYS as LOADED

    assert set(LOADED) == EXTRA_PRICE_KEYS
