"""ml.PrometheusMetrics: counters and histograms on a registry, updated by the writer,
compared with the rows the same calls wrote."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import openai
import pytest
from prometheus_client import CollectorRegistry
from sample_rows import sample_row

import majordomo_log as ml
from majordomo_log.testing import FakeProvider, fake_openai_client

MESSAGES: Any = [{"role": "user", "content": "hi"}]


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """The sum of a sample over every series matching ``labels``."""
    total = 0.0
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


async def test_counters_and_histograms_are_the_rows(provider: FakeProvider, stores: Any) -> None:
    registry = CollectorRegistry()
    metrics = ml.PrometheusMetrics(registry, tags=["feature"])
    llm = ml.LoggingLLM(
        fake_openai_client(provider, max_retries=0), stores.db, stores.storage, metrics=[metrics]
    )
    with ml.tags(feature="search", user_id="u1"):
        for _ in range(3):
            await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    with ml.tags(feature="chat"):
        stream = await llm.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True
        )
        async for _ in stream:
            pass
        provider.fail_next(400, message="bad")
        with pytest.raises(openai.BadRequestError):
            await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    await llm.close()
    rows = stores.rows()
    assert value(registry, "majordomo_llm_calls_total") == len(rows) == 5
    assert value(registry, "majordomo_llm_calls_total", feature="search", model="gpt-4o") == 3
    assert value(registry, "majordomo_llm_calls_total", status="error") == 1
    assert value(registry, "majordomo_llm_errors_total", error_type="BadRequestError") == 1
    for kind, column in (
        ("input", "input_tokens"),
        ("cache_read", "cache_read_tokens"),
        ("output", "output_tokens"),
        ("reasoning", "reasoning_tokens"),
    ):
        expected = sum(r[column] or 0 for r in rows)
        assert value(registry, "majordomo_llm_tokens_total", kind=kind) == expected, kind
    cost = sum(Decimal(str(r["total_cost"])) for r in rows if r["total_cost"] is not None)
    assert value(registry, "majordomo_llm_cost_usd_total") == pytest.approx(float(cost))
    latency = sum(r["latency_ms"] for r in rows) / 1000
    assert value(registry, "majordomo_llm_latency_seconds_sum") == pytest.approx(latency)
    assert value(registry, "majordomo_llm_latency_seconds_count") == 5
    [streamed] = [r for r in rows if r["stream"]]
    first = value(registry, "majordomo_llm_time_to_first_token_seconds_sum", feature="chat")
    assert first == pytest.approx(streamed["time_to_first_token_ms"] / 1000)
    # user_id was not named: it is no label, so its values make no series.
    labels = {k for m in registry.collect() for s in m.samples for k in s.labels}
    assert "user_id" not in labels and "feature" in labels


def test_each_label_keeps_a_bounded_number_of_values() -> None:
    registry = CollectorRegistry()
    metrics = ml.PrometheusMetrics(registry, max_label_values=3)
    for i in range(10):
        metrics.observe(sample_row(model=f"model-{i}"))
    series = {
        s.labels["model"]
        for m in registry.collect()
        for s in m.samples
        if s.name == "majordomo_llm_calls_total"
    }
    assert series == {"model-0", "model-1", "model-2", "__other__"}
    assert value(registry, "majordomo_llm_calls_total", model="__other__") == 7


def test_label_values_are_cut_and_json_for_non_text() -> None:
    registry = CollectorRegistry()
    metrics = ml.PrometheusMetrics(registry, tags=["tenant", "tier"])
    metrics.observe(sample_row(tags='{"tenant": "%s", "tier": {"a": 1}}' % ("t" * 65_536)))
    labels = [
        s.labels
        for m in registry.collect()
        for s in m.samples
        if s.name == "majordomo_llm_calls_total"
    ]
    [one] = labels
    assert len(one["tenant"]) == 128 and one["tenant"].endswith("…")
    assert one["tier"] == '{"a":1}'


def test_a_blocked_attempt_counts_as_a_call_only() -> None:
    registry = CollectorRegistry()
    metrics = ml.PrometheusMetrics(registry)
    metrics.observe(sample_row(status="blocked", total_cost=None, cost_status="blocked"))
    assert value(registry, "majordomo_llm_calls_total", status="blocked") == 1
    assert value(registry, "majordomo_llm_latency_seconds_count") == 0
    assert value(registry, "majordomo_llm_unpriced_calls_total") == 0


def test_an_unpriced_call_is_counted_apart_never_as_zero_dollars() -> None:
    registry = CollectorRegistry()
    metrics = ml.PrometheusMetrics(registry)
    metrics.observe(sample_row(total_cost=None, cost_status="unknown_model"))
    assert value(registry, "majordomo_llm_unpriced_calls_total") == 1
    assert value(registry, "majordomo_llm_cost_usd_total") == 0


def test_tags_outside_columns_come_from_the_json() -> None:
    registry = CollectorRegistry()
    metrics = ml.PrometheusMetrics(registry, tags=("team",))
    metrics.observe(sample_row(tags='{"team": "growth"}'))
    metrics.observe(sample_row(tags="not json"))  # a value it cannot read: an empty label
    assert value(registry, "majordomo_llm_calls_total", team="growth") == 1
    assert value(registry, "majordomo_llm_calls_total", team="") == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tags": ["bad-name"]}, "cannot be a label"),
        ({"tags": ["model"]}, "cannot be a label"),
        ({"tags": ["feature", "feature"]}, "twice"),
        ({"max_label_values": 0}, "max_label_values"),
    ],
)
def test_bad_options_are_config_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ml.ConfigError, match=message):
        ml.PrometheusMetrics(CollectorRegistry(), **options)


async def test_an_observer_that_fails_costs_only_its_figures(
    provider: FakeProvider, stores: Any
) -> None:
    class Broken:
        def observe(self, row: Any) -> None:
            raise RuntimeError("boom")

    registry = CollectorRegistry()
    good = ml.PrometheusMetrics(registry)
    llm = ml.LoggingLLM(
        fake_openai_client(provider), stores.db, stores.storage, metrics=[Broken(), good]
    )
    for _ in range(3):
        await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    stats = await llm.close()
    assert stats.written == 3 and len(stores.rows()) == 3
    assert value(registry, "majordomo_llm_calls_total") == 3
