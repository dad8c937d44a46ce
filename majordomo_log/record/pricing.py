"""Prices from ``llm_config.yaml`` and exact costs from normalized usage.

The built-in table ships inside the package; users merge their own files over
it (``PriceTable.load(paths)`` or ``MAJORDOMO_LOG_PRICES=a.yaml:b.yaml``). A
user entry with the same id replaces the built-in entry whole, and user entries
are matched before built-in ones, so a negotiated rate always wins.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .._exceptions import ConfigError
from .price_extras import EXTRA_PRICE_KEYS, VersionExtras, parse_extras
from .prices_compiled import CompiledRates, amounts, compile_rates
from .rates import Rates as Rates  # the rate types' public home is here too
from .rates import Tier as Tier
from .usage import MAX_SANE_TOKENS, Usage

PRICES_ENV_VAR = "MAJORDOMO_LOG_PRICES"
_MILLION = Decimal(1_000_000)
_ONE = Decimal(1)
_ZERO = Decimal(0)
_TEN = Decimal(10)
_RATE_FIELDS = ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h", "reasoning")


@dataclass(frozen=True, slots=True)
class PriceVersion:
    effective: dt.date
    rates: Rates
    tiers: tuple[Tier, ...] = ()
    # service tiers, tool fees, audio rates (record/price_extras.py); None: it has none
    extras: VersionExtras | None = None


@dataclass(frozen=True, slots=True)
class ModelPrice:
    id: str
    provider: str
    versions: tuple[PriceVersion, ...]  # newest first
    pattern: re.Pattern[str] | None = None
    origin: str = "built-in"

    def version_at(self, when: dt.datetime) -> PriceVersion:
        """The price in force on the call's UTC date (a naive datetime is taken as UTC)."""
        day = (when.astimezone(dt.timezone.utc) if when.tzinfo else when).date()
        for version in self.versions:
            if version.effective <= day:
                return version
        return self.versions[-1]  # a call older than the oldest known price


@dataclass(frozen=True, slots=True)
class Cost:
    """The cost of one call, per bucket, in USD."""

    input: Decimal
    cache_read: Decimal
    cache_write: Decimal
    output: Decimal
    reasoning: Decimal
    total: Decimal
    model_id: str
    price_version: str
    # What the cached tokens would have cost as plain input, minus what reading and
    # writing the cache cost: negative when cache writes were not paid back by reads.
    cache_savings: Decimal = Decimal(0)
    # The service tier whose rates priced the call (record/billing.py); None: standard.
    service_tier: str | None = None
    # USD for server-side tools (web search), included in total; None: none billed.
    server_tool_cost: Decimal | None = None


@dataclass(frozen=True, slots=True)
class PriceSource:
    path: str
    source: str
    checked: str


