"""``call_info(response)``: what was logged for a call, handed back to the caller.

The SDK's response object is returned unchanged, so the link from a response to
its record lives here: a weak reference where the object allows one (pydantic
models do), otherwise a small bounded cache.
"""

from __future__ import annotations

import collections
import weakref
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .call import CallRecord
from .rows import billing_values, cost_values, token_values

_by_id: dict[int, tuple[Any, CallRecord]] = {}
_strong: collections.OrderedDict[int, tuple[Any, CallRecord]] = collections.OrderedDict()
_STRONG_LIMIT = 256


@dataclass(frozen=True, slots=True)
class CallInfo:
    """The logged facts of one call. Token counts are non-overlapping buckets."""

    request_id: str
    provider: str
    operation: str
    model: str | None
    served_model: str | None
    status: str
    stream: bool
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
    cost_status: str
    price_version: str | None
    latency_ms: float | None
    time_to_first_token_ms: float | None
    api_key_alias: str | None
    provider_request_id: str | None
    # Billing variants (record/billing.py), as in the row's columns of the same names
    service_tier: str | None = None
    web_search_calls: int | None = None
    server_tool_cost: Decimal | None = None


def remember(result: Any, record: CallRecord) -> None:
    """Hot path: link a returned object to its record."""
    key = id(result)

    def forget(_: object, pop: Any = _by_id.pop) -> None:  # bound now: survives shutdown
        pop(key, None)

    try:
        ref = weakref.ref(result, forget)
    except TypeError:  # not weak-referenceable (e.g. a slotted dataclass)
        _strong[key] = (result, record)
        if len(_strong) > _STRONG_LIMIT:
            _strong.popitem(last=False)
        return
    _by_id[key] = (ref, record)


def _record_of(obj: Any) -> CallRecord | None:
    entry = _by_id.get(id(obj))
    if entry is not None and entry[0]() is obj:
        return entry[1]
    strong = _strong.get(id(obj))
    if strong is not None and strong[0] is obj:
        return strong[1]
    return None


def call_info(response: Any) -> CallInfo:
    """The logged facts (request_id, tokens, cost, latency) of a response returned by a
    wrapped client. Raises LookupError for an object that did not come from one."""
    record = _record_of(response)
    if record is None:
        raise LookupError(
            f"no call is logged for this {type(response).__name__}: call_info() takes what a "
            "LoggingLLM-wrapped call returned"
        )
    end = record.t_end
    if record.stream and end is None:  # still streaming: nothing to count yet
        usage, cost, cost_status = None, None, "pending"
    else:
        usage, cost, cost_status = record.priced()
    buckets: dict[str, Any] = {
        **token_values(usage),
        **cost_values(cost),
        **billing_values(record, cost),
    }
    return CallInfo(
        request_id=record.request_id,
        provider=record.provider,
        operation=record.operation,
        model=record.model,
        served_model=record.served_model,
        status=record.status,
        stream=record.stream,
        **buckets,
        cost_status=cost_status,
        price_version=None if cost is None else cost.price_version,
        latency_ms=record.elapsed_ms(end),
        time_to_first_token_ms=record.elapsed_ms(record.t_first),
        api_key_alias=record.ctx.api_key_alias,
        provider_request_id=record.provider_request_id
        or getattr(record.response, "_request_id", None),
    )
