"""The OpenTelemetry GenAI client metrics, recorded from each call's row (a ``CallObserver``).

``gen_ai.client.token.usage`` (tokens, per ``gen_ai.token.type``: input and output, as the
conventions count them), ``gen_ai.client.operation.duration`` (seconds) and, for streams,
``gen_ai.client.operation.time_to_first_chunk`` (seconds): histograms with the bucket
boundaries the conventions give. Plus ``majordomo_log.client.cost`` (a counter of USD,
the conventions having no cost yet). Recorded on the writer's thread, off the call.
"""

from __future__ import annotations

from opentelemetry import metrics

from ..schema import Row
from .genai import common_attributes, input_tokens, output_tokens

# The conventions' ExplicitBucketBoundaries for each histogram.
TOKEN_BUCKETS = [4**i for i in range(14)]  # 1, 4, 16 ... 67108864
DURATION_BUCKETS = [0.01 * 2**i for i in range(14)]  # 0.01, 0.02 ... 81.92
TTFC_BUCKETS = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0
]  # fmt: skip
_SCOPE = "majordomo_log"


class OtelMetrics:
    """Records each call's figures on the meters of ``meter_provider`` (None: the
    global one, followed through the API's proxy)."""

    def __init__(self, meter_provider: metrics.MeterProvider | None, version: str) -> None:
        meter = metrics.get_meter(_SCOPE, version, meter_provider=meter_provider)
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time to receive the first chunk of a streamed response.",
            explicit_bucket_boundaries_advisory=TTFC_BUCKETS,
        )
        self._cost = meter.create_counter(
            "majordomo_log.client.cost",
            unit="USD",
            description="Cost of the calls, priced from llm_config.yaml.",
        )

    def __repr__(self) -> str:
        return "<OtelMetrics>"

    def observe(self, row: Row) -> None:
        if row.status == "blocked":  # never sent: no operation to time, no tokens
            return
        attributes = common_attributes(row)
        self._duration.record(row.latency_ms / 1000.0, attributes)
        if row.stream and row.time_to_first_token_ms is not None:
            self._first_chunk.record(row.time_to_first_token_ms / 1000.0, attributes)
        used_in, used_out = input_tokens(row), output_tokens(row)
        if used_in is not None:
            self._tokens.record(used_in, {**attributes, "gen_ai.token.type": "input"})
        if used_out is not None:
            self._tokens.record(used_out, {**attributes, "gen_ai.token.type": "output"})
        if row.total_cost is not None:
            self._cost.add(float(row.total_cost), attributes)
