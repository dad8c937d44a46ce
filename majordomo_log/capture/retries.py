"""``retry_count``: how many times the SDK retried a call before its last attempt.

The openai and anthropic SDKs retry 429s, 5xx and connection errors themselves, inside
the one call the wrapper awaits, and say so only in the requests they send (the
``x-stainless-retry-count`` header of each attempt) and, for ``with_raw_response``
calls, in ``retries_taken``; a plain call's parsed result carries neither. So the attempts
are counted as they go out: a request hook on the SDK's HTTP client (``event_hooks``,
httpx's public API, which the SDKs' httpx2 client keeps) adds one to the record of the
call in flight, which the wrapper names in a contextvar around its await (around the
blocking call itself for a sync client). The first
attempt makes the count 0, each retry adds 1; a call that never sent a request keeps
None (not known). Each concurrent task has its own context, so calls in flight together
never count each other's attempts.

Cost on the caller's path, measured here: the contextvar's set and reset around the
await, about 0.1 µs a call, and per HTTP request the hook, 0.25 µs (0.11 µs of it the
hook, the rest httpx awaiting it). Reading the header instead would cost 0.7 µs per
request (httpx's case-insensitive lookup), and keeping the request to read it later would
keep its body and API key alive in the record: counting is cheaper and holds nothing.

Installed only on the clients whose SDK is known to send one request per attempt
(``RETRYING_SDKS``); other clients' rows have ``retry_count`` NULL. Another SDK plugs in
by naming its package there, if its client keeps an httpx client in ``_client``, or by
a function like ``count_retries`` for its own HTTP client.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..record.call import CallRecord

# Top-level packages of the SDKs whose clients keep their httpx client in ``_client`` and
# retry inside one call, one request per attempt.
RETRYING_SDKS = frozenset({"openai", "anthropic"})

# The call in flight in this context: ``token = IN_FLIGHT.set(record)`` before the await,
# ``IN_FLIGHT.reset(token)`` after (inline in the wrapper: a helper function call would
# double the cost). Its requests count as its attempts.
IN_FLIGHT: ContextVar[CallRecord | None] = ContextVar("majordomo_log_call", default=None)


def _note_attempt() -> None:
    record = IN_FLIGHT.get()
    if record is not None:
        count = record.retry_count
        record.retry_count = 0 if count is None else count + 1


async def _note_attempt_async(request: Any) -> None:
    _note_attempt()


def _note_attempt_sync(request: Any) -> None:
    _note_attempt()


def count_retries(client: Any) -> str | None:
    """Hook the client's HTTP client, once (a client shared by several SDK clients or
    wrappers is hooked once). Returns "async" or "sync", the kind of HTTP client whose
    attempts are counted (a sync client sends its requests inside the wrapped call
    itself, an async one in the awaited coroutine), or None: not counted."""
    if type(client).__module__.partition(".")[0] not in RETRYING_SDKS:
        return None
    http: Any = getattr(client, "_client", None)
    hooks = getattr(http, "event_hooks", None)
    if not isinstance(hooks, dict) or not isinstance(hooks.get("request"), list):
        return None
    # An async client awaits its hooks, a sync one calls them.
    kind = "async" if callable(getattr(http, "aclose", None)) else "sync"
    hook = _note_attempt_async if kind == "async" else _note_attempt_sync
    if hook not in hooks["request"]:
        try:
            http.event_hooks = {**hooks, "request": [*hooks["request"], hook]}
        except Exception:  # an HTTP client that will not take hooks: not counted
            return None
    return kind
