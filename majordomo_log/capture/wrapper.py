"""The wrapper: attribute access passes through to the client, methods come back wrapped.

A call takes two clocks, snapshots the request, builds a ``CallRecord`` and hands it
to the shared ``BatchWriter`` (``delivery/writer.py``); nothing else happens on the
caller's path. Known SDK methods (OpenAI chat/responses/embeddings, Anthropic
messages) are always logged; any other awaited method is logged when its result
carries usage (``capture/methods.py``). ``LoggingLLM`` (``majordomo_log/logging_llm.py``)
is this class with a constructor that turns options into a writer and a context.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import inspect
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable
from types import CoroutineType, TracebackType
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from .._log import logger, warn_once
from ..delivery.stats import WriterStats
from ..delivery.writer import DEFAULT_CLOSE_TIMEOUT, BatchWriter
from ..record.call import OUTCOMES, CallContext, CallRecord
from ..record.callinfo import remember
from ..record.usage import Usage
from ..record.values import safe_text
from .keys import hash_api_key
from .methods import (
    CLIENT_COPIES,
    RAW_RESPONSE,
    STREAMING_RESPONSE,
    is_raw_response,
    operation_of,
    served_model,
    snapshot,
    with_stream_usage,
)
from .resolve import resolve
from .retries import IN_FLIGHT, count_retries
from .streams import LoggedStream, LoggedStreamManager
from .tags import current_tags

if TYPE_CHECKING:
    from typing_extensions import Self

ClientT = TypeVar("ClientT")


class ClientWrapper(Generic[ClientT]):
    """A client whose calls are logged through ``writer`` (see ``LoggingLLM``)."""

    def __init__(
        self,
        client: ClientT,
        writer: BatchWriter,
        ctx: CallContext,
        *,
        provider: str,
        key_secret: bytes,
        methods: Iterable[str] = (),
        close_stores: bool = True,
    ) -> None:
        self._client = client
        self._provider = provider
        self._secret = key_secret
        self._key_seen: int | None = None
        self._key_hash: str | None = None
        self._ctx = ctx
        self._writer = writer
        self._blocks_when_full = writer.on_full == "block"  # fixed for the writer's life
        self._close_stores = close_stores
        self._closed = False
        self._derived = False
        self._children: dict[str, Any] = {}
        # Other clients' methods that are LLM calls: named by the user, or learned when
        # they first return usage. Their failures are logged; other methods' are not.
        self._methods = frozenset(methods)
        self._methods_with_usage: set[str] = set()
        # Streams still being read: an outcome recorded now rides on their row.
        self._open_streams: weakref.WeakValueDictionary[str, CallRecord] = (
            weakref.WeakValueDictionary()
        )
        self._api_key_hash()  # read the key once now: a bad key object fails here, not per call
        self._counts_retries = count_retries(client)  # capture/retries.py
        writer.attach()  # last: a wrapper that failed to build holds no writer open

    # -- passthrough ---------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        client = self._client
        return resolve(self._wrap, client, client, (name,), self._children, self)

    def __repr__(self) -> str:
        client = type(self._client).__name__
        return f"<{type(self).__name__} {self._provider} {client} -> {self._writer.db.url}>"

    @property
    def client(self) -> ClientT:
        """The wrapped client, unwrapped (calls made on it are not logged)."""
        return self._client

    # -- control -------------------------------------------------------------------

    async def flush(self, timeout: float | None = None) -> WriterStats:
        """Wait until every record queued before this call is written (or, while a store
        is down, spooled); after ``timeout`` seconds, return with the rest pending."""
        return await self._writer.flush(timeout)

    def stats(self) -> WriterStats:
        """Counts since the writer started: written, spooled, replayed, dropped by reason."""
        return self._writer.stats()

    async def replay_spool(self) -> int:
        """Write the spooled records of these stores now (the writer also does this in the
        background once the stores are back); returns how many were written."""
        return await self._writer.replay()

    async def record_outcome(self, request_id: str, outcome: str) -> None:
        """Set the outcome (accepted, edited, rejected, escalated) of a logged call. May be
        called while the call's record still waits in the queue: it lands either way."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {sorted(OUTCOMES)}, got {outcome!r}")
        when = dt.datetime.now(dt.timezone.utc)
        record = self._open_streams.get(request_id)
        if record is not None and record.t_end is None:
            record.outcome = (outcome, when)  # inserted with the row when the stream ends
        self._writer.submit((str(request_id), outcome, when))

    async def close(self, timeout: float | None = DEFAULT_CLOSE_TIMEOUT) -> WriterStats:
        """Flush and detach; the last wrapper on a pair of stores stops the writer and
        closes the stores (unless ``close_stores=False``). Idempotent. Waits at most
        ``timeout`` seconds (10 by default, ``None``: as long as it takes); what is not
        written by then is spooled (without a spool: counted as dropped)."""
        if self._closed:
            return self._writer.stats()
        if self._derived:  # a with_options() copy: its parent owns the writer
            return await self._writer.flush(timeout)
        self._closed = True
        deadline = None if timeout is None else time.monotonic() + timeout
        writer = self._writer
        if writer.detach() > 0:
            return await writer.flush(timeout)
        stats = await writer.close(timeout)
        if self._close_stores:
            for store in (writer.db, writer.storage):
                if store is not None:
                    await _close_store(store, deadline)
        return stats

    async def __aenter__(self) -> Self:
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
        # A fingerprint, not the key: this object holds no copy of the key to leak.
        # (str caches its hash, so this costs one attribute read per call.)
        seen = hash(key) if isinstance(key, str) else id(key)
        if seen == self._key_seen:
            return self._key_hash
        self._key_seen = seen
        # SDKs put a placeholder such as "<missing API key>" where a token provider or
        # Azure AD authenticates instead: that is no key, and must not group spend.
        if isinstance(key, str) and key and not key.startswith("<"):
            self._key_hash = hash_api_key(key, self._secret)
            secret = key.encode("utf-8", "surrogatepass")
            # Added, never replaced: records still queued may carry the previous key
            # (rotation, a refreshing key provider) in an error message or body.
            if secret not in self._ctx.secrets:
                self._ctx.secrets = (*self._ctx.secrets[-7:], secret)
        else:
            self._key_hash = None
        return self._key_hash

    def _new_record(self, operation: str, model: Any, stream: bool) -> CallRecord:
        return CallRecord(
            None,  # the id is formatted off the caller's path (record/ids.py)
            time.time(),
            time.perf_counter(),
            self._provider,
            operation,
            model if type(model) is str or model is None else safe_text(model),
            stream,
            current_tags(),
            self._api_key_hash(),
            self._ctx,
        )

    def _submit(self, record: CallRecord) -> None:
        try:
            self._writer.submit(record)
        except Exception as exc:  # the logging path never raises into the caller
            self._internal_error(exc)

    def _wrap(self, target: Any, attr: str, path: tuple[str, ...]) -> Callable[..., Any]:
        """A logging version of ``target.<attr>``. The method is looked up on every call,
        so a test that patches the client's method after wrapping is still obeyed."""
        if len(path) == 1 and path[0] in CLIENT_COPIES:
            return self._wrap_client_copy(target, attr)
        operation, helper = operation_of(path)
        if helper and operation is not None:
            return self._wrap_stream_helper(target, attr, operation)
        if STREAMING_RESPONSE in path:  # the caller reads raw bytes: not ours to parse
            return getattr(target, attr)  # type: ignore[no-any-return]
        known = operation is not None or path[-1] in self._methods
        name = operation or path[-1]
        is_chat = name == "chat.completions"
        raw = RAW_RESPONSE in path
        methods_with_usage = self._methods_with_usage

        def call(*args: Any, **kwargs: Any) -> Any:
            stream = kwargs.get("stream") is True
            if raw and stream:  # a raw HTTP stream: chunks are the caller's to parse
                return getattr(target, attr)(*args, **kwargs)
            sent = with_stream_usage(kwargs) if is_chat and stream else kwargs
            try:
                record = self._new_record(name, kwargs.get("model"), stream)
            except Exception as exc:
                self._internal_error(exc)
                return getattr(target, attr)(*args, **kwargs)
            try:
                result = getattr(target, attr)(*args, **sent)
            except BaseException as exc:
                if known:
                    self._log_error(record, snapshot(args, kwargs), exc)
                raise
            if type(result) is not CoroutineType and (  # an SDK method's coroutine: go on
                not inspect.isawaitable(result) or hasattr(result, "__aiter__")
            ):
                return result  # a plain value, or an SDK paginator: nothing to time
            # Frozen before the request goes out: callers mutate `messages` freely.
            request = snapshot(args, kwargs)
            logs_errors = known or name in methods_with_usage
            return self._await(result, record, request, known, logs_errors, sent is not kwargs)

        call.__name__ = path[-1]
        call.__qualname__ = ".".join(path)
        call.__doc__ = getattr(getattr(target, attr, None), "__doc__", None)
        return call

    async def _await(
        self,
        awaitable: Awaitable[Any],
        record: CallRecord,
        request: bytes,
        known: bool,
        logs_errors: bool,
        hide: bool,
    ) -> Any:
        token = IN_FLIGHT.set(record) if self._counts_retries else None  # capture/retries.py
        try:
            result = await awaitable
        except BaseException as exc:
            if logs_errors:
                self._log_error(record, request, exc)
            raise
        finally:
            if token is not None:
                IN_FLIGHT.reset(token)
        t_end = time.perf_counter()
        writer = self._writer
        if self._blocks_when_full and writer.is_full():
            try:
                await writer.wait_for_room()
            except asyncio.CancelledError:  # queued over budget (spilled), never lost
                self._log_result(result, result, record, request, t_end, known, hide)
                raise
        try:
            response = result
            if is_raw_response(result) and not record.stream:
                record.provider_request_id = getattr(result, "request_id", None)
                retries = getattr(result, "retries_taken", None)  # the SDK's own count
                if type(retries) is int:
                    record.retry_count = retries
                response = result.parse()  # cached by the SDK: the caller's parse() reuses it
                if inspect.isawaitable(response):
                    response = await response
            return self._log_result(result, response, record, request, t_end, known, hide)
        except Exception as exc:  # a logging bug costs the record, never the caller's result
            self._internal_error(exc)
            return result

    def _log_result(
        self,
        result: Any,
        response: Any,
        record: CallRecord,
        request: bytes,
        t_end: float,
        known: bool,
        hide_usage_chunk: bool,
    ) -> Any:
        record.request_json = request
        if record.api_key_hash is None:  # a key provider may only set the key during the call
            record.api_key_hash = self._api_key_hash()
        if record.stream and hasattr(result, "__anext__"):  # ends when the stream does
            self._open_streams[record.request_id] = record
            return LoggedStream(result, record, self._submit, hide_usage_chunk)
        record.t_end = t_end
        record.response = response
        if known:  # usage and the served model are read in the background (read_response)
            record.response_unread = True
        else:
            try:
                usage = self._extract_usage(response)
            except Exception:  # logged as unreadable if this method is known to bill
                known_to_bill = record.operation in self._methods_with_usage
                usage = Usage(flags=("unreadable_usage",)) if known_to_bill else None
            if usage is None:
                return result  # not an LLM call: pass through unlogged
            self._methods_with_usage.add(record.operation)
            record.usage = usage
            record.served_model = served_model(response)
        remember(result, record)
        if response is not result:  # with_raw_response: the parsed object too
            remember(response, record)
        self._submit(record)
        return result

    def _internal_error(self, exc: Exception) -> None:
        self._writer.count_internal_error()
        warn_once(
            "internal_error",
            type(exc).__name__,
            "majordomo-log could not log a call (%s: %s); the call itself went through",
            type(exc).__name__,
            exc,
        )

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

    def _log_error(self, record: CallRecord, request: bytes, exc: BaseException) -> None:
        """Log a failed call; never raises (the caller must get the client's exception)."""
        try:
            record.fail(exc)
            if record.api_key_hash is None:
                record.api_key_hash = self._api_key_hash()
            try:
                request_id = getattr(exc, "request_id", None)
            except Exception:  # an exception whose attributes raise
                request_id = None
            record.provider_request_id = request_id if type(request_id) is str else None
            record.request_json = request
        except Exception as error:
            self._internal_error(error)
            return
        self._submit(record)

    def _wrap_stream_helper(self, target: Any, attr: str, operation: str) -> Callable[..., Any]:
        def stream(*args: Any, **kwargs: Any) -> Any:
            sent = with_stream_usage(kwargs) if operation == "chat.completions" else kwargs
            record = self._new_record(operation, kwargs.get("model"), True)
            try:
                manager = getattr(target, attr)(*args, **sent)
            except BaseException as exc:
                self._log_error(record, snapshot(args, kwargs), exc)
                raise
            record.request_json = snapshot(args, kwargs)
            self._open_streams[record.request_id] = record
            return LoggedStreamManager(manager, record, self._submit, sent is not kwargs)

        stream.__name__ = "stream"
        return stream

    def _wrap_client_copy(self, target: Any, attr: str) -> Callable[..., Any]:
        def copy(*args: Any, **kwargs: Any) -> Any:
            client = getattr(target, attr)(*args, **kwargs)
            return self._derive(client) if type(client) is type(self._client) else client

        return copy

    def _derive(self, client: Any) -> ClientWrapper[Any]:
        """A wrapper for a reconfigured copy of the client, sharing this one's writer,
        prices and tags. It needs no close(): closing this wrapper covers it."""
        derived: ClientWrapper[Any] = object.__new__(type(self))
        # Private state only: the public names are views pinned to the parent's client.
        derived.__dict__.update({k: v for k, v in self.__dict__.items() if k.startswith("_")})
        derived._client = client
        derived._children = {}
        derived._key_seen = None
        derived._ctx = dataclasses.replace(self._ctx)
        derived._derived = True
        derived._api_key_hash()
        derived._counts_retries = count_retries(client)  # with_options(http_client=...)
        return derived


class _Closable(Protocol):
    async def close(self) -> None: ...


# A store's close() waits for its last statement (SQLite's busy wait is 5 s): allowed
# this long past close()'s deadline before the store is left behind, logged.
_STORE_CLOSE_GRACE = 6.0


async def _close_store(store: _Closable, deadline: float | None) -> None:
    left = None if deadline is None else max(0.0, deadline - time.monotonic())
    try:
        await asyncio.wait_for(store.close(), None if left is None else left + _STORE_CLOSE_GRACE)
    except asyncio.TimeoutError:
        logger.error("closing %r timed out: left open", store)
