"""Loading price tables: user files merged over the built-in one, the environment variable,
match order, fallbacks of missing rates, and errors for invalid files."""

from __future__ import annotations

import datetime as dt
import os
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

import majordomo_log
from majordomo_log import ConfigError
from majordomo_log.record.pricing import PRICES_ENV_VAR, Cost, PriceTable, Rates
from majordomo_log.record.usage import Usage

M = Decimal(1_000_000)
WHEN = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)

NEGOTIATED = """\
models:
  - id: gpt-4o
    provider: openai
    match: '^(openai/)?gpt-4o(-\\d{4}-\\d{2}-\\d{2})?$'
    prices:
      - effective: "2025-01-01"
        input: "2.00"
        output: "8.00"
        cache_read: "1.00"
  - id: acme-llm-1
    provider: acme
    match: '^(acme/)?acme-llm-1(-\\d{8})?$'
    prices:
      - effective: "2026-01-01"
        input: "0.40"
        output: "1.60"
"""


@pytest.fixture(autouse=True)
def _no_env_prices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PRICES_ENV_VAR, raising=False)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def cost_of(table: PriceTable, model: str, usage: Usage, when: dt.datetime = WHEN) -> Cost:
    entry = table.resolve(model)
    assert entry is not None, model
    return table.cost(entry, usage, when)


def _check_negotiated(table: PriceTable) -> None:
    usage = Usage(input=1000, cache_read=3000, output=500)
    cost = cost_of(table, "gpt-4o", usage)
    # negotiated: 1000 * 2.00 + 3000 * 1.00 + 500 * 8.00 = 2,000 + 3,000 + 4,000 = 9,000 / 1e6
    assert cost.total == Decimal("0.009")
    assert cost.price_version == "gpt-4o@2025-01-01+custom"
    assert cost_of(table, "gpt-4o-2024-08-06", usage).price_version == "gpt-4o@2025-01-01+custom"
    assert cost_of(table, "openai/gpt-4o", usage).total == Decimal("0.009")

    new = cost_of(table, "acme/acme-llm-1-20260101", Usage(input=1000, output=1000))
    # 1000 * 0.40 + 1000 * 1.60 = 2,000 / 1e6
    assert new.total == Decimal("0.002")
    assert new.model_id == "acme-llm-1"
    assert new.price_version == "acme-llm-1@2026-01-01+custom"

    # The rest of the built-in table is still there, unchanged and not "+custom".
    mini = cost_of(table, "gpt-4o-mini", Usage(input=1000, output=1000))
    assert mini.total == (Decimal("1000") * Decimal("0.15") + 1000 * Decimal("0.60")) / M
    assert mini.price_version == "gpt-4o-mini@2024-07-18"
    # The whole built-in gpt-4o entry is replaced, not merged.
    gpt4o = table.resolve("gpt-4o")
    assert gpt4o is not None and len(gpt4o.versions) == 1


def test_user_file_overrides_an_id_and_adds_a_model(tmp_path: Path) -> None:
    builtin = PriceTable.load()
    assert builtin.resolve("acme-llm-1") is None
    base = cost_of(builtin, "gpt-4o", Usage(input=1000, cache_read=3000, output=500))
    # built-in: 1000 * 2.50 + 3000 * 1.25 + 500 * 10 = 2,500 + 3,750 + 5,000 = 11,250 / 1e6
    assert base.total == Decimal("0.01125")
    assert base.price_version == "gpt-4o@2024-08-06"

    table = PriceTable.load([write(tmp_path, "mine.yaml", NEGOTIATED)])
    _check_negotiated(table)
    assert any(s.path == str(tmp_path / "mine.yaml") for s in table.sources)


def test_env_var_works_like_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "mine.yaml", NEGOTIATED)
    monkeypatch.setenv(PRICES_ENV_VAR, str(path))
    _check_negotiated(PriceTable.load())


