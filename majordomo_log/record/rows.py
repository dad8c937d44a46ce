"""A record becomes its ``llm_requests`` row (``build_row``), or, when that fails, a
row salvaged from the few values the library made itself (``salvage_row``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from ..schema import (
    COLUMNS,
    COST_COLUMNS,
    MAX_ERROR_CHARS,
    MAX_TAG_CHARS,
    PROMOTED_TAGS,
    TOKEN_COLUMNS,
    Row,
)
from .call import STATUSES, CallRecord
from .redact import scrub, scrub_text
from .usage import Usage
from .values import clean_text, hash_value, safe_text, storable_mapping, value_text

if TYPE_CHECKING:
    from .pricing import Cost


def _scrubbed(value: Any, secrets: tuple[bytes, ...]) -> str | None:
    """Text the provider (or an exception) handed over, through the secret rules."""
    return None if value is None else scrub_text(safe_text(value), secrets)


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc)


def _clip(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    if type(value) is str and value.isascii() and "\x00" not in value and len(value) <= limit:
        return value  # what clean_text would return: skip its calls (17 columns per row)
    text = safe_text(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _small_count(value: Any) -> int | None:
    """A count for an INTEGER column (32 bits on the servers); anything else is unknown."""
    return value if type(value) is int and 0 <= value < 2**31 else None


def token_values(usage: Usage | None) -> dict[str, Any]:
    """The ``TOKEN_COLUMNS`` of a usage (NULLs without usage, or when it could not be read:
    unknown, not zero)."""
    if usage is None or "unreadable_usage" in usage.flags:
        return dict.fromkeys(TOKEN_COLUMNS)
    counts = (
        usage.input,
        usage.cache_read,
        usage.cache_write_5m,
        usage.cache_write_1h,
        usage.output,
        usage.reasoning,
        usage.total,
    )
    return dict(zip(TOKEN_COLUMNS, counts, strict=True))


def cost_values(cost: Cost | None) -> dict[str, Any]:
    """The ``COST_COLUMNS`` of a cost (NULLs when the cost is unknown)."""
    if cost is None:
        return dict.fromkeys(COST_COLUMNS)
    amounts = (
        cost.input,
        cost.cache_read,
        cost.cache_write,
        cost.output,
        cost.reasoning,
        cost.total,
    )
    return dict(zip(COST_COLUMNS, amounts, strict=True))


def _promoted_columns(tags: dict[str, Any], trace_ids: tuple[str, str] | None) -> dict[str, Any]:
    """The tags that also have a column of their own (``PROMOTED_TAGS``), as text; the
    call's OpenTelemetry span fills trace_id and span_id unless a tag names either (an
    explicit tag wins, and a span id beside someone else's trace id would mislead)."""
    columns = {name: _clip(value_text(tags.get(name)), MAX_TAG_CHARS) for name in PROMOTED_TAGS}
    if trace_ids is not None and columns["trace_id"] is None and columns["span_id"] is None:
        columns["trace_id"], columns["span_id"] = trace_ids
    return columns


def merged_tags(record: CallRecord) -> dict[str, Any]:
    """The wrapper's tags under the call's ``ml.tags()``, as storable values (see
    ``record/values.py``), with the ``hash_tags`` replaced by their HMAC."""
    ctx = record.ctx
    tags = dict(ctx.tags)  # made storable once, when the wrapper was built
    if record.context_tags:
        tags.update(storable_mapping(record.context_tags))
    for name in ctx.hash_tags:
        value = tags.get(name)
        if value is not None:
            tags[name] = hash_value(value, ctx.tag_secret)
    return tags


