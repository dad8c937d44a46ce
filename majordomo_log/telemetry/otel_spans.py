"""A client span per call, following the OpenTelemetry GenAI conventions (extra ``[otel]``).

Opened on the caller's path when the call starts (``start``: the current span is its
parent, and the call runs with it current, so the HTTP client's own spans nest under it),
and ended off the path once the call's row is built (``end``, from
``telemetry/observer.py``) with the call's own end time: the tokens, the served model and
the cost are only known there, after the background pricing. The row stores the span's
ids (``trace_ids``), so a trace links to its row and back.

Only ``opentelemetry-api`` is imported; the application brings the SDK and configures it.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from ..record.call import CallRecord
from ..schema import MAX_TAG_CHARS, Row
from .genai import (
    REQUEST_ID_ATTRIBUTE,
    STATUS_ATTRIBUTE,
    common_attributes,
    operation_name,
    provider_name,
    span_name,
    usage_attributes,
)

_SCOPE = "majordomo_log"


class CallSpans:
    """Opens and ends the spans of one wrapper's calls (a ``CallTracing``)."""

    def __init__(self, tracer_provider: trace.TracerProvider | None, version: str) -> None:
        # None: the global provider, looked up through the API's proxy on each use, so a
        # provider set later is followed too.
        self._tracer = trace.get_tracer(_SCOPE, version, tracer_provider=tracer_provider)

    def __repr__(self) -> str:
        return f"<CallSpans {self._tracer!r}>"

    # -- the caller's path -------------------------------------------------------------

    def start(self, record: CallRecord) -> None:
        """Open the call's span under the current one and note its ids on the record."""
        model = record.model
        if model is not None and len(model) > MAX_TAG_CHARS:  # cut as the row cuts it
            model = model[: MAX_TAG_CHARS - 1] + "…"
        attributes = {
            "gen_ai.operation.name": operation_name(record.operation),
            "gen_ai.provider.name": provider_name(record.provider),
        }
        if model:
            attributes["gen_ai.request.model"] = model
        span = self._tracer.start_span(
            span_name(record.operation, model),
            kind=SpanKind.CLIENT,
            attributes=attributes,
            start_time=int(record.started_at * 1e9),
        )
        ids = span.get_span_context()
        if ids.is_valid:  # sampled or not, the row names the trace it belongs to
            record.trace_ids = (format(ids.trace_id, "032x"), format(ids.span_id, "016x"))
        record.span = span

    @staticmethod
    def enter(span: Any) -> object:
        """Make ``span`` current while the provider is called; returns the token to leave."""
        return otel_context.attach(trace.set_span_in_context(span))

    @staticmethod
    def leave(token: Any) -> None:
        otel_context.detach(token)

    # -- off the path ------------------------------------------------------------------

    def end(self, span: Any, row: Row) -> None:
        if span.is_recording():
            span.set_attributes(common_attributes(row))
            span.set_attributes(usage_attributes(row))
            span.set_attribute(REQUEST_ID_ATTRIBUTE, row.request_id)
            span.set_attribute(STATUS_ATTRIBUTE, row.status)
            if row.time_to_first_token_ms is not None:
                seconds = row.time_to_first_token_ms / 1000.0
                span.set_attribute("gen_ai.response.time_to_first_chunk", seconds)
            if row.status != "ok":
                span.set_status(Status(StatusCode.ERROR, row.error_type or row.status))
        start_ns = int(row.started_at.timestamp() * 1e9)
        span.end(end_time=start_ns + int(row.latency_ms * 1e6))

    def end_unwritten(self, span: Any, status: str) -> None:
        """A call that will have no row (dropped): its span ends now, flagged."""
        if span.is_recording():
            span.set_attribute(STATUS_ATTRIBUTE, status)
            span.set_attribute("majordomo_log.dropped", True)
            if status != "ok":
                span.set_status(Status(StatusCode.ERROR, status))
        span.end()
