"""A price file's billing variants (record/price_extras.py): how a service tier's rates are
resolved against the standard price, and what the loader refuses."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from majordomo_log import ConfigError
from majordomo_log.record.pricing import PriceTable

D = Decimal


def load(tmp_path: Path, text: str) -> PriceTable:
    path = tmp_path / "prices.yaml"
    path.write_text(text, encoding="utf-8")
    return PriceTable.load([path], builtin=False)


TIERED = """
models:
  - id: m
    prices:
      - effective: "2026-01-01"
        input: "2.00"
        output: "10.00"
        cache_read: "0.20"
        tiers:
          - above_input_tokens: 1000
            input: "4.00"
            output: "15.00"
            cache_read: "0.40"
        web_search_per_1k: "10.00"
        service_tiers:
          flex:
            input: "1.00"
            output: "5.00"
            tiers:
              - above_input_tokens: 500
                input: "1.50"
          priority: {input: "5.00"}
"""


def test_a_service_tier_replaces_the_buckets_it_names_and_keeps_the_rest(
    tmp_path: Path,
) -> None:
    table = load(tmp_path, TIERED)
    [version] = table.models[0].versions
    assert version.extras is not None
    assert version.extras.web_search_per_1k == D("10.00")
    flex = version.extras.service_tiers["flex"]
    # below every threshold: flex input/output, standard cache_read
    rates, compiled = flex.rates_for(500)
    assert (rates.input, rates.output, rates.cache_read) == (D("1.00"), D("5.00"), D("0.20"))
    assert compiled is not None
    # above flex's own 500: its input changes, output stays flex's (named: flat unless tiered)
    rates, _ = flex.rates_for(501)
    assert (rates.input, rates.output, rates.cache_read) == (D("1.50"), D("5.00"), D("0.20"))
    # above the standard 1000: cache_read (not named by flex) follows the standard tier
    rates, _ = flex.rates_for(1001)
    assert (rates.input, rates.output, rates.cache_read) == (D("1.50"), D("5.00"), D("0.40"))
    # priority names input only: flat 5.00 above the threshold too; output follows standard
    priority = version.extras.service_tiers["priority"]
    assert priority.rates_for(10)[0].output == D("10.00")
    above = priority.rates_for(1001)[0]
    assert (above.input, above.output, above.cache_read) == (D("5.00"), D("15.00"), D("0.40"))


def test_a_version_without_extras_has_none(tmp_path: Path) -> None:
    table = load(
        tmp_path,
        "models:\n  - id: m\n    prices:\n"
        '      - {effective: "2026-01-01", input: "1", output: "2"}\n',
    )
    assert table.models[0].versions[0].extras is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('service_tiers: {default: {input: "1"}}', "is the standard price"),
        ('service_tiers: {Flex: {input: "1"}}', "lower-case"),
        ('service_tiers: {flex: {inptu: "1"}}', "unknown keys"),
        ("service_tiers: {flex: {}}", "names no rate"),
        ('service_tiers: {flex: {input: "-1"}}', "must be a finite number >= 0"),
        ('service_tiers: {flex: {input: "x"}}', "is not a number"),
        ('web_search_per_1k: "ten"', "is not a number"),
        ("service_tiers: [flex]", "must map tier names"),
        (
            'service_tiers: {flex: {input: "1", tiers: [{above_input_tokens: 9, output: "3"}]}}',
            "may only change rates the service tier names",
        ),
        ('input_audio: "32"\n        service_tiers: {flex: {input: "1"}}', "audio rates cannot"),
    ],
)
def test_bad_extras_are_refused_at_load(tmp_path: Path, extra: str, message: str) -> None:
    text = (
        'models:\n  - id: m\n    prices:\n      - effective: "2026-01-01"\n'
        f'        input: "2"\n        output: "3"\n        {extra}\n'
    )
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, text)