def test_env_var_several_files_later_wins_and_paths_win_over_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def one(name: str, rate: str) -> Path:
        return write(
            tmp_path,
            name,
            f"""\
            models:
              - id: acme-llm-1
                prices:
                  - effective: "2026-01-01"
                    input: "{rate}"
                    output: "{rate}"
            """,
        )

    first, second, third = one("a.yaml", "1"), one("b.yaml", "2"), one("c.yaml", "3")
    monkeypatch.setenv(PRICES_ENV_VAR, os.pathsep.join([str(first), "", str(second)]))
    usage = Usage(input=1_000_000)
    assert cost_of(PriceTable.load(), "acme-llm-1", usage).total == Decimal("2")
    assert cost_of(PriceTable.load([third]), "acme-llm-1", usage).total == Decimal("3")


def test_user_regex_wins_over_builtin_regex(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "corp.yaml",
        """\
        models:
          - id: corp-claude-haiku
            provider: anthropic
            match: '^(anthropic/)?claude-haiku-4-5-\\d{8}$'
            prices:
              - effective: "2025-10-01"
                input: "0.50"
                output: "2.50"
        """,
    )
    table = PriceTable.load([path])
    entry = table.resolve("claude-haiku-4-5-20251001")
    assert entry is not None and entry.id == "corp-claude-haiku"
    entry = table.resolve("anthropic/claude-haiku-4-5-20251001")
    assert entry is not None and entry.id == "corp-claude-haiku"
    # An exact built-in id still resolves to itself; names the user regex does not cover too.
    entry = table.resolve("claude-haiku-4-5")
    assert entry is not None and entry.id == "claude-haiku-4-5"
    entry = table.resolve("us.anthropic.claude-haiku-4-5-20251001-v1:0")  # Bedrock's own
    assert entry is not None and entry.id == "anthropic.claude-haiku-4-5"


def test_missing_cache_rates_fall_back_never_free(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "plain.yaml",
        """\
        models:
          - id: plain-1
            prices:
              - effective: "2026-01-01"
                input: "2.00"
                output: "4.00"
          - id: fivemin-only
            prices:
              - effective: "2026-01-01"
                input: "2.00"
                output: "4.00"
                cache_write_5m: "2.50"
                reasoning: "6.00"
        """,
    )
    table = PriceTable.load([path], builtin=False)
    usage = Usage(
        input=10, cache_read=100, cache_write_5m=1000, cache_write_1h=10_000, output=5, reasoning=7
    )
    cost = cost_of(table, "plain-1", usage)
    # no cache or reasoning rates: every input bucket at input, reasoning at output:
    assert cost.cache_read == Decimal("100") * Decimal("2.00") / M
    assert cost.cache_write == Decimal("11000") * Decimal("2.00") / M
    assert cost.reasoning == Decimal("7") * Decimal("4.00") / M
    # (10 + 100 + 11,000) * 2.00 + (5 + 7) * 4.00 = 22,220 + 48 = 22,268 / 1e6
    assert cost.total == Decimal("0.022268")

    cost = cost_of(table, "fivemin-only", usage)
    # 1h write falls back to the 5m write rate; reasoning has its own rate.
    assert cost.cache_write == Decimal("11000") * Decimal("2.50") / M
    assert cost.reasoning == Decimal("7") * Decimal("6.00") / M
    assert cost.cache_read == Decimal("100") * Decimal("2.00") / M


def test_rates_effective_fallbacks() -> None:
    two, four = Decimal("2"), Decimal("4")
    assert Rates(two, four).effective() == (two, two, two, two, four, four)
    rates = Rates(two, four, cache_read=Decimal("0.2"), cache_write_5m=Decimal("2.5"))
    assert rates.effective() == (two, Decimal("0.2"), Decimal("2.5"), Decimal("2.5"), four, four)
    zero = Rates(two, four, cache_read=Decimal("0"))  # an explicit 0 is a real (free) rate
    assert zero.effective()[1] == 0


