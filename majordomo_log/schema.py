"""The ``llm_requests`` row: the one contract between records and stores.

``record/rows.py`` builds a :class:`Row` from a captured call; the stores in
``stores/sql/`` insert it, converting each Python type for their dialect; the spool
keeps it as a JSON array in this order. The table itself is made by the migrations in
``stores/sql/migrations/<dialect>/``, whose columns are these, in this order (a test
holds the two together).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, NamedTuple

# Widths of the text columns: an indexed VARCHAR(255) in every dialect, and the error.
MAX_TAG_CHARS = 255
MAX_ERROR_CHARS = 4000


class Row(NamedTuple):
    """One ``llm_requests`` row with Python values: aware UTC datetimes, ``Decimal``
    costs, tags as JSON text. Columns added by later migrations go last."""

    request_id: str  # UUIDv7, lower case
    started_at: dt.datetime
    ended_at: dt.datetime
    latency_ms: float
    time_to_first_token_ms: float | None
    provider: str | None
    model: str | None  # as requested
    served_model: str | None  # as the provider answered
    operation: str | None  # chat.completions, responses, embeddings, messages, a method
    stream: bool
    status: str | None  # ok, error, incomplete, blocked
    error_type: str | None
    error_message: str | None
    provider_request_id: str | None
    # Tokens in non-overlapping buckets: their sum is total_tokens.
    input_tokens: int | None
    cache_read_tokens: int | None
    cache_write_5m_tokens: int | None
    cache_write_1h_tokens: int | None
    output_tokens: int | None
    reasoning_tokens: int | None
    total_tokens: int | None
    input_cost: Decimal | None
    cache_read_cost: Decimal | None
    cache_write_cost: Decimal | None
    output_cost: Decimal | None
    reasoning_cost: Decimal | None
    total_cost: Decimal | None
    currency: str
    cost_status: str  # computed, unknown_model, missing_usage, invalid_usage, error, ...
    price_version: str | None
    usage_flags: str | None  # comma-separated
    api_key_hash: str | None
    api_key_alias: str | None
    feature: str | None
    workflow: str | None
    user_id: str | None
    session_id: str | None
    trace_id: str | None
    environment: str | None
    prompt_version: str | None
    tags: str  # JSON object
    outcome: str | None
    outcome_at: dt.datetime | None
    body_ref: str | None
    cache_savings: Decimal | None  # added by migration 0002
    # Added by migration 0003; NULL when not known. Defaults here, so that a row of an older
    # schema (a spool file written before the upgrade) still makes a Row.
    tool_call_count: int | None = None  # tool calls the model asked for
    retry_count: int | None = None  # retries the SDK made before the call's last attempt
    # Added by migration 0004_service_tier (billing variants, record/billing.py), defaults
    # as above:
    service_tier: str | None = None  # the tier whose rates priced the call; None: standard
    web_search_calls: int | None = None  # server-side web searches reported; None: none
    server_tool_cost: Decimal | None = None  # USD for server-side tools, in total_cost
    # Added by migration 0006_span_id (OpenTelemetry), default as above:
    span_id: str | None = None  # 16 lowercase hex: the call's span (telemetry/otel_spans.py)


COLUMNS: tuple[str, ...] = Row._fields
# Tags that also get a column of their own (indexed, for grouping).
PROMOTED_TAGS = (
    "feature",
    "workflow",
    "user_id",
    "session_id",
    "trace_id",
    "environment",
    "prompt_version",
    "span_id",
)
TOKEN_COLUMNS = (
    "input_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
    "total_tokens",
)
COST_COLUMNS = (
    "input_cost",
    "cache_read_cost",
    "cache_write_cost",
    "output_cost",
    "reasoning_cost",
    "total_cost",
)
MONEY_COLUMNS = frozenset(c for c in COLUMNS if c.endswith("_cost") or c == "cache_savings")

OutcomeUpdate = tuple[str, str, dt.datetime]  # (request_id, outcome, when)
Body = tuple[str, dt.datetime, bytes]  # (request_id, started_at, uncompressed JSON envelope)


# -- repricing (``record/reprice.py``): what it reads of a row, and what it writes back --

# The columns a row is priced again from (its tokens, model, time and status), and the
# ones it may change (its costs, status and price version).
REPRICE_COLUMNS: tuple[str, ...] = (
    "request_id",
    "started_at",
    "provider",
    "model",
    "served_model",
    "status",
    "cost_status",
    "price_version",
    "usage_flags",
    *TOKEN_COLUMNS,
    *COST_COLUMNS,
    "cache_savings",
    # billing variants (migration 0004): priced again with them, never rewritten
    "service_tier",
    "web_search_calls",
    "server_tool_cost",
)


class CostWindow(NamedTuple):
    """Which rows a reprice reads: ``since <= started_at < until`` (either may be None),
    and, when ``model`` is given, only rows whose ``model`` or ``served_model`` is it."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    model: str | None = None


# Where a page of rows ended: (started_at as the store returned it, request_id). Rows are
# read in (started_at, request_id) order, so a page starts after the previous page's key.
RowKey = tuple[Any, str]


class CostUpdate(NamedTuple):
    """A row's new cost columns (``COST_COLUMNS`` then ``cache_savings``), its new
    ``cost_status`` and ``price_version``, by request id."""

    request_id: str
    input_cost: Decimal | None
    cache_read_cost: Decimal | None
    cache_write_cost: Decimal | None
    output_cost: Decimal | None
    reasoning_cost: Decimal | None
    total_cost: Decimal | None
    cache_savings: Decimal | None
    cost_status: str
    price_version: str | None
