"""``make prices``: regenerate the prices of ``llm_config.yaml`` that come from genai-prices.

Run it after bumping the pinned ``genai-prices`` (the test dependency): it rewrites, in
place, the ``prices:`` list of every entry marked ``source: genai-prices`` from that
package's bundled data, prints a unified diff of the file for review, and leaves
everything else byte for byte as it was: ids, ``match`` regexes, comments, entries
without the mark (hand-written ones: a provider genai-prices lacks, a negotiated rate).

What it takes from genai-prices, per entry (the same reading as
tests/record/test_price_table_vs_genai_prices.py, which checks the result):

* the dates: the entry's oldest ``effective`` date (a launch date genai-prices does not
  have, kept as written) and every dated price change genai-prices has after it;
* on each date, the standard price (no batch, flex or priority variant; time-of-day
  windows ignored): input, output (0 when it has none), cache read, cache writes (5m,
  1h), reasoning when it has its own rate, and the long-context tiers;
* but a field listed under ``genai_prices.differences`` (a deliberate difference, with
  its reason) keeps the entry's own value, taken from the price in force on that date;
* and the billing variants (``record/price_extras.py``) of the providers whose responses
  say how they were billed (OpenAI, Anthropic: ``record/billing.py``): the web search fee
  (``web_search_per_1k``), OpenAI's audio rates (``input_audio``, ``output_audio``), and
  the ``service_tiers`` genai-prices has price variants for (``flex``, ``priority``,
  ``batch``, Anthropic's ``fast``). genai-prices dates its variants from when it verified
  them and models no earlier history, so a price version gets the variants in force on its
  last day (the newest version: those in force today and later); an older version gets
  none, and a tiered call it prices is flagged ``service_tier_unpriced``, not guessed.

It also updates the header's ``source`` to the installed genai-prices version and
``checked`` to today, only when something else changed, so running it on a file that
is up to date changes nothing.

Lives in ``tools/``, not in the package: it edits the repository, needs genai-prices
(a test dependency, never a runtime one), and is not shipped in the wheel.

Usage: ``.venv/bin/python tools/update_prices.py [--config PATH] [--check]``
(``--check``: write nothing, exit 1 if the file would change).
"""

from __future__ import annotations

import argparse
import datetime as dt
import difflib
import importlib.metadata
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from genai_prices.data import providers as GENAI_PROVIDERS
from genai_prices.types import ModelInfo, ModelPrice, StartDateConstraint, TieredPrices

CONFIG = Path(__file__).resolve().parents[1] / "llm_config.yaml"
MARK = "genai-prices"  # the value of `source:` on a generated entry
RATE_FIELDS = ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h", "reasoning")
# Our bucket -> genai-prices price keys, the first one present wins (as in the test).
GENAI_KEYS: dict[str, tuple[str, ...]] = {
    "input": ("input_mtok",),
    "output": ("output_mtok",),
    "cache_read": ("cache_read_mtok",),
    "cache_write_5m": ("cache_write_5m_mtok", "cache_write_mtok"),
    "cache_write_1h": ("cache_write_1h_mtok",),
    "reasoning": ("output_reasoning_mtok",),
}


# Providers whose calls report their tier, web searches, audio tokens (record/billing.py)
TIER_PROVIDERS = ("openai", "anthropic")
AUDIO_PROVIDERS = ("openai",)
# Our service tier -> the genai-prices request context of its variant
TIER_CONTEXTS = {
    "flex": {"service_tier": "flex"},
    "priority": {"service_tier": "priority"},
    "batch": {"processing": "batch"},
    "fast": {"speed": "fast"},
}
_FAR = dt.datetime(9999, 1, 1, tzinfo=dt.timezone.utc)  # "in force today and later"


@dataclass
class Report:
    regenerated: list[str] = field(default_factory=list)  # entries whose prices changed
    unchanged: int = 0
    hand_written: list[str] = field(default_factory=list)
    not_in_genai_prices: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- genai-prices