def build_row(record: CallRecord, body_ref: str | None) -> Row:
    """The ``llm_requests`` row for a record, in ``COLUMNS`` order, with Python types
    (aware UTC datetimes, Decimal costs, tags as JSON text): adapters convert per dialect."""
    usage, cost, cost_status = record.priced()
    latency = record.elapsed_ms(record.t_end) or 0.0
    tags = merged_tags(record)
    # Tags pass the same secret rules as bodies ({"db_password": "..."}, a key's shape),
    # over their JSON in one pass; the text is read back only when something was found.
    tags_json = orjson.dumps(tags)
    scrubbed = scrub(tags_json, record.ctx.secrets)
    if scrubbed != tags_json:
        tags_json, tags = scrubbed, orjson.loads(scrubbed)
    error_message = record.error_message
    if error_message is not None:
        error_message = scrub_text(error_message, record.ctx.secrets)
    flags = (*(usage.flags if usage is not None else ()), *record.body_flags)
    secrets = record.ctx.secrets
    return Row(
        request_id=record.request_id,
        started_at=_utc(record.started_at),
        ended_at=_utc(record.started_at + latency / 1000.0),
        latency_ms=latency,
        time_to_first_token_ms=record.elapsed_ms(record.t_first),
        provider=_clip(record.provider, MAX_TAG_CHARS),
        model=_clip(record.model, MAX_TAG_CHARS),
        served_model=_clip(record.served_model, MAX_TAG_CHARS),
        operation=_clip(record.operation, MAX_TAG_CHARS),
        stream=record.stream,
        status=_clip(record.status, MAX_TAG_CHARS),
        error_type=_clip(record.error_type, MAX_TAG_CHARS),
        error_message=_clip(error_message, MAX_ERROR_CHARS),
        provider_request_id=_clip(_scrubbed(record.provider_request_id, secrets), MAX_TAG_CHARS),
        **token_values(usage),
        **cost_values(cost),
        currency="USD",
        cost_status=cost_status,
        price_version=None if cost is None else cost.price_version,
        usage_flags=",".join(flags) if flags else None,
        api_key_hash=_clip(record.api_key_hash, MAX_TAG_CHARS),
        api_key_alias=_clip(record.ctx.api_key_alias, MAX_TAG_CHARS),
        **_promoted_columns(tags, record.trace_ids),
        tags=tags_json.decode(),
        outcome=None if record.outcome is None else record.outcome[0],
        outcome_at=None if record.outcome is None else record.outcome[1],
        body_ref=body_ref,
        cache_savings=None if cost is None else cost.cache_savings,
        tool_call_count=_small_count(record.tool_call_count),
        retry_count=_small_count(record.retry_count),
        **billing_values(record, cost),
    )


def billing_values(record: CallRecord, cost: Cost | None) -> dict[str, Any]:
    """The billing-variant columns (migration 0004): the tier that priced the call, the web
    searches reported, the server-side tool fee (NULL each when there is none)."""
    billing = record.billing  # read when the record was priced
    return {
        "service_tier": None if cost is None else _clip(cost.service_tier, MAX_TAG_CHARS),
        "web_search_calls": (billing.web_search_calls or None) if billing is not None else None,
        "server_tool_cost": None if cost is None else cost.server_tool_cost,
    }


def salvage_row(record: CallRecord, body_ref: str | None) -> Row:
    """A row for a record whose ``build_row`` failed, from the few values the library
    made itself, so that the record can be kept in the spool's rejected/ folder for a
    person to look at (a bug here, not a bad value: those are made storable). Never
    raises: each value that cannot be read is NULL."""
    values: dict[str, Any] = dict.fromkeys(COLUMNS)
    started = _salvaged(lambda: _utc(float(record.started_at)))
    values.update(
        request_id=_salvaged(lambda: clean_text(record.request_id)) or "unknown",
        started_at=started or dt.datetime.now(dt.timezone.utc),
        ended_at=started or dt.datetime.now(dt.timezone.utc),
        latency_ms=0.0,
        provider=_salvaged(lambda: _clip(record.provider, MAX_TAG_CHARS)),
        model=_salvaged(lambda: _clip(record.model, MAX_TAG_CHARS)),
        operation=_salvaged(lambda: _clip(record.operation, MAX_TAG_CHARS)),
        stream=record.stream is True,
        status=record.status
        if type(record.status) is str and record.status in STATUSES
        else "error",
        currency="USD",
        cost_status="invalid_usage",
        usage_flags="row_unbuildable",
        tags="{}",
        body_ref=body_ref if type(body_ref) is str else None,
    )
    return Row(**values)


def _salvaged(read: Callable[[], Any]) -> Any:
    try:
        return read()
    except Exception:
        return None
