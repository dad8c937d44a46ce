"""What a method of a wrapped client is: which SDK calls are LLM calls (``operation``:
OpenAI's and Anthropic's here, the other SDKs' in ``capture/families.py``), and the few
reads of a result the hot path makes (its usage, when no table knows the method; its
served model; a raw response), each one guarded (a property that raises must not break
the caller's call) or, for ``extract_usage``, raising for its caller to guard."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from types import GeneratorType
from typing import TYPE_CHECKING, Any

from ..record.serialize import snapshot_request
from ..record.usage import Usage
from .families import OTHER, family_of
from .resolve import SDK_PACKAGES, top_package

if TYPE_CHECKING:
    from ..record.call import UsageExtractor

# Method paths of the official SDKs -> the ``operation`` column.
KNOWN_OPERATIONS: dict[tuple[str, ...], str] = {
    ("chat", "completions", "create"): "chat.completions",
    ("responses", "create"): "responses",
    ("embeddings", "create"): "embeddings",
    ("messages", "create"): "messages",
    ("chat", "completions", "parse"): "chat.completions",
    ("responses", "parse"): "responses",
}
# SDK stream helpers: they return an async context manager, not an awaitable.
STREAM_HELPERS: dict[tuple[str, ...], str] = {
    ("chat", "completions", "stream"): "chat.completions",
    ("responses", "stream"): "responses",
    ("messages", "stream"): "messages",
}
# `client.chat.completions.with_raw_response.create(...)`: same call, raw HTTP wrapper
# (logged); `with_streaming_response`: the caller reads the HTTP body itself (not logged).
RAW_RESPONSE = "with_raw_response"
STREAMING_RESPONSE = "with_streaming_response"
# Methods that return a reconfigured copy of the client: the copy is wrapped too.
CLIENT_COPIES = frozenset({"with_options", "copy"})


def operation_of(path: tuple[str, ...]) -> tuple[str | None, bool]:
    """(operation, is a stream helper) for a method path; None if not an SDK call."""
    clean = tuple(p for p in path if p != RAW_RESPONSE and p != STREAMING_RESPONSE)
    for table, helper in ((KNOWN_OPERATIONS, False), (STREAM_HELPERS, True)):
        for size in (3, 2):
            operation = table.get(clean[-size:])
            if operation is not None:
                return operation, helper
    return None, False


def detect_provider(client: Any) -> str:
    # google-genai, mistralai, LiteLLM; the clouds' clients: who bills the call (AWS:
    # bedrock, Google Cloud: vertex)
    family = family_of(client)
    if family is not OTHER:
        return family.provider(client)
    provider = getattr(client, "provider", None)
    if isinstance(provider, str) and top_package(type(client)) not in SDK_PACKAGES:
        return provider  # majordomo-llm style clients, or a subclass, name their provider
    # By the classes the client is built from: an application may subclass the SDK's.
    sdk_classes = [c for c in type(client).__mro__ if top_package(c) in SDK_PACKAGES]
    if sdk_classes:
        if any("azure" in c.__name__.lower() for c in sdk_classes):
            return "azure"
        return top_package(sdk_classes[0])
    return top_package(type(client))


def client_surface(client: Any) -> str:
    """``"sync"`` for a client whose calls all block (``openai.OpenAI``,
    ``anthropic.Anthropic`` and its Bedrock and Vertex variants, boto3 clients),
    ``"async"`` for one whose calls are all awaited, ``"both"`` for anything else
    (google-genai's ``Client`` with its ``aio`` half, Mistral, the litellm module, a
    duck-typed client): a wrapper's flush() and close() are plain methods only for
    a sync client (REFERENCE.md §5)."""
    names = [(c.__module__, c.__name__) for c in type(client).__mro__]
    for module, name in names:
        if name == "AsyncAPIClient" or module.startswith("aiobotocore."):
            return "async"
        if name == "SyncAPIClient" or (module, name) == ("botocore.client", "BaseClient"):
            return "sync"
    if type(client).__name__.startswith("Async"):
        return "async"
    return "both"


def with_stream_usage(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Ask an OpenAI chat stream for usage; without it the stream looks free."""
    options = kwargs.get("stream_options")
    if isinstance(options, Mapping) and options.get("include_usage"):
        return kwargs
    return {**kwargs, "stream_options": {**(options or {}), "include_usage": True}}


_raw_response_types: dict[type, bool] = {}


def is_raw_response(result: Any) -> bool:
    """``with_raw_response`` results; decided once per type (a missing attribute on a
    pydantic model costs a slow ``__getattr__`` on every call)."""
    kind = type(result)
    known = _raw_response_types.get(kind)
    if known is None:
        known = callable(getattr(kind, "parse", None)) and hasattr(kind, "headers")
        _raw_response_types[kind] = known
    return known


AWAIT, ASYNC_PAGINATOR, RETURNED = 0, 1, 2
_result_kinds: dict[type, int] = {}


def result_kind(result: Any) -> int:
    """What a client method handed back: ``AWAIT`` (an awaitable to time), an
    ``ASYNC_PAGINATOR`` (awaitable and async-iterable: not a call) or ``RETURNED`` (a
    sync call's result). Decided once per type, as ``is_raw_response`` is: on a pydantic
    model a missing attribute costs its ``__getattr__`` and an exception (about 2 µs)."""
    kind = type(result)
    known = _result_kinds.get(kind)
    if known is None:
        if isinstance(result, GeneratorType):  # awaitable or not by its code's flags
            return AWAIT if inspect.isawaitable(result) else RETURNED
        iterable = hasattr(kind, "__aiter__")
        if iterable and not hasattr(kind, "__anext__"):
            known = ASYNC_PAGINATOR
        elif inspect.isawaitable(result) and not iterable:
            known = AWAIT
        else:  # a plain value, or an async stream handed back at once
            known = RETURNED
        _result_kinds[kind] = known
    return known


def snapshot(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> bytes:
    try:
        return snapshot_request(args, kwargs)
    except Exception:
        return b'{"$unserializable": "request"}'


def extract_usage(result: Any, extractor: UsageExtractor | None) -> Any:
    """The usage of a result of a method no SDK table knows: the user's extractor's, an
    OpenAI- or Anthropic-shaped ``.usage``, Gemini's ``.usage_metadata``, or
    majordomo-llm-style token counts; None if it has none (not an LLM call). A result
    whose attributes raise raises."""
    if extractor is not None:
        try:
            usage = extractor(result)
        except Exception:
            usage = None
        if usage is not None:
            return usage
    usage = getattr(result, "usage", None)
    if usage is not None and not callable(usage):
        return usage
    if getattr(result, "usage_metadata", None) is not None:  # google-genai
        return result.usage_metadata
    inp, out = getattr(result, "input_tokens", None), getattr(result, "output_tokens", None)
    if isinstance(inp, int) and isinstance(out, int):  # majordomo-llm style results
        cached = getattr(result, "cached_tokens", 0)
        return Usage.inclusive(inp, out, cached_tokens=cached if isinstance(cached, int) else 0)
    return None


def has_usage(result: Any, extractor: UsageExtractor | None) -> bool:
    try:
        return extract_usage(result, extractor) is not None
    except Exception:  # an odd result of a method we do not know: not ours to log
        return False


def served_model(result: Any) -> str | None:
    try:
        model = getattr(result, "model", None)
    except Exception:
        return None
    return model if isinstance(model, str) else None