def genai_model(entry: Mapping[str, Any]) -> ModelInfo | None:
    mapping = entry.get("genai_prices") or {}
    provider_id = str(mapping.get("provider") or entry.get("provider"))
    model_id = str(mapping.get("model") or entry["id"])
    provider = next((p for p in GENAI_PROVIDERS if p.id == provider_id), None)
    if provider is None:
        return None
    return next((m for m in provider.models if m.id == model_id), None)


def price_at(model: ModelInfo, day: dt.date) -> ModelPrice:
    """The standard price on ``day``: the last conditional price that is unconstrained
    or has started by then (time-of-day windows are skipped: their unconstrained price
    is the answer)."""
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


def change_dates(model: ModelInfo) -> set[dt.date]:
    if isinstance(model.prices, ModelPrice):
        return set()
    return {
        c.constraint.start_date
        for c in model.prices
        if isinstance(c.constraint, StartDateConstraint)
    }


def raw(price: ModelPrice, bucket: str) -> Decimal | TieredPrices | None:
    for key in GENAI_KEYS[bucket]:
        value = getattr(price, key, None)
        if value is not None:
            return value  # type: ignore[no-any-return]
    return None


def at_threshold(value: Decimal | TieredPrices, threshold: int) -> Decimal:
    """The rate of a request whose input just exceeds ``threshold``."""
    if not isinstance(value, TieredPrices):
        return value
    rate = value.base
    for tier in sorted(value.tiers, key=lambda t: t.start):
        if tier.start <= threshold:
            rate = tier.price
    return rate


# --------------------------------------------------------------------------- one entry


def ours_at(entry: Mapping[str, Any], day: dt.date) -> Mapping[str, Any]:
    """The entry's own price in force on ``day`` (before its oldest: the oldest)."""
    prices: Sequence[Mapping[str, Any]] = entry["prices"]
    for price in prices:  # newest first
        if dt.date.fromisoformat(str(price["effective"])) <= day:
            return price
    return prices[-1]


def kept_fields(entry: Mapping[str, Any]) -> set[str]:
    """Fields the entry keeps as written: its listed differences that are rates
    (``tiers`` and anything under it keeps the whole tier list)."""
    differences = (entry.get("genai_prices") or {}).get("differences") or []
    kept = set()
    for difference in differences:
        name = str(difference.get("field"))
        if name in RATE_FIELDS:
            kept.add(name)
        elif name.startswith("tiers"):
            kept.add("tiers")
    return kept


def generate(entry: Mapping[str, Any], model: ModelInfo) -> list[dict[str, Any]]:
    """The entry's price list from genai-prices, newest first."""
    oldest = min(dt.date.fromisoformat(str(p["effective"])) for p in entry["prices"])
    days = sorted({oldest} | {d for d in change_dates(model) if d > oldest}, reverse=True)
    kept = kept_fields(entry)
    versions: list[dict[str, Any]] = []
    for day in days:
        theirs = price_at(model, day)
        ours = ours_at(entry, day)
        version: dict[str, Any] = {"effective": day.isoformat()}
        for bucket in RATE_FIELDS:
            if bucket in kept:
                if bucket in ours:
                    version[bucket] = Decimal(str(ours[bucket]))
                continue
            value = raw(theirs, bucket)
            if value is None and bucket == "output":
                value = Decimal(0)  # genai-prices bills nothing for output it has no price for
            if value is not None:
                version[bucket] = value.base if isinstance(value, TieredPrices) else value
        tiers = ours.get("tiers") if "tiers" in kept else generated_tiers(theirs)
        if tiers:
            version["tiers"] = tiers
        until = days[days.index(day) - 1] if day != days[0] else None  # the next version's day
        version.update(extras(entry, model, theirs, until))
        versions.append(version)
    # A change genai-prices has in a rate this table does not hold (audio, say) leaves two
    # equal versions here: the older one says it all.
    return [
        v for i, v in enumerate(versions) if i + 1 == len(versions) or not same(v, versions[i + 1])
    ]


