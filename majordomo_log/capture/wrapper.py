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
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .._log import warn_once
from ..delivery.hosted import HostedWriter, shut_down
from ..delivery.stats import WriterStats
from ..delivery.writer import DEFAULT_CLOSE_TIMEOUT, BatchWriter
from ..record.call import OUTCOMES, CallContext, CallRecord
from ..record.callinfo import remember
from ..record.usage import Usage
from ..record.values import safe_text
from . import bedrock
from .cloud import CachedCredentials
from .families import OTHER, CallKeys, family_of, hide_call_keys
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
from .streams import LoggedStream, LoggedStreamManager, LoggedSyncStream
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
        # google-genai, mistralai, LiteLLM, the clouds' clients: their known methods, key
        # (or credentials) and model naming (capture/families.py)
        family = self._family = family_of(client)
        # None: the key is where OpenAI's and Anthropic's SDKs keep it (read inline: hot path)
        self._read_key = None if family is OTHER else family.api_key
        # Cloud clients (Bedrock, Vertex): credentials instead of an api_key (capture/cloud.py)
        self._credentials = (
            None if family.credentials is None else CachedCredentials(family.credentials)
        )
        self._secret = key_secret
        # (fingerprint of the key last seen, its hash): one attribute, so that threads
        # calling at once never pair one key's fingerprint with another's hash.
        self._key_state: tuple[int | None, str | None] = (None, None)
        self._call_keys = CallKeys(self._hash_key)  # keys passed with calls (LiteLLM)
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
        self._bedrock_hooks: bedrock.Hooks | None = None
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
        self._record_outcome(request_id, outcome)

    def _record_outcome(self, request_id: str, outcome: str) -> None:
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
        step = self._closing_step()
        writer = self._writer
        if step == "done":
            return writer.stats()
        if step == "flush":
            return await writer.flush(timeout)
        if isinstance(writer, HostedWriter):  # its stores live on the writer thread too
            return await writer.shut_down(timeout)
        return await shut_down(writer, timeout, self._close_stores)

    def _closing_step(self) -> str:
        """What close() has left to do: ``done`` (closed before), ``flush`` (a copy, or
        other wrappers still use the writer) or ``last`` (stop the writer and stores)."""
        if self._closed:
            return "done"
        if self._derived:  # a with_options() copy: its parent owns the writer
            return "flush"
        self._closed = True
        return "flush" if self._writer.detach() > 0 else "last"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """``with`` on a wrapper whose flush() is a coroutine: closes it without awaiting,
        on the writer thread when the writer is there; a writer on the running loop of
        this very thread cannot be waited for, so its close() is scheduled on that loop."""
        writer = self._writer
        if isinstance(writer, HostedWriter) and not writer.thread.in_thread:
            step = self._closing_step()
            if step == "flush":
                writer.flush_sync()
            elif step == "last":
                writer.shut_down_sync(DEFAULT_CLOSE_TIMEOUT)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(self.close())
            return
        task = loop.create_task(self.close())
        _closing.add(task)
        task.add_done_callback(_closing.discard)

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
        client, read_key = self._client, self._read_key
        if read_key is None:
            key = getattr(client, "api_key", None) or getattr(client, "auth_token", None)
        elif self._credentials is not None:  # a cloud's client (no family is OTHER)
            return self._cloud_key_hash()
        else:
            key = read_key(client)
        # A fingerprint, not the key: this object holds no copy of the key to leak.
        # (str caches its hash, so this costs one attribute read per call.)
        seen = hash(key) if isinstance(key, str) else id(key)
        state = self._key_state
        if seen == state[0]:
            return state[1]
        key_hash = self._hash_key(key)
        self._key_state = (seen, key_hash)
        return key_hash

    def _hash_key(self, key: object) -> str | None:  # None: no key
        # SDKs put a placeholder such as "<missing API key>" where a token provider or
        # Azure AD authenticates instead: that is no key, and must not group spend.
        if isinstance(key, str) and key and not key.startswith("<"):
            secret = key.encode("utf-8", "surrogatepass")
            # Added, never replaced: records still queued may carry the previous key
            # (rotation, a refreshing key provider) in an error message or body.
            if secret not in self._ctx.secrets:
                self._ctx.secrets = (*self._ctx.secrets[-7:], secret)
            return hash_api_key(key, self._secret)
        return None

    def _cloud_key_hash(self) -> str | None:
        """``_api_key_hash`` for a cloud's credentials (capture/cloud.py): the reader hands
        back the same tuple until they change (a refresh, a rotation)."""
        assert self._credentials is not None
        credential = self._credentials(self._client)
        state = self._key_state
        if id(credential) == state[0]:  # the reader holds it: the id stays its own
            return state[1]
        key, secrets = credential
        key_hash = None if key is None else hash_api_key(key, self._secret)
        known = self._ctx.secrets
        added = [s.encode("utf-8", "surrogatepass") for s in secrets]
        added = [s for s in added if s not in known]
        if added:  # kept beside the previous ones: queued records may still hold those
            self._ctx.secrets = (*known, *added)[-12:]
        self._key_state = (id(credential), key_hash)
        return key_hash

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
        family = self._family
        method = family.method(path)
        if family.botocore:  # AWS: the Bedrock methods are logged, the rest handed back as is
            if method is not None:
                return bedrock.wrap_method(self._hooks(), target, attr, method)
            if path[-1] not in self._methods:
                return getattr(target, attr)  # type: ignore[no-any-return]
        operation: str | None
        if method is not None:  # google-genai, mistralai, LiteLLM (capture/families.py)
            operation, helper = method.operation, False
        else:
            operation, helper = operation_of(path)
        if helper and operation is not None:
            return self._wrap_stream_helper(target, attr, operation)
        if STREAMING_RESPONSE in path:  # the caller reads raw bytes: not ours to parse
            return getattr(target, attr)  # type: ignore[no-any-return]
        known = operation is not None or path[-1] in self._methods
        name = operation or path[-1]
        is_chat = name == "chat.completions" or name in family.asks_stream_usage
        always_streams = method is not None and method.streams
        model_name, keys_per_call = family.model_name, family.keys_per_call
        raw = RAW_RESPONSE in path
        methods_with_usage = self._methods_with_usage

        def call(*args: Any, **kwargs: Any) -> Any:
            stream = always_streams or kwargs.get("stream") is True
            if raw and stream:  # a raw HTTP stream: chunks are the caller's to parse
                return getattr(target, attr)(*args, **kwargs)
            sent = with_stream_usage(kwargs) if is_chat and stream else kwargs
            shown: Any = kwargs  # what the stored request shows
            try:
                model = kwargs.get("model")
                record = self._new_record(name, model_name(model) if model_name else model, stream)
                if keys_per_call:  # LiteLLM: the key may come with the call, never stored
                    call_key = kwargs.get("api_key")
                    if call_key is not None:
                        record.api_key_hash = self._call_keys.hash(call_key)
                        shown = hide_call_keys(kwargs)
            except Exception as exc:
                self._internal_error(exc)
                return getattr(target, attr)(*args, **kwargs)
            # A sync SDK client sends its requests (and retries) inside this call.
            token = IN_FLIGHT.set(record) if self._counts_retries == "sync" else None
            try:
                result = getattr(target, attr)(*args, **sent)
            except BaseException as exc:
                if known:
                    self._log_error(record, snapshot(args, shown), exc)
                raise
            finally:
                if token is not None:
                    IN_FLIGHT.reset(token)
            if type(result) is CoroutineType or (  # an SDK method's coroutine: the usual case
                inspect.isawaitable(result) and not hasattr(result, "__aiter__")
            ):
                # Frozen before the request goes out: callers mutate `messages` freely.
                request = snapshot(args, shown)
                logs_errors = known or name in methods_with_usage
                return self._await(result, record, request, known, logs_errors, sent is not kwargs)
            if hasattr(result, "__aiter__") and not hasattr(result, "__anext__"):
                return result  # an async SDK paginator: no call to time
            # A sync client's call has returned: log it now, on the caller's thread.
            return self._returned(result, record, args, shown, known, sent is not kwargs)

        call.__name__ = path[-1]
        call.__qualname__ = ".".join(path)
        call.__doc__ = getattr(getattr(target, attr, None), "__doc__", None)
        return call

    def _returned(
        self,
        result: Any,
        record: CallRecord,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        known: bool,
        hide: bool,
    ) -> Any:
        """A blocking call's result: the sync twin of ``_await``'s second half."""
        t_end = time.perf_counter()
        try:
            if not known and record.operation not in self._methods_with_usage:
                # Most methods of a sync client are not LLM calls (files.list(), a
                # paginator): find out before paying for a snapshot of their arguments.
                streamed = record.stream and hasattr(result, "__next__")
                if not streamed and not self._has_usage(result):
                    return result
            request = snapshot(args, kwargs)
            writer = self._writer
            if self._blocks_when_full and writer.is_full():
                wait = getattr(writer, "wait_for_room_sync", None)
                if wait is not None:  # a hosted writer: never the caller's own loop
                    wait()
            response = result
            if is_raw_response(result) and not record.stream:
                record.provider_request_id = getattr(result, "request_id", None)
                retries = getattr(result, "retries_taken", None)  # the SDK's own count
                if type(retries) is int:
                    record.retry_count = retries
                response = result.parse()  # cached by the SDK: the caller's parse() reuses it
            return self._log_result(
                result, response, record, request, t_end, known, hide, blocking=True
            )
        except Exception as exc:  # a logging bug costs the record, never the caller's result
            self._internal_error(exc)
            return result

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
        blocking: bool = False,
    ) -> Any:
        record.request_json = request
        if record.api_key_hash is None:  # a key provider may only set the key during the call
            record.api_key_hash = self._api_key_hash()
        if self._family.on_result is not None:  # LiteLLM: the provider it routed the call to
            self._family.on_result(record, response)
        if record.stream:  # logged when the stream ends
            # A blocking call's stream is iterated with `for`, even one that could also be
            # read with `async for` (LiteLLM's CustomStreamWrapper has both).
            if hasattr(result, "__anext__") and not (blocking and hasattr(result, "__next__")):
                self._open_streams[record.request_id] = record
                return LoggedStream(result, record, self._submit, hide_usage_chunk)
            if hasattr(result, "__next__"):
                self._open_streams[record.request_id] = record
                return LoggedSyncStream(result, record, self._submit, hide_usage_chunk)
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

    def _has_usage(self, result: Any) -> bool:
        try:
            return self._extract_usage(result) is not None
        except Exception:  # an odd result of a method we do not know: not ours to log
            return False

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
            if request_id is None and self._family.error_request_id is not None:
                request_id = self._family.error_request_id(exc)  # botocore: a ClientError's
            record.provider_request_id = request_id if type(request_id) is str else None
            record.request_json = request
            error_provider = self._family.error_provider  # LiteLLM: the provider that failed
            if error_provider is not None:
                record.provider = error_provider(exc) or record.provider
        except Exception as error:
            self._internal_error(error)
            return
        self._submit(record)

    def _hooks(self) -> bedrock.Hooks:
        """What a Bedrock call borrows from this wrapper (capture/bedrock.py)."""
        if self._bedrock_hooks is None:
            self._bedrock_hooks = bedrock.Hooks(
                self._new_record,
                self._log_error,
                self._submit,
                self._internal_error,
                self._open_streams,
                self._writer if self._blocks_when_full else None,
            )
        return self._bedrock_hooks

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
        derived._key_state = (None, None)
        # Its own key readers: a reader caches the last key it saw, of its own client
        credentials = self._family.credentials
        derived._credentials = None if credentials is None else CachedCredentials(credentials)
        derived._call_keys = CallKeys(derived._hash_key)
        derived._ctx = dataclasses.replace(self._ctx)
        derived._derived = True
        derived._bedrock_hooks = None  # bound to the parent's methods
        derived._api_key_hash()
        derived._counts_retries = count_retries(client)  # with_options(http_client=...)
        return derived


