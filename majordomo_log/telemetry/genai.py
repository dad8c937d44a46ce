"""The OpenTelemetry GenAI semantic conventions' names for what a row holds.

Shared by the spans (``telemetry/otel_spans.py``) and the OpenTelemetry metrics
(``telemetry/otel_metrics.py``). The conventions count all input in
``gen_ai.usage.input_tokens`` (cache reads and writes included) and all output in
``gen_ai.usage.output_tokens`` (reasoning included), with the cache and reasoning counts
beside them; the row keeps six non-overlapping buckets (REFERENCE.md §5), so the sums are
made here. The cost has no name in the conventions yet: it goes under ``majordomo_log.``.
"""

from __future__ import annotations

from typing import Any

from ..schema import Row

# Our operation names (the SDK method's) as the conventions' gen_ai.operation.name.
OPERATIONS = {
    "chat.completions": "chat",
    "responses": "chat",
    "messages": "chat",
    "converse": "chat",
    "converse_stream": "chat",
    "invoke_model": "chat",
    "invoke_model_with_response_stream": "chat",
    "chat.complete": "chat",
    "chat.stream": "chat",
    "completion": "chat",  # LiteLLM
    "acompletion": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
    "embedding": "embeddings",
    "generate_content": "generate_content",
    "generate_content_stream": "generate_content",
}
# Our provider column as the conventions' gen_ai.provider.name (others pass as they are).
PROVIDERS = {
    "azure": "azure.ai.openai",
    "bedrock": "aws.bedrock",
    "vertex": "gcp.vertex_ai",
    "google": "gcp.gemini",
    "gemini": "gcp.gemini",
    "mistral": "mistral_ai",
    "mistralai": "mistral_ai",
    "xai": "x_ai",
}

COST_ATTRIBUTE = "majordomo_log.cost.usd"
COST_STATUS_ATTRIBUTE = "majordomo_log.cost_status"
REQUEST_ID_ATTRIBUTE = "majordomo_log.request_id"
STATUS_ATTRIBUTE = "majordomo_log.status"


def operation_name(operation: str | None) -> str:
    return OPERATIONS.get(operation or "", operation or "unknown")


def provider_name(provider: str | None) -> str:
    return PROVIDERS.get(provider or "", provider or "unknown")


def span_name(operation: str | None, model: str | None) -> str:
    """``{gen_ai.operation.name} {gen_ai.request.model}``, as the conventions name spans."""
    name = operation_name(operation)
    return f"{name} {model}" if model else name


def input_tokens(row: Row) -> int | None:
    """All input, cached included (the conventions' meaning); None when unknown."""
    counts = (row.input_tokens, row.cache_read_tokens, row.cache_write_5m_tokens)
    if all(c is None for c in counts):
        return None
    return sum(c or 0 for c in (*counts, row.cache_write_1h_tokens))


def output_tokens(row: Row) -> int | None:
    """All output, reasoning included; None when unknown."""
    if row.output_tokens is None and row.reasoning_tokens is None:
        return None
    return (row.output_tokens or 0) + (row.reasoning_tokens or 0)


def common_attributes(row: Row) -> dict[str, Any]:
    """The attributes spans and metrics share: operation, provider, models, error."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation_name(row.operation),
        "gen_ai.provider.name": provider_name(row.provider),
    }
    if row.model:
        attributes["gen_ai.request.model"] = row.model
    if row.served_model:
        attributes["gen_ai.response.model"] = row.served_model
    if row.status != "ok":
        attributes["error.type"] = row.error_type or row.status
    return attributes


def usage_attributes(row: Row) -> dict[str, Any]:
    """The span's token counts and cost (only those known: an unknown count is left
    out, never zero)."""
    attributes: dict[str, Any] = {}
    total_in, total_out = input_tokens(row), output_tokens(row)
    if total_in is not None:
        attributes["gen_ai.usage.input_tokens"] = total_in
    if total_out is not None:
        attributes["gen_ai.usage.output_tokens"] = total_out
    if row.cache_read_tokens is not None:
        attributes["gen_ai.usage.cache_read.input_tokens"] = row.cache_read_tokens
    written = (row.cache_write_5m_tokens, row.cache_write_1h_tokens)
    if any(c is not None for c in written):
        attributes["gen_ai.usage.cache_creation.input_tokens"] = sum(c or 0 for c in written)
    if row.reasoning_tokens is not None:
        attributes["gen_ai.usage.reasoning.output_tokens"] = row.reasoning_tokens
    if row.total_cost is not None:
        attributes[COST_ATTRIBUTE] = float(row.total_cost)
    attributes[COST_STATUS_ATTRIBUTE] = row.cost_status
    return attributes
