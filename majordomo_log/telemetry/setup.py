"""A wrapper's telemetry, from ``LoggingLLM(opentelemetry=..., metrics=...)``.

OpenTelemetry is on when the application has configured it (a tracer provider for
spans, a meter provider for metrics) by the time the wrapper is built; or when asked for
with ``opentelemetry=True`` (the global providers, followed even if set later) or with
``ml.OpenTelemetryOptions`` (providers of the application's own, or one signal only).
Off, or with ``opentelemetry-api`` not installed, the caller's path pays one ``is None``
test per call (bench/otel_overhead.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .._exceptions import ConfigError
from .._version import __version__
from .protocols import CallObserver, CallTracing


@dataclass(frozen=True)
class OpenTelemetryOptions:
    """OpenTelemetry for a wrapper, explicitly: ``LoggingLLM(opentelemetry=...)``.

    ``tracer_provider`` / ``meter_provider``: the application's own providers (None:
    the global ones, followed through the API even if set after the wrapper is built).
    ``spans`` / ``metrics``: False turns that signal off."""

    tracer_provider: Any = None
    meter_provider: Any = None
    spans: bool = True
    metrics: bool = True


def telemetry(
    opentelemetry: bool | OpenTelemetryOptions | None,
    metrics: Iterable[CallObserver] | CallObserver,
) -> tuple[CallTracing | None, tuple[CallObserver, ...]]:
    """(spans, observers) for a wrapper's context: ``CallContext.spans``, ``.observers``."""
    if not (
        opentelemetry in (None, True, False) or isinstance(opentelemetry, OpenTelemetryOptions)
    ):
        raise ConfigError(
            "opentelemetry must be None (on when configured), True, False or "
            f"ml.OpenTelemetryOptions, got {type(opentelemetry).__name__}"
        )
    if isinstance(metrics, CallObserver):  # metrics=ml.PrometheusMetrics(): forgiven
        metrics = (metrics,)
    observers = tuple(metrics)
    for observer in observers:
        if not isinstance(observer, CallObserver):
            raise ConfigError(
                "metrics must be observers with an observe(row) method (ml.PrometheusMetrics), "
                f"got {type(observer).__name__}"
            )
    if opentelemetry is False:
        return None, observers
    try:  # both import opentelemetry-api
        from .otel_metrics import OtelMetrics
        from .otel_spans import CallSpans
    except ImportError:
        if opentelemetry is not None:
            raise ConfigError(
                'OpenTelemetry needs opentelemetry-api: pip install "majordomo-log[otel]"'
            ) from None
        return None, observers
    version = __version__
    spans = None
    if isinstance(opentelemetry, OpenTelemetryOptions):
        if opentelemetry.spans:
            spans = CallSpans(opentelemetry.tracer_provider, version)
        if opentelemetry.metrics:
            observers = (*observers, OtelMetrics(opentelemetry.meter_provider, version))
        return spans, observers
    if opentelemetry or _configured_tracing():
        spans = CallSpans(None, version)
    if opentelemetry or _configured_metrics():
        observers = (*observers, OtelMetrics(None, version))
    return spans, observers


def _configured_tracing() -> bool:
    from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider, get_tracer_provider

    return not isinstance(get_tracer_provider(), (ProxyTracerProvider, NoOpTracerProvider))


def _configured_metrics() -> bool:
    from opentelemetry.metrics import NoOpMeterProvider, get_meter_provider

    provider = get_meter_provider()
    # Until one is set, the API hands out a proxy whose class it does not export.
    return not isinstance(provider, NoOpMeterProvider) and "Proxy" not in type(provider).__name__
