"""JSON for bodies: a cheap snapshot of the request on the hot path, the response
in the background, and scrubbing of secrets.

orjson does the work (about 1.7 µs for a 4 KB request). Values JSON cannot hold
are stored in a readable form instead of failing the record: bytes as base64,
pydantic models and dataclasses as their fields, anything else as its repr; a body
orjson refuses whole (a cycle, an int past 64 bits, a lone surrogate, nesting past its
limit) is made storable by ``values.storable_body`` and marked ``$unserializable``.

The GIL: orjson, and pydantic's ``model_dump_json``, walk Python objects, so they hold
the GIL for the whole of a call, and neither can stop halfway and resume. Measured on
16 MB (2 vCPUs): 0.6 ms per MB for text in one string, 2 ms per MB for a list of
floats (an embeddings response). The request is serialized on the caller's path, as it
must be frozen there; the response in the writer's worker thread, where a response of
many megabytes keeps the event loop waiting for the GIL that long (so does a user's
redact hook: the envelope is parsed and serialized again, whole), and the size cap
only applies after it. What would cut it into pieces: a large list or dict serialized
a member at a time (orjson writes the same bytes member by member, for str keys) and a
long string a slice at a time, with a turn between; a pydantic model would first be
dumped to Python objects, in one call too. Not done: serialization is one call per
body, tens of milliseconds for a body at the default 16 MB cap, while redaction (seconds
on hostile text before its rules were bounded) and compression are cut into pieces
(``record/redact.py``, ``stores/bodies/layout.py``).
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping
from typing import Any

import orjson

from .values import storable_body

SENSITIVE_HEADERS = frozenset({"authorization", "api-key", "x-api-key", "proxy-authorization"})
REDACTED = "[REDACTED]"
_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def json_default(value: Any) -> Any:
    """orjson fallback for values it cannot serialize natively."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes_base64": base64.b64encode(bytes(value)).decode("ascii")}
    dump = getattr(value, "model_dump", None)
    if callable(dump):  # pydantic v2 (SDK request params and responses)
        return dump(mode="json", warnings=False)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, (set, frozenset)):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return repr(value)


def _safe_dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value, default=json_default, option=_OPTIONS)
    except (TypeError, ValueError, RecursionError):
        # Circular references, integers beyond 64 bits, nesting deeper than orjson
        # allows, invalid UTF-8 in str: the same data made storable, marked, instead of
        # losing the body. Still JSON, so the redaction rules read its keys and values
        # (a repr would hide a "password" member behind escaped quotes).
        return orjson.dumps({"$unserializable": storable_body(value, json_default)})


def snapshot_request(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> bytes:
    """The request as sent, frozen now: callers mutate ``messages`` right after a call.
    Sensitive headers are replaced here so no secret is held even in memory."""
    headers = kwargs.get("extra_headers")
    # `is not None` first: an isinstance() against an ABC costs 0.15 µs on every call
    if headers is not None and isinstance(headers, Mapping):
        kwargs = {
            **kwargs,
            "extra_headers": {
                k: (REDACTED if str(k).lower() in SENSITIVE_HEADERS else v)
                for k, v in headers.items()
            },
        }
    data = _safe_dumps({"args": args, "kwargs": kwargs} if args else kwargs)
    # The snapshot waits in the queue, and orjson's result keeps its whole working
    # buffer (8x the JSON; resident: 2x). An exact copy costs 0.6 µs for 4 KB and
    # halves the resident memory of a queued request (bench/memory.py).
    return memoryview(data).tobytes()


def dumps_body(value: Any) -> bytes:
    """A response (SDK model, dict, anything) as JSON bytes."""
    if isinstance(value, str):  # plain text responses stay valid JSON
        try:
            return orjson.dumps({"$text": value})
        except TypeError:  # lone surrogates: no UTF-8 exists for them
            text = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
            return orjson.dumps({"$text": text})
    dump_json = getattr(value, "model_dump_json", None)
    if callable(dump_json):  # an SDK response: pydantic writes its own JSON twice as fast
        try:
            text = dump_json(warnings=False)
            if isinstance(text, str):
                return text.encode("utf-8")
        except Exception:  # whatever pydantic refuses, the general path still stores
            pass
    return _safe_dumps(value)
