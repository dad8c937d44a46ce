"""Where a record is built: the hot-path capture (``CallRecord``) and, in the
background, its row (``build_row``) and body envelope (``build_envelope``).

The wrapper fills a ``CallRecord`` with timings, references and a snapshot of
the request, and enqueues it. Everything that costs more than a few attribute
reads (usage normalization, pricing, JSON, redaction) happens here, off the
caller's path, in the writer's worker thread.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson

from .._log import warn_once
from .redact import (
    DEFAULT_MAX_BODY_BYTES,
    TRUNCATED_HEAD_BYTES,
    RedactHook,
    apply_hooks,
    failed_marker,
    scrub,
    scrub_text,
    truncated_marker,
)
from .serialize import dumps_body
from .usage import Usage, normalize_any
from .values import clean_text, hash_value, safe_text, storable_mapping, value_text

if TYPE_CHECKING:
    from .pricing import Cost, PriceTable

UsageExtractor = Callable[[Any], "Usage | None"]

PROMOTED_TAGS = (
    "feature",
    "workflow",
    "user_id",
    "session_id",
    "trace_id",
    "environment",
    "prompt_version",
)
OUTCOMES = frozenset({"accepted", "edited", "rejected", "escalated"})
STATUSES = frozenset({"ok", "error", "incomplete", "blocked"})
MAX_TAG_CHARS = 255  # fits an indexed VARCHAR(255) in every dialect
_pricing_lock = threading.RLock()  # re-entrant: a SIGTERM rescue may interrupt its holder
MAX_ERROR_CHARS = 4000

# The columns of llm_requests, in the order of every row tuple.
COLUMNS = (
    "request_id",
    "started_at",
    "ended_at",
    "latency_ms",
    "time_to_first_token_ms",
    "provider",
    "model",
    "served_model",
    "operation",
    "stream",
    "status",
    "error_type",
    "error_message",
    "provider_request_id",
    "input_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
    "total_tokens",
    "input_cost",
    "cache_read_cost",
    "cache_write_cost",
    "output_cost",
    "reasoning_cost",
    "total_cost",
    "currency",
    "cost_status",
    "price_version",
    "usage_flags",
    "api_key_hash",
    "api_key_alias",
    *PROMOTED_TAGS,
    "tags",
    "outcome",
    "outcome_at",
    "body_ref",
    "cache_savings",  # added by migration 0002: columns added later go last
)
MONEY_COLUMNS = frozenset(c for c in COLUMNS if c.endswith("_cost") or c == "cache_savings")


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


class CallRecord:
    """One call as captured on the hot path. Mutable until it is enqueued."""

    __slots__ = (
        "__weakref__",
        "_priced",
        "api_key_hash",
        "body_dropped",
        "body_flags",
        "context_tags",
        "ctx",
        "envelope",
        "error_message",
        "error_type",
        "model",
        "operation",
        "outcome",
        "provider",
        "provider_request_id",
        "request_id",
        "request_json",
        "response",
        "served_model",
        "started_at",
        "status",
        "stream",
        "stream_chunks",
        "t_end",
        "t_first",
        "t_start",
        "usage",
    )

    def __init__(
        self,
        request_id: str,
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
        self.request_id = request_id
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

    def elapsed_ms(self, perf_time: float | None) -> float | None:
        """Milliseconds from the call's start to a perf_counter() reading, to the µs."""
        return None if perf_time is None else round((perf_time - self.t_start) * 1000.0, 3)

    def priced(self) -> tuple[Usage | None, Cost | None, str]:
        """(usage, cost, cost_status), computed once; safe to call from any thread
        (call_info() on the caller's thread may race the writer's thread)."""
        if self._priced is None:
            with _pricing_lock:
                if self._priced is None:
                    try:
                        if self.stream_chunks is not None:
                            from ..capture.streams import assemble_stream

                            assemble_stream(self)
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

    def _price(self) -> tuple[Usage | None, Cost | None, str]:
        usage = self.normalized_usage()
        if usage is None:
            if self.status in ("error", "incomplete"):
                return None, None, self.status
            return None, None, "missing_usage"
        if "unreadable_usage" in usage.flags:  # could not read is not zero: never $0
            return usage, None, "invalid_usage"
        prices = self.ctx.prices
        entry = prices.resolve(self.served_model) or prices.resolve(self.model)
        if entry is None:
            name = self.served_model or self.model or "<none>"
            warn_once(
                "unknown_model",
                name,
                "no price for model %r: its calls are logged with cost NULL and "
                "cost_status='unknown_model'; add it to a price file (see `majordomo-log prices`)",
                name,
            )
            return usage, None, "unknown_model"
        if any(f.endswith("_count") for f in usage.flags):
            return usage, None, "invalid_usage"
        started = dt.datetime.fromtimestamp(self.started_at, dt.timezone.utc)
        cost = prices.cost(entry, usage, started)
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


def _scrubbed(value: Any, secrets: tuple[bytes, ...]) -> str | None:
    """Text the provider (or an exception) handed over, through the secret rules."""
    return None if value is None else scrub_text(safe_text(value), secrets)


def _text(value: Any) -> str | None:
    return None if value is None else safe_text(value)


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc)


