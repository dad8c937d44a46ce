"""The record of one call: ``CallRecord``, filled on the hot path, and what it costs.

The wrapper (``capture/``) fills a ``CallRecord`` with timings, references and a
snapshot of the request, and enqueues it. Everything that costs more than a few
attribute reads happens later, off the caller's path: ``priced()`` here (stream
assembly, usage normalization, pricing), the row in ``rows.py``, the body in
``envelope.py``.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .._log import warn_once
from ..telemetry.protocols import CallObserver, CallTracing
from .assemble import Assembled, assemble_stream
from .billing import Billing, billed_cost, read_billing
from .ids import format_uuid7, random_bits
from .options import DEFAULT_MAX_BODY_BYTES
from .redact import (
    RedactHook,
)
from .sdk_shapes import RESPONSE_READERS
from .tool_calls import count_tool_calls
from .usage import Usage, normalize_any

if TYPE_CHECKING:
    from .pricing import Cost, PriceTable

UsageExtractor = Callable[[Any], "Usage | None"]

OUTCOMES = frozenset({"accepted", "edited", "rejected", "escalated"})
# Providers whose bill follows the model id the caller asked for, not the name the reply
# carries: on Bedrock the id names the inference profile (``global.``, ``us.``...) that sets
# the rate, while a Claude reply names only the model. Priced by the requested id alone: an
# id the table does not know (an application inference profile's ARN) is unknown_model,
# never Anthropic's own rate.
PRICED_BY_REQUESTED_MODEL = frozenset({"bedrock"})
STATUSES = frozenset({"ok", "error", "incomplete", "blocked"})
# Pricing a record (from call_info() on the caller's thread, or the writer's) happens
# once, under this lock. Re-entrant: a SIGTERM rescue may interrupt its holder. Held
# across fork(): a child must not inherit it held by a thread the child does not have.
_pricing_lock = threading.RLock()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_pricing_lock.acquire,
        after_in_parent=_pricing_lock.release,
        after_in_child=_pricing_lock.release,
    )


@dataclass(slots=True)
class CallContext:
    """What every call of one ``LoggingLLM`` shares: set once, read by the worker."""

    prices: PriceTable
    api_key_alias: str | None
    tags: Mapping[str, Any]
    # values to scrub from bodies and errors; never stored, never in a repr
    secrets: tuple[bytes, ...] = field(repr=False)
    extractor: UsageExtractor | None = None
    capture_bodies: bool = True
    # user hooks over each body envelope (a dict), run before the built-in rules
    redact_hooks: tuple[RedactHook, ...] = ()
    # a body envelope larger than this is stored truncated (see build_envelope)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # tags stored as an HMAC of their value (hash_value) under tag_secret, never in clear
    hash_tags: frozenset[str] = frozenset()
    tag_secret: bytes = field(default=b"", repr=False)
    # telemetry (telemetry/observer.py): who ends this wrapper's spans, who sees its rows
    spans: CallTracing | None = None
    observers: tuple[CallObserver, ...] = ()


_UNREADABLE = Usage(flags=("unreadable_usage",))


class CallRecord:
    """One call as captured on the hot path. Mutable until it is enqueued."""

    __slots__ = (
        "__weakref__",
        "_priced",
        "api_key_hash",
        "billing",
        "body_dropped",
        "body_flags",
        "budget_values",
        "context_tags",
        "ctx",
        "envelope",
        "error_message",
        "error_type",
        "model",
        "observed",
        "operation",
        "outcome",
        "provider",
        "provider_request_id",
        "random_bits",
        "request_id_text",
        "request_json",
        "response",
        "response_unread",
        "retry_count",
        "served_model",
        "span",
        "started_at",
        "status",
        "stream",
        "stream_chunks",
        "t_end",
        "t_first",
        "t_start",
        "tier_hint",
        "tool_call_count",
        "trace_ids",
        "usage",
    )

    def __init__(
        self,
        request_id: str | None,
        started_at: float,
        t_start: float,
        provider: str,
        operation: str,
        model: str | None,
        stream: bool,
        context_tags: Mapping[str, Any] | None,
        api_key_hash: str | None,
        ctx: CallContext,
    ) -> None:
        self.request_id_text = request_id  # None: made from random_bits when first read
        self.random_bits = random_bits(74) if request_id is None else 0
        self.started_at = started_at
        self.t_start = t_start
        self.t_end: float | None = None
        self.t_first: float | None = None
        self.provider = provider
        self.operation = operation
        self.model = model
        self.stream = stream
        self.status = "ok"
        self.error_type: str | None = None
        self.error_message: str | None = None
        self.request_json: bytes | None = None
        self.response: Any = None
        # True: usage and served_model are still to be read off the response (an SDK
        # object, done in the background by read_response(): 0.5 µs off the call)
        self.response_unread = False
        self.stream_chunks: list[Any] | None = None  # raw chunks, assembled in the background
        self.usage: Any = None  # raw provider usage, or a Usage
        self.served_model: str | None = None
        self.provider_request_id: str | None = None
        self.context_tags = context_tags
        self.api_key_hash = api_key_hash
        self.ctx = ctx
        self.outcome: tuple[str, dt.datetime] | None = None  # set before the row exists
        self._priced: tuple[Usage | None, Cost | None, str] | None = None
        self.body_dropped = False  # left out to stay within the memory budget
        self.envelope: bytes | None = None  # the finished body, once built (build_envelope)
        self.body_flags: tuple[str, ...] = ()  # body_truncated, redaction_failed
        # Retries the SDK made before the last attempt, counted on the caller's path by
        # capture/retries.py (None: not known); tool calls, counted off it by priced().
        self.retry_count: int | None = None
        self.tool_call_count: int | None = None
        # A service tier known before the response is read: declared for the call
        # (log_batch_results) or seen in a stream's chunks (record/billing.py).
        self.tier_hint: str | None = None
        self.billing: Billing | None = None  # read when priced: tier, web searches, audio
        self.budget_values: Any = None  # each budget's scope value (budgets/guard.py), once
        # OpenTelemetry (telemetry/otel_spans.py): the call's span while it is open (never crosses
        # to a writer process), its (trace_id, span_id) as hex for the row; and whether the
        # observers (metrics, the span's end) have seen the finished call.
        self.span: Any = None
        self.trace_ids: tuple[str, str] | None = None
        self.observed = False

    @property
    def request_id(self) -> str:
        """The call's UUIDv7, made when first read from the start time and the random
        bits the caller's path drew (``record/ids.py``): the same string from any thread."""
        text = self.request_id_text
        if text is None:
            text = self.request_id_text = format_uuid7(
                int(self.started_at * 1000), self.random_bits
            )
        return text

    @request_id.setter
    def request_id(self, value: str) -> None:
        self.request_id_text = value

    def __repr__(self) -> str:
        return f"<CallRecord {self.request_id} {self.operation} {self.model} {self.status}>"

    def fail(self, exc: BaseException) -> None:
        """Mark the call as ended by ``exc``: cancelled calls are incomplete, not errors."""
        self.t_end = time.perf_counter()
        cancelled = type(exc).__name__ in ("CancelledError", "GeneratorExit", "KeyboardInterrupt")
        self.status = "incomplete" if cancelled else "error"
        self.error_type = type(exc).__name__
        try:
            self.error_message = str(exc)
        except Exception:  # an exception whose str() raises still gets its row
            self.error_message = None

    def block(self, reason: str) -> None:
        """Mark the call as refused by a hard budget before the provider was called."""
        self.t_end = time.perf_counter()
        self.status = "blocked"
        self.error_type = "BudgetExceeded"
        self.error_message = reason

    def elapsed_ms(self, perf_time: float | None) -> float | None:
        """Milliseconds from the call's start to a perf_counter() reading, to the µs."""
        return None if perf_time is None else round((perf_time - self.t_start) * 1000.0, 3)

    @property
    def is_priced(self) -> bool:
        """Whether ``priced()`` has run (its result is kept)."""
        return self._priced is not None

    def priced(self) -> tuple[Usage | None, Cost | None, str]:
        """(usage, cost, cost_status), computed once; safe to call from any thread
        (call_info() on the caller's thread may race the writer's thread)."""
        if self._priced is None:
            with _pricing_lock:
                if self._priced is None:
                    try:
                        self.read_response()
                        if self.stream_chunks is not None:
                            self._assemble()
                        self._count_tool_calls()
                        self._priced = self._price()
                    except Exception as exc:  # odd chunks or usage: flagged, never $0
                        warn_once(
                            "pricing_failed",
                            type(exc).__name__,
                            "pricing a call failed (%s): its cost is NULL with usage_flags "
                            "'pricing_failed'",
                            type(exc).__name__,
                        )
                        self.price_failed()
        assert self._priced is not None
        return self._priced

    def read_response(self) -> None:
        """Take usage and the served model from the response, once. The caller's path
        only keeps the response; everything that needs them (pricing, the row, the
        envelope, call_info) comes through ``priced()``, which calls this first."""
        if not self.response_unread:
            return
        self.response_unread = False
        response = self.response
        reader = RESPONSE_READERS.get(self.operation)
        if reader is not None:  # google-genai: usage_metadata, model_version
            try:
                self.usage, self.served_model, response_id = reader(response)
            except Exception:  # as below: unreadable is not free
                self.usage, self.served_model, response_id = _UNREADABLE, None, None
            if self.provider_request_id is None:
                self.provider_request_id = response_id
            return
        try:
            self.usage = getattr(response, "usage", None)
        except Exception:  # a property that raises: logged as unreadable, never as free
            self.usage = Usage(flags=("unreadable_usage",))
        try:
            model = getattr(response, "model", None)
        except Exception:
            model = None
        self.served_model = model if isinstance(model, str) else None

    def _count_tool_calls(self) -> None:
        """``tool_call_count`` from the (assembled) response; a response it cannot read
        costs only that count (NULL), never the record's pricing."""
        try:
            self.tool_call_count = count_tool_calls(self.response)
        except Exception:
            self.tool_call_count = None

    def _assemble(self) -> None:
        chunks, self.stream_chunks = self.stream_chunks, None
        if chunks is None:
            return
        into = Assembled(self.status, self.usage, self.served_model)
        try:
            assemble_stream(self.operation, chunks, into)
        finally:  # a bad chunk costs what comes after it: the usage read before is kept
            if into.response is not None:
                self.response = into.response
            self.usage, self.served_model = into.usage, into.served_model
            if into.service_tier is not None and self.tier_hint is None:
                self.tier_hint = into.service_tier
            if into.error_type is not None:
                self.status = into.status
                self.error_type, self.error_message = into.error_type, into.error_message

    def _price(self) -> tuple[Usage | None, Cost | None, str]:
        usage = self.normalized_usage()
        if usage is None:
            if self.status == "blocked":  # never sent: no cost, not a missing one
                return None, None, "blocked"
            if self.status in ("error", "incomplete"):
                return None, None, self.status
            return None, None, "missing_usage"
        if "unreadable_usage" in usage.flags:  # could not read is not zero: never $0
            return usage, None, "invalid_usage"
        prices = self.ctx.prices
        by_request = self.provider in PRICED_BY_REQUESTED_MODEL
        if by_request:
            entry = prices.resolve(self.model)
        else:
            entry = prices.resolve(self.served_model) or prices.resolve(self.model)
        try:  # service tier, web searches, audio tokens (record/billing.py)
            billing = read_billing(self.response, self.usage, self.tier_hint, entry)
        except Exception:  # a response that cannot be read for them is priced as standard
            billing = Billing(flags=("unreadable_billing",))
        self.billing = billing
        if billing is not None and billing.flags:
            usage = replace(usage, flags=(*usage.flags, *billing.flags))
        if entry is None:
            name = (self.model if by_request else self.served_model or self.model) or "<none>"
            warn_once(
                "unknown_model",
                name,
                "no price for model %r: its calls are logged with cost NULL and "
                "cost_status='unknown_model'; add it to a price file (see `majordomo-log prices`)",
                name,
            )
            return usage, None, "unknown_model"
        if usage.flags and any(f.endswith("_count") for f in usage.flags):
            return usage, None, "invalid_usage"
        if billing is None:
            cost = prices.cost_at(entry, usage, self.started_at)
        else:
            cost, flags = billed_cost(prices, entry, usage, billing, self.started_at)
            if flags:
                usage = replace(usage, flags=(*usage.flags, *flags))
        return usage, cost, "incomplete" if self.status == "incomplete" else "computed"

    def price_failed(self) -> None:
        """Pricing raised (a bug, or a price entry it cannot use): the cost is unknown,
        never zero, and the tokens are kept."""
        try:
            usage = self.normalized_usage()
        except Exception:
            usage = None
        if usage is None:
            usage = Usage(flags=("unreadable_usage",))
        flagged = replace(usage, flags=(*usage.flags, "pricing_failed"))
        self._priced = (flagged, None, "invalid_usage")

    def normalized_usage(self) -> Usage | None:
        raw = self.usage
        if raw is None:
            return None
        if isinstance(raw, Usage):
            return raw.checked()
        try:
            return normalize_any(raw, self.provider)
        except Exception:  # a malformed payload must not lose the record
            return Usage(flags=("unreadable_usage",))
