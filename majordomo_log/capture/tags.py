"""Attribution tags that follow the code path: ``with ml.tags(user_id="u-42"):``.

A contextvar, so tags set in one request handler never leak into another task.
Each ``tags()`` block stores one merged, read-only mapping, so the hot path
reads a single reference.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

from ..record.values import hash_value
from .keys import resolve_key_secret

_current: ContextVar[Mapping[str, Any] | None] = ContextVar("majordomo_log_tags", default=None)


@contextmanager
def tags(**values: Any) -> Iterator[Mapping[str, Any]]:
    """Attach attribution (feature, workflow, user_id, session_id, trace_id,
    environment, prompt_version, or any other key) to calls made inside the block.
    Nested blocks add to, and override, the outer ones."""
    outer = _current.get()
    merged = MappingProxyType({**outer, **values} if outer else dict(values))
    token = _current.set(merged)
    try:
        yield merged
    finally:
        _current.reset(token)


def current_tags() -> Mapping[str, Any] | None:
    return _current.get()


def hash_tag(value: Any, key_hash_secret: str | bytes | None = None) -> str:
    """What a tag named in ``LoggingLLM(hash_tags=...)`` stores for ``value``: an
    HMAC-SHA256 (hex) under the key-hash secret (``key_hash_secret``, else
    ``MAJORDOMO_LOG_KEY_SECRET``, else the documented default), so a known value can be
    looked up: ``WHERE user_id = :hash_tag("u-42")``."""
    return hash_value(value, resolve_key_secret(key_hash_secret))