class PriceTable:
    """Model prices, looked up by the model name a call used or was served."""

    def __init__(self, models: Sequence[ModelPrice], sources: Sequence[PriceSource] = ()) -> None:
        self.models: tuple[ModelPrice, ...] = tuple(models)
        self.sources: tuple[PriceSource, ...] = tuple(sources)
        self._by_id = {m.id: m for m in self.models}
        self._resolved: dict[str, ModelPrice | None] = {}
        # (id(entry), UTC day ordinal) -> that day's price; (id(entry), id(version)) -> it
        self._compiled: dict[tuple[int, int], _CompiledVersion] = {}
        self._compiled_versions: dict[tuple[int, int], _CompiledVersion] = {}

    @classmethod
    def load(
        cls, paths: Iterable[str | os.PathLike[str]] | None = None, *, builtin: bool = True
    ) -> PriceTable:
        """The built-in table, then each file in ``MAJORDOMO_LOG_PRICES``, then ``paths``;
        later files override earlier ones by model id."""
        files: list[Path] = [builtin_config_path()] if builtin else []
        env = os.environ.get(PRICES_ENV_VAR, "")
        files += [Path(p) for p in env.split(os.pathsep) if p]
        files += [Path(p) for p in paths or ()]
        merged: dict[str, tuple[int, ModelPrice]] = {}
        sources: list[PriceSource] = []
        for index, path in enumerate(files):
            origin = "built-in" if builtin and index == 0 else str(path)
            models, source = _parse_file(path, origin)
            sources.append(source)
            for m in models:
                merged[m.id] = (index, m)
        # Regexes are tried in this order: the last file's entries first, so that a
        # user's entry wins over a built-in one that matches the same name.
        ordered = sorted(merged.values(), key=lambda pair: -pair[0])
        return cls([m for _, m in ordered], sources)

    def resolve(self, model: str | None) -> ModelPrice | None:
        """The price entry for a model name, by exact id then by ``match`` regex."""
        if not model:
            return None
        try:
            return self._resolved[model]
        except KeyError:
            pass
        found = self._resolve_uncached(model)
        if len(self._resolved) < 10_000:  # a caller inventing names must not grow this forever
            self._resolved[model] = found
        return found

    def _resolve_uncached(self, model: str) -> ModelPrice | None:
        name = model.strip().lower()
        candidates = [name]
        if "/" in name:  # "openai/gpt-4o", "models/gemini-2.5-pro"
            candidates.append(name.rsplit("/", 1)[1])
        for candidate in candidates:
            if candidate in self._by_id:
                return self._by_id[candidate]
        for entry in self.models:
            if entry.pattern is not None and entry.pattern.fullmatch(name):
                return entry
        return None

    def cost(self, entry: ModelPrice, usage: Usage, when: dt.datetime) -> Cost:
        """Price each bucket once; a long-context tier reprices the whole request."""
        day = (when.astimezone(dt.timezone.utc) if when.tzinfo else when).date()
        return self._cost_on(entry, usage, day.toordinal())

    def cost_at(self, entry: ModelPrice, usage: Usage, timestamp: float) -> Cost:
        """``cost()`` of a call that started at a POSIX timestamp (``time.time()``)."""
        if type(self).cost is not PriceTable.cost:  # a subclass that prices its own way
            return self.cost(entry, usage, dt.datetime.fromtimestamp(timestamp, dt.timezone.utc))
        # The UTC day straight from the number, where fromtimestamp() cannot round it
        # into the next day (it rounds to the microsecond); a datetime only near midnight.
        if type(timestamp) is float and 0.0 <= timestamp < _YEAR_2100:
            seconds = timestamp % 86400.0
            if 0.001 < seconds < 86399.999:
                return self._cost_on(entry, usage, _EPOCH_ORDINAL + int(timestamp // 86400.0))
        return self.cost(entry, usage, dt.datetime.fromtimestamp(timestamp, dt.timezone.utc))

    def total_units(self, entry: ModelPrice, usage: Usage, timestamp: float) -> int | None:
        """The total of ``cost_at`` in units of 1e-10 USD, as an int, without building the
        Cost: what a budget adds on the caller's path (``budgets/guard.py``). Exactly
        ``cost_at(...).total`` where it answers; None where only that path can price
        (a subclass, a rate with more than 4 decimal places or out of bounds, flagged
        counts, a call started within a millisecond of UTC midnight)."""
        if type(self).cost is not PriceTable.cost or usage.flags:
            return None
        if not (type(timestamp) is float and 0.0 <= timestamp < _YEAR_2100):
            return None
        seconds = timestamp % 86400.0
        if not 0.001 < seconds < 86399.999:
            return None
        day = _EPOCH_ORDINAL + int(timestamp // 86400.0)
        compiled = self._compiled.get((id(entry), day))
        if compiled is None or compiled.entry is not entry:
            compiled = self._compile(entry, day)
        rates = compiled.rates
        if rates is None:
            return None
        inp, read, w5, w1 = (
            usage.input,
            usage.cache_read,
            usage.cache_write_5m,
            usage.cache_write_1h,
        )
        total_input = inp + read + w5 + w1
        for threshold, tier_rates in compiled.tiers:
            if total_input > threshold:
                rates = tier_rates
        if rates.divisor != 1:  # rounded per bucket by amounts(): leave it to cost_at
            return None
        return (
            inp * rates.input
            + read * rates.cache_read
            + w5 * rates.write_5m
            + w1 * rates.write_1h
            + usage.output * rates.output
            + usage.reasoning * rates.reasoning
        )

    def _cost_on(self, entry: ModelPrice, usage: Usage, day: int) -> Cost:
        compiled = self._compiled.get((id(entry), day))
        if compiled is None or compiled.entry is not entry:  # an id reused by a new entry
            compiled = self._compile(entry, day)
        inp, read, w5, w1 = (
            usage.input,
            usage.cache_read,
            usage.cache_write_5m,
            usage.cache_write_1h,
        )
        out, reasoning = usage.output, usage.reasoning
        rates = compiled.rates
        if (
            rates is None  # a rate outside the integer path's bounds
            # counts as normalization makes them (a Usage given here may hold anything)
            or not (
                type(inp) is int
                and type(read) is int
                and type(w5) is int
                and type(w1) is int
                and type(out) is int
                and type(reasoning) is int
                # compared one by one: min() and max() cost more than the pricing
                and 0 <= inp <= MAX_SANE_TOKENS
                and 0 <= read <= MAX_SANE_TOKENS
                and 0 <= w5 <= MAX_SANE_TOKENS
                and 0 <= w1 <= MAX_SANE_TOKENS
                and 0 <= out <= MAX_SANE_TOKENS
                and 0 <= reasoning <= MAX_SANE_TOKENS
            )
        ):
            return _decimal_cost(entry, compiled.version, usage)
        total_input = inp + read + w5 + w1
        for threshold, tier_rates in compiled.tiers:  # ascending: the highest crossed applies
            if total_input > threshold:
                rates = tier_rates
        c_in, c_read, c_write, c_out, c_reason, total, savings = amounts(
            rates, inp, read, w5, w1, out, reasoning
        )
        cost: Cost = _new_cost(Cost)
        s_in, s_read, s_write, s_out, s_reason, s_total, s_id, s_version, s_savings = _COST_SLOTS
        s_tier, s_tool = _VARIANT_SLOTS  # a standard call: None, None
        s_in(cost, c_in)
        s_read(cost, c_read)
        s_write(cost, c_write)
        s_out(cost, c_out)
        s_reason(cost, c_reason)
        s_total(cost, total)
        s_id(cost, entry.id)
        s_version(cost, compiled.price_version)
        s_savings(cost, savings)
        s_tier(cost, None)
        s_tool(cost, None)
        return cost

    def _compile(self, entry: ModelPrice, day: int) -> _CompiledVersion:
        version = entry.version_at(dt.datetime.combine(dt.date.fromordinal(day), dt.time()))
        key = (id(entry), id(version))
        compiled = self._compiled_versions.get(key)
        if compiled is None or compiled.version is not version:
            compiled = _CompiledVersion(entry, version)
            if len(self._compiled_versions) >= _MAX_COMPILED:
                self._compiled_versions.clear()
            self._compiled_versions[key] = compiled
        if len(self._compiled) >= _MAX_COMPILED:  # one per model and day: years of a service
            self._compiled.clear()
        self._compiled[(id(entry), day)] = compiled
        return compiled


class _CompiledVersion:
    """One price version of one entry, ready for ``bucket_units``: the compiled rates are
    None when a rate is outside the integer path's bounds (``prices_compiled.py``)."""

    __slots__ = ("entry", "price_version", "rates", "tiers", "version")

    def __init__(self, entry: ModelPrice, version: PriceVersion) -> None:
        self.entry = entry
        self.version = version
        suffix = "" if entry.origin == "built-in" else "+custom"
        self.price_version = f"{entry.id}@{version.effective.isoformat()}{suffix}"
        base = compile_rates(version.rates.effective())
        tiers = [(t.above_input_tokens, compile_rates(t.rates.effective())) for t in version.tiers]
        exact = base is not None and all(rates is not None for _, rates in tiers)
        self.rates = base if exact else None
        self.tiers: tuple[tuple[int, CompiledRates], ...] = tuple(
            (threshold, rates) for threshold, rates in tiers if rates is not None
        )


_MAX_COMPILED = 4096
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_YEAR_2100 = 4_102_444_800.0
_new_cost = object.__new__
# Cost is frozen: its slots are filled through their descriptors, as the dataclass's own
# __init__ does through object.__setattr__, for a third of the cost.
_COST_SLOTS = tuple(
    Cost.__dict__[name].__set__
    for name in (
        "input",
        "cache_read",
        "cache_write",
        "output",
        "reasoning",
        "total",
        "model_id",
        "price_version",
        "cache_savings",
    )
)
_VARIANT_SLOTS = tuple(Cost.__dict__[name].__set__ for name in ("service_tier", "server_tool_cost"))


def _decimal_cost(entry: ModelPrice, version: PriceVersion, usage: Usage) -> Cost:
    """The cost in Decimal arithmetic: for rates and counts outside the integer path's
    bounds (which gives the same amounts within them)."""
    rates = version.rates
    for tier in version.tiers:  # ascending thresholds: the highest one crossed applies
        if usage.total_input > tier.above_input_tokens:
            rates = tier.rates
    r_in, r_read, r_w5, r_w1, r_out, r_reason = rates.effective()
    c_in = _cents(usage.input * r_in)
    c_read = _cents(usage.cache_read * r_read)
    c_write = _cents(usage.cache_write_5m * r_w5 + usage.cache_write_1h * r_w1)
    c_out = _cents(usage.output * r_out)
    c_reason = _cents(usage.reasoning * r_reason)
    cached = usage.cache_read + usage.cache_write_5m + usage.cache_write_1h
    savings = _cents(cached * r_in) - c_read - c_write
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


COST_PLACES = Decimal("1e-10")  # the scale of every cost column (NUMERIC(20,10))


def _cents(tokens_times_rate: Decimal) -> Decimal:
    """USD for (tokens x USD per 1M tokens), to the 10 decimal places every store keeps,
    so a cost reads back identically from SQLite, PostgreSQL and MySQL."""
    if not tokens_times_rate:  # most buckets of most calls are empty
        return _ZERO
    return plain_decimal((tokens_times_rate / _MILLION).quantize(COST_PLACES))


def plain_decimal(value: Decimal) -> Decimal:
    """Without trailing zeros, so one amount looks the same from every store
    (PostgreSQL returns 0.0040770000, SQLite 0.004077)."""
    trimmed = value.normalize()
    if trimmed.is_finite() and -_TEN < trimmed < _TEN:  # the common case, no as_tuple()
        return trimmed
    exponent = trimmed.as_tuple().exponent
    # normalize() writes whole dollars as 1E+2: keep those as plain integers
    return trimmed.quantize(_ONE) if isinstance(exponent, int) and exponent > 0 else trimmed


def builtin_config_path() -> Path:
    """``llm_config.yaml`` inside the installed wheel, or at the repository root when
    running from a source checkout (the root file is the single source of truth)."""
    packaged = resources.files("majordomo_log").joinpath("llm_config.yaml")
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "llm_config.yaml"


def _parse_file(path: Path, origin: str) -> tuple[list[ModelPrice], PriceSource]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read price file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"price file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, Mapping) or not isinstance(data.get("models"), list):
        raise ConfigError(f"price file {path} must be a mapping with a 'models' list")
    models = [_parse_model(path, origin, raw) for raw in data["models"]]
    source = PriceSource(str(path), str(data.get("source", "")), str(data.get("checked", "")))
    return models, source


def _parse_model(path: Path, origin: str, raw: Any) -> ModelPrice:
    if not isinstance(raw, Mapping) or not raw.get("id"):
        raise ConfigError(f"{path}: every model needs an 'id' (got {raw!r:.80})")
    model_id = str(raw["id"]).lower()
    where = f"{path}: model {model_id!r}"
    prices = raw.get("prices")
    if not isinstance(prices, list) or not prices:
        raise ConfigError(f"{where}: 'prices' must be a non-empty list")
    versions = sorted(
        (_parse_version(where, p) for p in prices), key=lambda v: v.effective, reverse=True
    )
    pattern = None
    if raw.get("match"):
        try:
            pattern = re.compile(str(raw["match"]), re.IGNORECASE)
        except re.error as exc:
            raise ConfigError(f"{where}: bad 'match' regex: {exc}") from exc
    return ModelPrice(model_id, str(raw.get("provider", "")), tuple(versions), pattern, origin)


def _parse_version(where: str, raw: Any) -> PriceVersion:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: each price must be a mapping")
    effective = raw.get("effective", "1970-01-01")
    if isinstance(effective, dt.datetime):  # YAML reads an unquoted timestamp as datetime
        raise ConfigError(f"{where}: 'effective' must be a date (YYYY-MM-DD), got {effective}")
    try:
        day = effective if isinstance(effective, dt.date) else dt.date.fromisoformat(str(effective))
    except ValueError as exc:
        raise ConfigError(f"{where}: bad 'effective' date {effective!r}") from exc
    base = _parse_rates(where, raw, None)
    tiers = []
    for tier in raw.get("tiers") or ():
        try:
            threshold = int(tier["above_input_tokens"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: each tier needs an integer 'above_input_tokens'") from exc
        tiers.append(Tier(threshold, _parse_rates(where, tier, base)))
    tiers.sort(key=lambda t: t.above_input_tokens)
    extras = None
    if any(raw.get(key) is not None for key in EXTRA_PRICE_KEYS):
        extras = parse_extras(where, raw, base, tuple(tiers))
    return PriceVersion(day, base, tuple(tiers), extras)


def _parse_rates(where: str, raw: Mapping[str, Any], base: Rates | None) -> Rates:
    values: dict[str, Decimal | None] = {}
    for name in _RATE_FIELDS:
        value = raw.get(name)
        if value is None:
            values[name] = getattr(base, name) if base is not None else None
            continue
        try:
            rate = Decimal(str(value))
        except InvalidOperation as exc:
            raise ConfigError(f"{where}: {name} price {value!r} is not a number") from exc
        if not rate.is_finite() or rate < 0:
            raise ConfigError(f"{where}: {name} price {value!r} must be a finite number >= 0")
        values[name] = rate
    if values["input"] is None or values["output"] is None:
        raise ConfigError(f"{where}: 'input' and 'output' prices are required")
    return Rates(**values)  # type: ignore[arg-type]


Prices = PriceTable | str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None
_default_prices: PriceTable | None = None


def default_prices() -> PriceTable:
    """The built-in table merged with ``MAJORDOMO_LOG_PRICES``, loaded once."""
    global _default_prices
    if _default_prices is None:
        _default_prices = PriceTable.load()
    return _default_prices


def price_table(prices: Prices) -> PriceTable:
    """A wrapper's ``prices=``: a table, a price file, several, or None for the defaults."""
    if prices is None:
        return default_prices()
    if isinstance(prices, PriceTable):
        return prices
    if isinstance(prices, (str, os.PathLike)):
        return PriceTable.load([prices])
    return PriceTable.load(prices)
