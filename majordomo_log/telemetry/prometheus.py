"""Prometheus metrics of the calls (extra ``[prometheus]``): ``ml.PrometheusMetrics``.

An observer of each call's row (``telemetry/observer.py``): given to wrappers as
``LoggingLLM(metrics=[ml.PrometheusMetrics()])`` it is updated by the writer, off the
call's path; ``majordomo-log serve-metrics`` feeds one from the log database instead
(``telemetry/serve.py``). The metrics, all labelled by provider, model, operation and
status, plus the tags named in ``tags``:

- ``majordomo_llm_calls_total``: calls, blocked attempts included (``status="blocked"``);
- ``majordomo_llm_tokens_total``: tokens by ``kind`` (input, cache_read, cache_write,
  output, reasoning: the row's non-overlapping buckets, so they add up);
- ``majordomo_llm_cost_usd_total``: USD of the priced calls (an unpriced call adds
  nothing here and counts in ``majordomo_llm_unpriced_calls_total``);
- ``majordomo_llm_latency_seconds`` and ``majordomo_llm_time_to_first_token_seconds``:
  histograms (streams only for the second);
- ``majordomo_llm_errors_total``: failed calls by ``error_type``.

Cardinality stays bounded: tags are labels only when named (never ``user_id`` unless
asked), and each label keeps at most ``max_label_values`` distinct values, later ones
counted under ``"__other__"`` (model names and tag values are the application's input).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from .._exceptions import ConfigError
from ..schema import PROMOTED_TAGS, Row

BASE_LABELS = ("provider", "model", "operation", "status")
TOKEN_KINDS = ("input", "cache_read", "cache_write", "output", "reasoning")
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0)
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
OTHER = "__other__"
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_COLUMN_TAGS = frozenset((*PROMOTED_TAGS, "api_key_alias"))


class PrometheusMetrics:
    """Counters and histograms of the calls, on ``registry`` (default: prometheus-client's
    global one, which ``prometheus_client.start_http_server`` serves)."""

    def __init__(
        self,
        registry: CollectorRegistry | None = REGISTRY,
        *,
        tags: Iterable[str] = (),
        max_label_values: int = 100,
        namespace: str = "majordomo_llm",
    ) -> None:
        if isinstance(tags, str):
            tags = (tags,)
        self.tags = tuple(tags)
        for name in self.tags:
            if not isinstance(name, str) or not _LABEL_NAME.match(name) or name in BASE_LABELS:
                raise ConfigError(
                    f"tags: {name!r} cannot be a label (a tag name like 'feature', not one of "
                    f"{', '.join(BASE_LABELS)})"
                )
        if len(set(self.tags)) != len(self.tags):
            raise ConfigError(f"tags: {self.tags!r} names a tag twice")
        if type(max_label_values) is not int or max_label_values < 1:
            raise ConfigError(f"max_label_values must be a positive int, got {max_label_values!r}")
        self.max_label_values = max_label_values
        labels = (*BASE_LABELS, *self.tags)
        self._from_json = tuple(t for t in self.tags if t not in _COLUMN_TAGS)
        self._seen: dict[str, set[str]] = {name: set() for name in labels}
        self._lock = threading.Lock()

        def counter(name: str, doc: str, extra: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, (*labels, *extra), namespace=namespace, registry=registry)

        def histogram(name: str, doc: str, buckets: tuple[float, ...]) -> Histogram:
            return Histogram(
                name, doc, labels, namespace=namespace, registry=registry, buckets=buckets
            )

        self.calls = counter("calls", "LLM calls logged, blocked attempts included.")
        self.tokens = counter("tokens", "Tokens by kind (non-overlapping).", ("kind",))
        self.cost = counter("cost_usd", "USD of the priced calls.")
        self.unpriced = counter("unpriced_calls", "Calls whose cost is not known.")
        self.errors = counter("errors", "Failed calls by error type.", ("error_type",))
        self.latency = histogram("latency_seconds", "Call latency.", LATENCY_BUCKETS)
        self.first_token = histogram(
            "time_to_first_token_seconds", "Time to the first chunk of streams.", TTFT_BUCKETS
        )

    def __repr__(self) -> str:
        return f"<PrometheusMetrics tags={self.tags!r}>"

    def observe(self, row: Row) -> None:
        """Count one call's row (a ``CallObserver``)."""
        values = self._label_values(row)
        self.calls.labels(*values).inc()
        if row.status == "blocked":
            return  # never sent: no latency, no tokens, no cost
        for kind, count in zip(TOKEN_KINDS, _token_counts(row), strict=True):
            if count:
                self.tokens.labels(*values, kind).inc(count)
        if row.total_cost is not None:
            self.cost.labels(*values).inc(float(row.total_cost))
        elif row.cost_status not in ("error", "incomplete"):
            self.unpriced.labels(*values).inc()
        if row.status == "error":
            error_type = self._bounded("error_type", row.error_type or "unknown")
            self.errors.labels(*values, error_type).inc()
        self.latency.labels(*values).observe(max(0.0, row.latency_ms / 1000.0))
        if row.stream and row.time_to_first_token_ms is not None:
            self.first_token.labels(*values).observe(row.time_to_first_token_ms / 1000.0)

    def _label_values(self, row: Row) -> tuple[str, ...]:
        extra: dict[str, Any] = {}
        if self._from_json:
            try:
                extra = json.loads(row.tags or "{}")
            except ValueError:
                extra = {}
        values = [
            self._bounded("provider", row.provider),
            self._bounded("model", row.model),
            self._bounded("operation", row.operation),
            self._bounded("status", row.status),
        ]
        for name in self.tags:
            value = getattr(row, name) if name in _COLUMN_TAGS else extra.get(name)
            values.append(self._bounded(name, value))
        return tuple(values)

    def _bounded(self, label: str, value: Any) -> str:
        """``value`` as label text, or ``OTHER`` once the label has its fill of values."""
        text = "" if value is None else value if isinstance(value, str) else str(value)
        seen = self._seen.setdefault(label, set())
        if text in seen:
            return text
        with self._lock:
            if len(seen) >= self.max_label_values:
                return OTHER
            seen.add(text)
        return text


def _token_counts(row: Row) -> tuple[int | None, ...]:
    written = row.cache_write_5m_tokens, row.cache_write_1h_tokens
    cache_write = None if written == (None, None) else sum(c or 0 for c in written)
    return (
        row.input_tokens,
        row.cache_read_tokens,
        cache_write,
        row.output_tokens,
        row.reasoning_tokens,
    )
