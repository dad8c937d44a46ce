"""``LoggingLLM``: wraps a client so every call is logged.

Attribute access is passed through to the client; methods are wrapped. A call
takes two clocks, snapshots the request, builds a ``CallRecord`` and hands it
to the shared ``BatchWriter`` (``_writer.py``); nothing else happens on the
caller's path. Known SDK methods (OpenAI chat/responses/embeddings, Anthropic
messages) are always logged; any other awaited method is logged when its result
carries usage.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from os import PathLike
from types import TracebackType
from typing import Any, Generic, TypeVar

from ._callinfo import remember
from ._ids import uuid7
from ._keys import hash_api_key, resolve_key_secret
from ._pricing import PriceTable
from ._record import OUTCOMES, CallContext, CallRecord, UsageExtractor
from ._serialize import snapshot_request
from ._streams import LoggedMessageStreamManager, LoggedStream
from ._tags import current_tags
from ._usage import Usage
from ._writer import BatchWriter, WriterStats, shared_writer
from .adapters.base import BodyStore, MetadataStore

ClientT = TypeVar("ClientT")

# Method paths of the official SDKs -> the ``operation`` column.
KNOWN_OPERATIONS: dict[tuple[str, ...], str] = {
    ("chat", "completions", "create"): "chat.completions",
    ("responses", "create"): "responses",
    ("embeddings", "create"): "embeddings",
    ("messages", "create"): "messages",
    ("messages", "stream"): "messages",
}
_SCALARS = (str, bytes, int, float, bool, type(None), list, tuple, dict, set, frozenset)

_default_prices: PriceTable | None = None


def default_prices() -> PriceTable:
    """The built-in table merged with ``MAJORDOMO_LOG_PRICES``, loaded once."""
    global _default_prices
    if _default_prices is None:
        _default_prices = PriceTable.load()
    return _default_prices


def _detect_provider(client: Any) -> str:
    package = type(client).__module__.split(".", 1)[0]
    if package == "openai" and "azure" in type(client).__name__.lower():
        return "azure"
    provider = getattr(client, "provider", None)
    if isinstance(provider, str) and package not in ("openai", "anthropic"):
        return provider  # majordomo-llm style clients name their provider
    return package


class LoggingLLM(Generic[ClientT]):
    """Wrap ``client`` so that every call is logged to ``db`` (rows) and ``storage`` (bodies).

    Stores: wrappers given the same ``db`` and ``storage`` objects share one background
    writer. ``close()`` flushes; when the last wrapper sharing the stores closes, the
    writer stops and the stores are closed too (``close_stores=False`` keeps them open).
    """

    def __init__(
        self,
        client: ClientT,
        db: MetadataStore,
        storage: BodyStore | None = None,
        *,
        api_key_alias: str | None = None,
        tags: Mapping[str, Any] | None = None,
        provider: str | None = None,
        prices: PriceTable | str | PathLike[str] | Sequence[str | PathLike[str]] | None = None,
        key_hash_secret: str | bytes | None = None,
        usage_extractor: UsageExtractor | None = None,
        capture_bodies: bool = True,
        close_stores: bool = True,
        batch_size: int | None = None,
        flush_interval: float | None = None,
        max_queue_bytes: int | None = None,
    ) -> None:
        if not isinstance(db, MetadataStore):
            raise TypeError(
                f"db must be a metadata store (e.g. SqliteAdapter), got {type(db).__name__}"
            )
        if storage is not None and not isinstance(storage, BodyStore):
            raise TypeError(
                "storage must be a body store (e.g. FileStorageAdapter), "
                f"got {type(storage).__name__}"
            )
        self._client = client
        self._provider = provider or _detect_provider(client)
        self._secret = resolve_key_secret(key_hash_secret)
        self._key_seen: object = None
        self._key_hash: str | None = None
        self._ctx = CallContext(
            prices=_price_table(prices),
            api_key_alias=api_key_alias,
            tags=dict(tags or {}),
            secrets=(),
            extractor=usage_extractor,
            capture_bodies=capture_bodies,
        )
        options = {
            k: v
            for k, v in (
                ("batch_size", batch_size),
                ("flush_interval", flush_interval),
                ("max_queue_bytes", max_queue_bytes),
            )
            if v is not None
        }
        self._writer: BatchWriter = shared_writer(db, storage, **options)
        self._writer._users += 1
        self._close_stores = close_stores
        self._closed = False
        self._children: dict[str, Any] = {}
        self._api_key_hash()  # read the key once now: a bad key object fails here, not per call

    # -- passthrough ---------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _resolve(self, self._client, (name,), self._children)

    def __repr__(self) -> str:
        return (
            f"<LoggingLLM {self._provider} {type(self._client).__name__} -> {self._writer.db.url}>"
        )

    @property
    def client(self) -> ClientT:
        """The wrapped client, unwrapped (calls made on it are not logged)."""
        return self._client

    # -- control -------------------------------------------------------------------

    async def flush(self, timeout: float | None = None) -> WriterStats:
        """Wait until every record queued before this call is written."""
        return await self._writer.flush(timeout)

    def stats(self) -> WriterStats:
        return self._writer.stats()

    async def record_outcome(self, request_id: str, outcome: str) -> None:
        """Set the outcome (accepted, edited, rejected, escalated) of a logged call. May be
        called while the call's record still waits in the queue: it lands either way."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {sorted(OUTCOMES)}, got {outcome!r}")
        import datetime as dt

        self._writer.submit((str(request_id), outcome, dt.datetime.now(dt.timezone.utc)))

    async def close(self, timeout: float | None = None) -> WriterStats:
        """Flush and detach; the last wrapper on a pair of stores stops the writer and
        closes the stores (unless ``close_stores=False``). Idempotent."""
        if self._closed:
            return self._writer.stats()
        self._closed = True
        writer = self._writer
        writer._users -= 1
        if writer._users > 0:
            return await writer.flush(timeout)
        stats = await writer.close(timeout)
        if self._close_stores:
            await writer.db.close()
            if writer.storage is not None:
                await writer.storage.close()
        return stats

    async def __aenter__(self) -> LoggingLLM[ClientT]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- the hot path ----------------------------------------------------------------

    def _api_key_hash(self) -> str | None:
        client = self._client
        key = getattr(client, "api_key", None) or getattr(client, "auth_token", None)
        if key is self._key_seen:
            return self._key_hash
        self._key_seen = key
        if isinstance(key, str) and key:
            self._key_hash = hash_api_key(key, self._secret)
            self._ctx.secrets = (key.encode("utf-8", "surrogatepass"),)
        else:
            self._key_hash = None
        return self._key_hash

    def _new_record(self, operation: str, model: Any, stream: bool) -> CallRecord:
        started = time.time()
        return CallRecord(
            uuid7(int(started * 1000)),
            started,
            time.perf_counter(),
            self._provider,
            operation,
            model if isinstance(model, str) or model is None else str(model),
            stream,
            current_tags(),
            self._api_key_hash(),
            self._ctx,
        )

    def _submit(self, record: CallRecord) -> None:
        try:
            self._writer.submit(record)
        except Exception:  # the logging path never raises into the caller
            pass

    def _wrap(self, method: Callable[..., Any], path: tuple[str, ...]) -> Callable[..., Any]:
        operation = KNOWN_OPERATIONS.get(path[-3:]) or KNOWN_OPERATIONS.get(path[-2:])
        if path[-2:] == ("messages", "stream"):
            return self._wrap_message_stream(method)
        known = operation is not None
        name = operation or path[-1]
        is_chat = name == "chat.completions"

        def call(*args: Any, **kwargs: Any) -> Any:
            stream = kwargs.get("stream") is True
            hide_usage_chunk = False
            if is_chat and stream:
                options = kwargs.get("stream_options")
                if not (isinstance(options, Mapping) and options.get("include_usage")):
                    # Without this the stream carries no usage at all and would look free.
                    kwargs = {
                        **kwargs,
                        "stream_options": {**(options or {}), "include_usage": True},
                    }
                    hide_usage_chunk = True
            record = self._new_record(name, kwargs.get("model"), stream)
            try:
                result = method(*args, **kwargs)
            except BaseException as exc:
                self._log_error(record, args, kwargs, exc, hide_usage_chunk)
                raise
            if not inspect.isawaitable(result):
                return result  # a plain method: nothing to time
            return self._await(result, record, args, kwargs, known, hide_usage_chunk)

        call.__name__ = path[-1]
        call.__qualname__ = ".".join(path)
        call.__doc__ = getattr(method, "__doc__", None)
        return call

    async def _await(
        self,
        awaitable: Awaitable[Any],
        record: CallRecord,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        known: bool,
        hide_usage_chunk: bool,
    ) -> Any:
        try:
            result = await awaitable
        except BaseException as exc:
            self._log_error(record, args, kwargs, exc, hide_usage_chunk)
            raise
        t_end = time.perf_counter()
        if record.stream and hasattr(result, "__anext__"):  # ends when the stream does
            record.request_json = _snapshot(args, kwargs, hide_usage_chunk)
            return LoggedStream(result, record, self._submit, hide_usage_chunk)
        record.t_end = t_end
        if known:
            record.usage = getattr(result, "usage", None)
        else:
            usage = self._extract_usage(result)
            if usage is None:
                return result  # not an LLM call: pass through unlogged
            record.usage = usage
        record.response = result
        record.served_model = getattr(result, "model", None) if known else _served_model(result)
        record.provider_request_id = getattr(result, "_request_id", None)
        record.request_json = _snapshot(args, kwargs, hide_usage_chunk)
        remember(result, record)
        self._submit(record)
        return result

    def _extract_usage(self, result: Any) -> Any:
        extractor = self._ctx.extractor
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

    def _log_error(
        self,
        record: CallRecord,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        exc: BaseException,
        hide_usage_chunk: bool,
    ) -> None:
        record.t_end = time.perf_counter()
        record.status = "incomplete" if type(exc).__name__ == "CancelledError" else "error"
        record.error_type = type(exc).__name__
        try:
            record.error_message = str(exc)
        except Exception:
            record.error_message = None
        record.provider_request_id = getattr(exc, "request_id", None)
        record.request_json = _snapshot(args, kwargs, hide_usage_chunk)
        self._submit(record)

    def _wrap_message_stream(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def stream(*args: Any, **kwargs: Any) -> Any:
            record = self._new_record("messages", kwargs.get("model"), True)
            try:
                manager = method(*args, **kwargs)
            except BaseException as exc:
                self._log_error(record, args, kwargs, exc, False)
                raise
            record.request_json = _snapshot(args, kwargs, False)
            return LoggedMessageStreamManager(manager, record, self._submit)

        stream.__name__ = "stream"
        return stream


def _snapshot(args: tuple[Any, ...], kwargs: Mapping[str, Any], hide_usage_chunk: bool) -> bytes:
    if hide_usage_chunk:  # store what the caller sent, not the option we added
        kwargs = {k: v for k, v in kwargs.items() if k != "stream_options"}
    try:
        return snapshot_request(args, kwargs)
    except Exception:
        return b'{"$unserializable": "request"}'


def _served_model(result: Any) -> str | None:
    model = getattr(result, "model", None)
    return model if isinstance(model, str) else None


def _price_table(
    prices: PriceTable | str | PathLike[str] | Sequence[str | PathLike[str]] | None,
) -> PriceTable:
    if prices is None:
        return default_prices()
    if isinstance(prices, PriceTable):
        return prices
    if isinstance(prices, (str, PathLike)):
        return PriceTable.load([prices])
    return PriceTable.load(prices)


class _Namespace:
    """A passthrough view of a client sub-object (``client.chat.completions``)."""

    __slots__ = ("_children", "_llm", "_path", "_target")

    def __init__(self, llm: LoggingLLM[Any], target: Any, path: tuple[str, ...]) -> None:
        self._llm = llm
        self._target = target
        self._path = path
        self._children: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _resolve(self._llm, self._target, (*self._path, name), self._children)

    def __repr__(self) -> str:
        return f"<logged {self._target!r}>"


def _resolve(
    llm: LoggingLLM[Any], parent: Any, path: tuple[str, ...], cache: dict[str, Any]
) -> Any:
    """Wrap a method, proxy a resource of the client's library, pass anything else."""
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
        wrapped: Any = llm._wrap(value, path)
    elif _same_package(value, llm._client):
        wrapped = _Namespace(llm, value, path)
    else:
        return value
    cache[name] = (owner, func, wrapped)
    return wrapped


def _same_package(value: Any, client: Any) -> bool:
    """Sub-objects of the client's own library are resources to wrap (``client.chat``);
    anything else (an httpx URL, a config object) is handed back as is."""
    return type(value).__module__.split(".", 1)[0] == type(client).__module__.split(".", 1)[0]