def extras(
    entry: Mapping[str, Any], model: ModelInfo, theirs: ModelPrice, until: dt.date | None
) -> dict[str, Any]:
    """A version's billing variants (see the module docstring); ``until``: the day the next
    version starts (None: this is the newest)."""
    provider = entry.get("provider")
    out: dict[str, Any] = {}
    if provider in AUDIO_PROVIDERS:
        for field, key in (
            ("input_audio", "input_audio_mtok"),
            ("output_audio", "output_audio_mtok"),
        ):
            if getattr(theirs, key, None) is not None:
                out[field] = getattr(theirs, key)
    if provider not in TIER_PROVIDERS:
        return out
    fee = getattr(theirs, "web_searches_kcount", None)
    if fee is not None:
        out["web_search_per_1k"] = fee
    last = _FAR if until is None else dt.datetime.combine(until, dt.time(), dt.timezone.utc)
    last -= dt.timedelta(seconds=1)
    standard = vars(model.get_prices(last))
    service: dict[str, dict[str, Any]] = {}
    for name, context in TIER_CONTEXTS.items():
        variant = vars(model.get_prices(last, context))
        changed = {
            bucket: value
            for bucket in RATE_FIELDS
            if (
                value := next(
                    (variant[k] for k in GENAI_KEYS[bucket] if variant.get(k) is not None), None
                )
            )
            is not None
            and value
            != next((standard[k] for k in GENAI_KEYS[bucket] if standard.get(k) is not None), None)
        }
        if changed:
            service[name] = changed
    if service:
        out["service_tiers"] = service
    return out


def generated_tiers(price: ModelPrice) -> list[dict[str, Any]]:
    tiered = {b: v for b in RATE_FIELDS if isinstance(v := raw(price, b), TieredPrices)}
    thresholds = sorted({tier.start for value in tiered.values() for tier in value.tiers})
    return [
        {"above_input_tokens": t, **{b: at_threshold(v, t) for b, v in tiered.items()}}
        for t in thresholds
    ]