def test_tier_omitted_bucket_falls_back_to_base_rate(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "tiered.yaml",
        """\
        models:
          - id: tiered-1
            prices:
              - effective: "2026-01-01"
                input: "1.00"
                output: "2.00"
                cache_read: "0.10"
                tiers:
                  - above_input_tokens: 2000
                    input: "5.00"
                  - above_input_tokens: 1000
                    input: "3.00"
                    output: "6.00"
        """,
    )
    table = PriceTable.load([path], builtin=False)
    usage = Usage(input=500, cache_read=600, output=10)  # 1,100 total input: first tier
    # 500 * 3.00 + 600 * 0.10 (base cache_read) + 10 * 6.00 = 1,500 + 60 + 60 = 1,620 / 1e6
    assert cost_of(table, "tiered-1", usage).total == Decimal("0.00162")
    usage = Usage(input=1500, cache_read=600, output=10)  # 2,100: the highest tier crossed wins
    # 1500 * 5.00 + 600 * 0.10 + 10 * 2.00 (tier omits output: base) = 7,500 + 60 + 20 / 1e6
    assert cost_of(table, "tiered-1", usage).total == Decimal("0.00758")


def test_unquoted_yaml_numbers_and_dates_are_exact(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "floats.yaml",
        """\
        models:
          - id: float-1
            prices:
              - effective: 2026-01-01
                input: 0.1
                output: 3
        """,
    )
    table = PriceTable.load([path], builtin=False)
    cost = cost_of(table, "float-1", Usage(input=3, output=1))
    # 3 * 0.1 + 1 * 3 = 3.3 / 1e6, exactly (never 0.30000000000000004)
    assert cost.total == Decimal("0.0000033")
    assert cost.price_version == "float-1@2026-01-01+custom"


def test_builtin_false_has_only_user_entries(tmp_path: Path) -> None:
    table = PriceTable.load([write(tmp_path, "mine.yaml", NEGOTIATED)], builtin=False)
    assert table.resolve("gpt-4o-mini") is None
    assert table.resolve("acme-llm-1") is not None
    assert cost_of(table, "gpt-4o", Usage(input=1)).price_version.endswith("+custom")


@pytest.mark.parametrize(
    "name", ["no-such-model", "openai/no-such-model", "gpt-4o-mini-turbo-9", "gpt-4", "", None]
)
def test_unknown_model_resolves_to_none(name: str | None) -> None:
    assert PriceTable.load().resolve(name) is None


def test_builtin_price_versions_are_not_custom() -> None:
    table = PriceTable.load()
    for entry in table.models:
        assert entry.origin == "built-in"
        cost = table.cost(entry, Usage(input=1, output=1), WHEN)
        assert not cost.price_version.endswith("+custom")
        assert cost.price_version.startswith(f"{entry.id}@")


# --------------------------------------------------------------------------- invalid files


def _entry(**fields: str) -> str:
    """A one-model file for model 'acme-bad'; ``fields`` are extra lines of its first price."""
    lines = ["models:", "  - id: acme-bad", "    provider: acme"]
    if "match" in fields:
        lines.append(f"    match: {fields.pop('match')}")
    if "prices" in fields:
        lines.append(f"    prices: {fields.pop('prices')}")
    else:
        price = {"effective": '"2026-01-01"', "input": '"1.00"', "output": '"2.00"', **fields}
        lines.append("    prices:")
        first = True
        for key, value in price.items():
            if value is None:
                continue
            lines.append(f"      {'- ' if first else '  '}{key}: {value}")
            first = False
    return "\n".join(lines) + "\n"


INVALID_WITH_ID = [
    pytest.param(_entry(prices="null"), id="missing-prices"),
    pytest.param(_entry(prices="[]"), id="empty-prices"),
    pytest.param(_entry(prices='["1.00"]'), id="price-not-a-mapping"),
    pytest.param(_entry(input='"-1.00"'), id="negative-price"),
    pytest.param(_entry(output="-0.01"), id="negative-float-price"),
    pytest.param(_entry(cache_read='"abc"'), id="non-number"),
    pytest.param(_entry(cache_write_1h="[1, 2]"), id="list-price"),
    pytest.param(_entry(input='"NaN"'), id="nan-price"),
    pytest.param(_entry(output='"Infinity"'), id="infinite-price"),
    pytest.param(_entry(input="null"), id="missing-input"),
    pytest.param(_entry(output="null"), id="missing-output"),
    pytest.param(_entry(match="'gpt-(4o'"), id="bad-regex"),
    pytest.param(_entry(effective='"2026-13-45"'), id="bad-date"),
    pytest.param(_entry(effective='"yesterday"'), id="bad-date-word"),
    pytest.param(
        _entry(tiers='[{above_input_tokens: "lots", input: "2"}]'), id="bad-tier-threshold"
    ),
    pytest.param(_entry(tiers='[{input: "2"}]'), id="tier-without-threshold"),
    pytest.param(
        _entry(tiers='[{above_input_tokens: 1000, input: "-2"}]'), id="negative-tier-price"
    ),
]


