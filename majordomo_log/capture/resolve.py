"""The passthrough views: how ``llm.chat.completions.create`` reaches the client.

Attribute access on a ``LoggingLLM`` walks the client: plain values come back as
they are, methods come back wrapped (``LoggingLLM._wrap``), and sub-objects of the
client's own library (``client.chat``) come back as views that keep walking. The
official SDKs' resources never change, so their views are kept as ordinary
attributes and later lookups cost nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# The wrapper's method that makes a logging version of ``target.<attr>``, called with
# (target, attr, path): the views know nothing else of the wrapper.
WrapMethod = Callable[[Any, str, tuple[str, ...]], Callable[..., Any]]

# The official SDKs: their client resources never change once built (cached properties).
SDK_PACKAGES = frozenset({"openai", "anthropic"})
# Clients whose methods are all their own, with no resources under them: a sub-object
# (botocore's ``meta``, ``exceptions``) is handed back as it is, never walked.
FLAT_PACKAGES = frozenset({"botocore", "aiobotocore"})
_SCALARS = (str, bytes, int, float, bool, type(None), list, tuple, dict, set, frozenset)


class _Namespace:
    """A passthrough view of a client sub-object (``client.chat.completions``)."""

    def __init__(self, wrap: WrapMethod, client: Any, target: Any, path: tuple[str, ...]) -> None:
        self._wrap = wrap
        self._client = client
        self._target = target
        self._path = path
        self._children: dict[str, Any] = {}
        self._pinnable = top_package(type(target)) in SDK_PACKAGES

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        path = (*self._path, name)
        return resolve(self._wrap, self._client, self._target, path, self._children, self)

    def __repr__(self) -> str:
        return f"<logged {self._target!r}>"


def resolve(
    wrap: WrapMethod,
    client: Any,
    parent: Any,
    path: tuple[str, ...],
    cache: dict[str, Any],
    holder: Any,
) -> Any:
    """Wrap a method, proxy a resource of the client's library, pass anything else.
    ``parent`` is ``client`` or one of its sub-objects; ``holder`` is the wrapper or view
    that looked it up, and ``cache`` its memory of what it handed out."""
    name = path[-1]
    value = getattr(parent, name)
    if isinstance(value, (*_SCALARS, type)):
        return value
    # Bound methods are new objects on every access: key the cache on owner and function.
    owner = getattr(value, "__self__", None)
    func = getattr(value, "__func__", value)
    entry = cache.get(name)
    if entry is not None and entry[0] is owner and entry[1] is func:
        return entry[2]
    if callable(value):
        wrapped: Any = wrap(parent, name, path)
        if isinstance(holder, _Namespace) and holder._pinnable:
            holder.__dict__[name] = wrapped  # looked up late: safe to pin
            return wrapped
    elif _same_package(value, client):
        wrapped = _Namespace(wrap, client, value, path)
        if wrapped._pinnable:
            # An official SDK's resources are fixed for a client's life: keep the view as
            # an ordinary attribute, so later lookups never reach __getattr__ (hot path).
            holder.__dict__[name] = wrapped
            return wrapped
    else:
        return value
    cache[name] = (owner, func, wrapped)
    return wrapped


def _same_package(value: Any, client: Any) -> bool:
    """Sub-objects of the client's own library are resources to wrap (``client.chat``);
    anything else (an httpx URL, a config object) is handed back as is. An official
    SDK's client subclassed in the application's own module (``class
    MyClient(openai.AsyncOpenAI)``) still has the SDK's resources; other base classes
    (httpx, pydantic) do not make their objects resources."""
    package = top_package(type(value))
    client_class = type(client)
    if package in FLAT_PACKAGES:
        return False
    if package == top_package(client_class):
        return True
    return package in SDK_PACKAGES and any(top_package(c) == package for c in client_class.__mro__)


def top_package(cls: type) -> str:
    return cls.__module__.split(".", 1)[0]