# close() tasks scheduled by a `with` block's exit on a running loop: kept until done.
_closing: set[asyncio.Task[WriterStats]] = set()


class SyncClientWrapper(ClientWrapper[ClientT]):
    """A wrapper around a sync-only client (``openai.OpenAI``, ``anthropic.Anthropic``,
    a boto3 client): the same calls, and flush(), close(), replay_spool() and
    record_outcome() are plain methods, for programs with no event loop anywhere. Its
    writer always runs on the library's writer thread (``delivery/writer_thread.py``)."""

    _writer: HostedWriter  # type: ignore[assignment]

    def flush(self, timeout: float | None = None) -> WriterStats:  # type: ignore[override]
        """Wait until every record queued before this call is written (or, while a store
        is down, spooled); after ``timeout`` seconds, return with the rest pending."""
        return self._writer.flush_sync(timeout)

    def replay_spool(self) -> int:  # type: ignore[override]
        """Write the spooled records of these stores now; how many were written."""
        return self._writer.replay_sync()

    def record_outcome(self, request_id: str, outcome: str) -> None:  # type: ignore[override]
        """Set the outcome (accepted, edited, rejected, escalated) of a logged call."""
        self._record_outcome(request_id, outcome)

    def close(  # type: ignore[override]
        self, timeout: float | None = DEFAULT_CLOSE_TIMEOUT
    ) -> WriterStats:
        """Flush and detach; the last wrapper on a pair of stores stops the writer and
        closes the stores. Idempotent; waits at most ``timeout`` seconds."""
        step = self._closing_step()
        writer = self._writer
        if step == "done":
            return writer.stats()
        if step == "flush":
            return writer.flush_sync(timeout)
        return writer.shut_down_sync(timeout)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        step = self._closing_step()
        if step == "flush":
            await self._writer.flush()
        elif step == "last":
            await self._writer.shut_down(DEFAULT_CLOSE_TIMEOUT)