@pytest.mark.parametrize("text", INVALID_WITH_ID)
def test_invalid_model_gives_config_error_with_path_and_id(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(ConfigError) as info:
        PriceTable.load([path])
    message = str(info.value)
    assert str(path) in message
    assert "acme-bad" in message
    assert isinstance(info.value, majordomo_log.MajordomoLogError)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("models: [\n  - id: x\n    prices: [", id="bad-yaml"),
        pytest.param("models:\n  - id: x\n   bad indent: 1\n", id="bad-yaml-indent"),
        pytest.param("", id="empty-file"),
        pytest.param("- id: x\n", id="top-level-list"),
        pytest.param("models: {id: x}\n", id="models-not-a-list"),
        pytest.param(
            'models:\n  - provider: acme\n    prices: [{input: "1", output: "1"}]\n',
            id="missing-id",
        ),
        pytest.param("models:\n  - just-a-string\n", id="model-not-a-mapping"),
    ],
)
def test_invalid_file_gives_config_error_with_path(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(ConfigError, match=r"bad\.yaml") as info:
        PriceTable.load([path])
    assert str(path) in str(info.value)


def test_missing_file_gives_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        PriceTable.load([missing])
    assert str(missing) in str(info.value)
    monkeypatch.setenv(PRICES_ENV_VAR, str(missing))
    with pytest.raises(ConfigError) as info:
        PriceTable.load()
    assert str(missing) in str(info.value)


def test_invalid_env_file_gives_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "bad.yaml", _entry(input='"-1"'))
    monkeypatch.setenv(PRICES_ENV_VAR, str(path))
    with pytest.raises(ConfigError) as info:
        PriceTable.load()
    assert str(path) in str(info.value) and "acme-bad" in str(info.value)


@pytest.mark.parametrize(
    "effective",
    ["2026-01-01 10:00:00", "2026-01-01T10:00:00Z"],
    ids=["yaml-datetime", "yaml-iso-datetime"],
)
def test_datetime_effective_is_rejected_or_used_as_date(tmp_path: Path, effective: str) -> None:
    # YAML reads an unquoted timestamp as a datetime. Either the loader refuses it with a
    # ConfigError naming file and model, or it prices with it as a date; it must never blow up
    # later, inside cost() (which runs in the writer, far from the file).
    text = _entry(effective=effective).replace(
        "    prices:\n",
        '    prices:\n      - effective: "2025-01-01"\n'
        '        input: "0.50"\n        output: "1.00"\n',
        1,
    )
    path = write(tmp_path, "dt.yaml", text)
    try:
        table = PriceTable.load([path], builtin=False)
    except ConfigError as exc:
        assert str(path) in str(exc) and "acme-bad" in str(exc)
        return
    cost = cost_of(table, "acme-bad", Usage(input=1_000_000), WHEN)
    assert cost.price_version == "acme-bad@2026-01-01+custom"
    assert cost.total == Decimal("1.00")


def test_plain_decimal_keeps_every_form() -> None:
    from majordomo_log.record.pricing import plain_decimal

    cases = {"0.004077000": "0.004077", "5.50": "5.5", "-120.00": "-120", "100": "100"}
    for given, expected in cases.items():
        assert str(plain_decimal(Decimal(given))) == expected
    assert plain_decimal(Decimal("NaN")).is_nan()  # a NUMERIC 'NaN' read back by a report