def same(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return {k: v for k, v in a.items() if k != "effective"} == {
        k: v for k, v in b.items() if k != "effective"
    }


# --------------------------------------------------------------------------- the file's text


def rate(value: Any) -> str:
    """A price as the file writes it: quoted, at least two decimals ("2.50", "0.075"),
    "0" for nothing."""
    number = Decimal(str(value))
    if number == 0:
        return '"0"'
    number = number.normalize()
    exponent = number.as_tuple().exponent
    places = max(2, -exponent) if isinstance(exponent, int) else 2
    return f'"{number:.{places}f}"'


def render(versions: Iterable[Mapping[str, Any]]) -> list[str]:
    lines = ["    prices:"]
    for version in versions:
        lines.append(f'      - effective: "{version["effective"]}"')
        lines += [f"        {b}: {rate(version[b])}" for b in RATE_FIELDS if b in version]
        lines += [
            f"        {a}: {rate(version[a])}"
            for a in ("input_audio", "output_audio")
            if a in version
        ]
        if version.get("tiers"):
            lines.append("        tiers:")
            for tier in version["tiers"]:
                lines.append(f"          - above_input_tokens: {int(tier['above_input_tokens'])}")
                lines += [f"            {b}: {rate(tier[b])}" for b in RATE_FIELDS if b in tier]
        if "web_search_per_1k" in version:
            lines.append(f"        web_search_per_1k: {rate(version['web_search_per_1k'])}")
        if version.get("service_tiers"):
            lines.append("        service_tiers:")
            for name, rates in version["service_tiers"].items():
                lines += render_service_tier(name, rates)
    return lines


def render_service_tier(name: str, rates: Mapping[str, Decimal | TieredPrices]) -> list[str]:
    """One service tier: on one line when it is flat and fits in 100 columns, else one rate
    a line, with its long-context rates under ``tiers``."""
    if not any(isinstance(v, TieredPrices) for v in rates.values()):
        inline = f"          {name}: {{{', '.join(f'{b}: {rate(v)}' for b, v in rates.items())}}}"
        if len(inline) <= 99:
            return [inline]
    lines = [f"          {name}:"]
    lines += [
        f"            {b}: {rate(v.base if isinstance(v, TieredPrices) else v)}"
        for b, v in rates.items()
    ]
    tiered = {b: v for b, v in rates.items() if isinstance(v, TieredPrices)}
    thresholds = sorted({t.start for v in tiered.values() for t in v.tiers})
    if thresholds:
        lines.append("            tiers:")
    for threshold in thresholds:
        lines.append(f"              - above_input_tokens: {threshold}")
        lines += [
            f"                {b}: {rate(at_threshold(v, threshold))}" for b, v in tiered.items()
        ]
    return lines


def replace_prices(lines: list[str], entry_id: str, block: list[str]) -> list[str]:
    """The file's lines with the ``prices:`` block of entry ``entry_id`` replaced: from
    its ``    prices:`` line to the first line after it that is blank or less indented
    than a price."""
    start = lines.index(f"  - id: {entry_id}")
    at = next(i for i in range(start + 1, len(lines)) if lines[i] == "    prices:")
    end = at + 1
    while end < len(lines) and lines[end].startswith("      "):
        end += 1
    return [*lines[:at], *block, *lines[end:]]


def regenerate(text: str, *, today: dt.date, version: str) -> tuple[str, Report]:
    data = yaml.safe_load(text)
    lines = text.split("\n")
    report = Report()
    for entry in data.get("models") or ():
        entry_id = str(entry["id"])
        if entry.get("source") != MARK:
            report.hand_written.append(entry_id)
            continue
        model = genai_model(entry)
        if model is None:
            report.not_in_genai_prices.append(entry_id)
            continue
        updated = replace_prices(lines, entry_id, render(generate(entry, model)))
        if updated == lines:
            report.unchanged += 1
        else:
            report.regenerated.append(entry_id)
            lines = updated
    if report.regenerated or f"genai-prices {version}" not in str(data.get("source", "")):
        lines = [_header(line, today, version) for line in lines]
    return "\n".join(lines), report


def _header(line: str, today: dt.date, version: str) -> str:
    if line.startswith("source: "):
        return re.sub(r"genai-prices \d+(\.\d+)*", f"genai-prices {version}", line)
    if line.startswith("checked: "):
        return f'checked: "{today.isoformat()}"'
    return line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate llm_config.yaml from genai-prices.")
    parser.add_argument("--config", type=Path, default=CONFIG, help="the price file to update")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if the file would change"
    )
    args = parser.parse_args(argv)
    before = args.config.read_text(encoding="utf-8")
    version = importlib.metadata.version("genai-prices")
    after, report = regenerate(before, today=dt.date.today(), version=version)
    diff = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=f"a/{args.config.name}",
        tofile=f"b/{args.config.name}",
    )
    sys.stdout.writelines(diff)
    changed = after != before
    if changed and not args.check:
        args.config.write_text(after, encoding="utf-8")
    print(
        f"genai-prices {version}: {len(report.regenerated)} entries changed"
        f"{' (' + ', '.join(report.regenerated) + ')' if report.regenerated else ''}, "
        f"{report.unchanged} unchanged, {len(report.hand_written)} hand-written left as they are"
        + (
            f"; not in genai-prices, left as they are: {', '.join(report.not_in_genai_prices)}"
            if report.not_in_genai_prices
            else ""
        )
        + ("" if changed else "; the file is up to date")
        + (" (--check: nothing written)" if changed and args.check else ""),
        file=sys.stderr,
    )
    return 1 if changed and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