def _clip(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    text = safe_text(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


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


def token_values(usage: Usage | None) -> tuple[int | None, ...]:
    """The TOKEN_COLUMNS of a usage, in order (NULLs without usage)."""
    if usage is None or "unreadable_usage" in usage.flags:  # unknown, not zero
        return (None,) * len(TOKEN_COLUMNS)
    return (
        usage.input,
        usage.cache_read,
        usage.cache_write_5m,
        usage.cache_write_1h,
        usage.output,
        usage.reasoning,
        usage.total,
    )


def cost_values(cost: Cost | None) -> tuple[Decimal | None, ...]:
    """The COST_COLUMNS of a cost, in order (NULLs when the cost is unknown)."""
    if cost is None:
        return (None,) * len(COST_COLUMNS)
    return (cost.input, cost.cache_read, cost.cache_write, cost.output, cost.reasoning, cost.total)


def merged_tags(record: CallRecord) -> dict[str, Any]:
    """The wrapper's tags under the call's ``ml.tags()``, as storable values (see
    ``_values.py``), with the ``hash_tags`` replaced by their HMAC."""
    ctx = record.ctx
    tags = dict(ctx.tags)  # made storable once, when the wrapper was built
    if record.context_tags:
        tags.update(storable_mapping(record.context_tags))
    for name in ctx.hash_tags:
        value = tags.get(name)
        if value is not None:
            tags[name] = hash_value(value, ctx.tag_secret)
    return tags


def build_row(record: CallRecord, body_ref: str | None) -> tuple[Any, ...]:
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
    promoted = [_clip(value_text(tags.get(name)), MAX_TAG_CHARS) for name in PROMOTED_TAGS]
    error_message = record.error_message
    if error_message is not None:
        error_message = scrub_text(error_message, record.ctx.secrets)
    flags = (*(usage.flags if usage is not None else ()), *record.body_flags)
    return (
        record.request_id,
        _utc(record.started_at),
        _utc(record.started_at + latency / 1000.0),
        latency,
        record.elapsed_ms(record.t_first),
        _clip(record.provider, MAX_TAG_CHARS),
        _clip(record.model, MAX_TAG_CHARS),
        _clip(record.served_model, MAX_TAG_CHARS),
        _clip(record.operation, MAX_TAG_CHARS),
        record.stream,
        _clip(record.status, MAX_TAG_CHARS),
        _clip(record.error_type, MAX_TAG_CHARS),
        _clip(error_message, MAX_ERROR_CHARS),
        _clip(_scrubbed(record.provider_request_id, record.ctx.secrets), MAX_TAG_CHARS),
        *token_values(usage),
        *cost_values(cost),
        "USD",
        cost_status,
        None if cost is None else cost.price_version,
        ",".join(flags) if flags else None,
        _clip(record.api_key_hash, MAX_TAG_CHARS),
        _clip(record.ctx.api_key_alias, MAX_TAG_CHARS),
        *promoted,
        tags_json.decode(),
        None if record.outcome is None else record.outcome[0],
        None if record.outcome is None else record.outcome[1],
        body_ref,
        None if cost is None else cost.cache_savings,
    )


def salvage_row(record: CallRecord, body_ref: str | None) -> tuple[Any, ...]:
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
    return tuple(values[column] for column in COLUMNS)


def _salvaged(read: Callable[[], Any]) -> Any:
    try:
        return read()
    except Exception:
        return None


def build_envelope(record: CallRecord) -> bytes:
    """The body envelope: request as sent, response as returned, as JSON bytes, with the
    user's redact hooks and the built-in rules applied, within the size cap.

    Built once per record: the result replaces the request snapshot on the record (one
    copy of the request in memory, not two), and a batch prepared again after an
    interruption stores the same body, without running the hooks twice.

    Over ``max_body_bytes``, each of the request and the response larger than the kept
    head is replaced by ``{"$truncated": true, "original_bytes", "sha256", "head"}``
    (no full-size envelope is ever built) and the row's ``usage_flags`` gets
    ``body_truncated``. A hook that raises costs the body, not the row: request and
    response become ``{"$redaction_failed": "<ExceptionType>"}`` and the row's
    ``usage_flags`` gets ``redaction_failed``.
    """
    if record.envelope is not None:
        return record.envelope
    ctx = record.ctx
    error = (
        None
        if record.error_type is None
        else {"type": _text(record.error_type), "message": _text(record.error_message)}
    )
    head = orjson.dumps(
        {
            "format": "majordomo-log/body@1",
            "request_id": record.request_id,
            "started_at": _utc(record.started_at).isoformat(),
            "provider": _text(record.provider),
            "operation": _text(record.operation),
            "model": _text(record.model),
            "served_model": _text(record.served_model),
            "stream": bool(record.stream),
            "status": _text(record.status),
            "error": error,
        }
    )[:-1]
    request = record.request_json if record.request_json is not None else b"null"
    response = dumps_body(record.response)
    flags: list[str] = []
    if len(head) + len(request) + len(response) + 26 > ctx.max_body_bytes:
        keep = min(TRUNCATED_HEAD_BYTES, ctx.max_body_bytes // 4)
        if len(request) > keep:
            request = truncated_marker(request, keep)
        if len(response) > keep:
            response = truncated_marker(response, keep)
        flags.append("body_truncated")
    payload = b"".join((head, b',"request":', request, b',"response":', response, b"}"))
    del request, response  # the envelope is the only full copy from here on
    if ctx.redact_hooks:
        try:
            payload = apply_hooks(payload, ctx.redact_hooks)
        except Exception as exc:
            marker = failed_marker(exc)
            payload = b"".join((head, b',"request":', marker, b',"response":', marker, b"}"))
            flags.append("redaction_failed")
            warn_once(
                "redaction_failed",
                type(exc).__name__,
                "a redact hook raised %s: bodies it fails on are stored without their "
                "request and response (usage_flags 'redaction_failed'); rows are kept",
                type(exc).__name__,
            )
    payload = scrub(payload, ctx.secrets)
    record.body_flags = tuple(flags)
    record.envelope = payload
    record.request_json = None
    return payload
