"""A record's body: the request as sent and the response as returned, in one JSON
envelope, through the user's redact hooks and the built-in secret rules, within the
size cap."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson

from .._log import warn_once
from .call import CallRecord
from .redact import TRUNCATED_HEAD_BYTES, apply_hooks, failed_marker, scrub, truncated_marker
from .serialize import dumps_body
from .values import safe_text


def _text(value: Any) -> str | None:
    return None if value is None else safe_text(value)


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc)


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
