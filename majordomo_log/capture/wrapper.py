"""The wrapper: attribute access passes through to the client, methods come back wrapped.

A call takes two clocks, snapshots the request and builds a ``CallRecord``
(``_new_record``; the key's hash is ``capture/client_keys.py``'s). Once the provider
answers (``_await`` for an awaited call, ``_returned`` for a blocking one) the record is
handed to the shared ``BatchWriter`` (``delivery/writer.py``), which prices and writes
it in the background; a stream's record is handed over when the stream ends
(``capture/streams.py``), a failed call's by ``_log_error``. The logging's only wait on
the caller's path is for room in a full queue (``on_full='block'``; Bedrock's
``invoke_model`` also reads its body there, ``capture/bedrock.py``); nothing else
happens on it. Known SDK methods (OpenAI's and Anthropic's: ``capture/methods.py``;
google-genai's, mistralai's, LiteLLM's and Bedrock's: ``capture/families.py``, Bedrock's
dict results through ``capture/bedrock.py``) are always logged; any other method is
logged when its result carries usage. flush(), close() and record_outcome() are
``capture/control.py``'s. ``LoggingLLM`` (``majordomo_log/logging_llm.py``) is this
class with a constructor that turns options into a writer and a context.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable
from types import CoroutineType
from typing import Any, Generic, TypeVar

from .._log import warn_once
from ..budgets.guard import BudgetGuard
from ..delivery.hosted import HostedWriter
from ..delivery.writer import BatchWriter
from ..record.call import CallContext, CallRecord
from ..record.callinfo import remember
from ..record.usage import Usage
from ..record.values import safe_text
from . import bedrock
from .batch import BatchLog
from .client_keys import ClientKeys
from .control import Control, SyncControl
from .families import family_of, hide_call_keys
from .methods import (
    ASYNC_PAGINATOR,
    AWAIT,
    CLIENT_COPIES,
    RAW_RESPONSE,
    STREAMING_RESPONSE,
    client_surface,
    extract_usage,
    has_usage,
    is_raw_response,
    operation_of,
    result_kind,
    served_model,
    snapshot,
    with_stream_usage,
)
from .refusals import Refusals
from .resolve import resolve
from .retries import IN_FLIGHT, count_retries
from .spans import Spans
from .streams import LoggedStream, LoggedStreamManager, LoggedSyncStream
from .tags import current_tags

ClientT = TypeVar("ClientT")


class ClientWrapper(ClientKeys, Control, BatchLog, Refusals, Spans, Generic[ClientT]):
    """A client whose calls are logged through ``writer`` (see ``LoggingLLM``). Its key
    state is ``ClientKeys``' (``capture/client_keys.py``), its flush(), close() and
    record_outcome() ``Control``'s (``capture/control.py``), log_batch_results()
    ``BatchLog``'s (``capture/batch.py``): mixins of this one object, sharing its private
    attributes."""

    _client: ClientT

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
        guard: BudgetGuard | None = None,
    ) -> None:
        self._client = client
        self._guard = guard  # budgets: checked before a call, charged after (budgets/guard.py)
        self._surface = client_surface(client)
        self._provider = provider
        # google-genai, mistralai, LiteLLM, the clouds' clients: their known methods, key
        # (or credentials) and model naming (capture/families.py)
        self._family = family_of(client)
        self._secret = key_secret
        self._ctx = ctx
        self._spans = ctx.spans  # OpenTelemetry (telemetry/otel_spans.py), or None
        self._start_keys()  # capture/client_keys.py
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

    # -- the hot path ----------------------------------------------------------------

    def _new_record(
        self, operation: str, model: Any, stream: bool, traced: bool = True
    ) -> CallRecord:
        """The call's record; with OpenTelemetry and ``traced``, its span opened too."""
        record = CallRecord(
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
        if traced and self._spans is not None:
            self._start_span(record)
        return record

    def _submit(self, record: CallRecord) -> None:
        guard = self._guard
        if guard is not None and record.status != "blocked":
            guard.charge(record)  # priced here, at once: the next call's check counts it
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
            if self._guard is None or operation is None:
                return getattr(target, attr)  # type: ignore[no-any-return]
            return self._wrap_unlogged(target, attr, operation)  # but budgets still hold
        known = operation is not None or path[-1] in self._methods
        name = operation or path[-1]
        is_chat = name == "chat.completions" or name in family.asks_stream_usage
        always_streams = method is not None and method.streams
        model_name, keys_per_call = family.model_name, family.keys_per_call
        raw = RAW_RESPONSE in path
        methods_with_usage = self._methods_with_usage
        # An async client's span opens when its coroutine runs (_await): one never awaited
        # then opens none (a client of both kinds opens it before, not knowing which it
        # is). A method not known to be an LLM call gets no span.
        spans_before = self._spans is not None and self._surface != "async"

        def call(*args: Any, **kwargs: Any) -> Any:
            stream = always_streams or kwargs.get("stream") is True
            if raw and stream:  # a raw HTTP stream: chunks are the caller's to parse
                if self._guard is not None and known:  # but budgets still hold
                    refused = self._refuse_unlogged(name, args, kwargs, target, attr)
                    if refused is not None:
                        return refused
                return getattr(target, attr)(*args, **kwargs)
            sent = with_stream_usage(kwargs) if is_chat and stream else kwargs
            shown: Any = kwargs  # what the stored request shows
            try:
                model = kwargs.get("model")
                traced = spans_before and (known or name in methods_with_usage)
                record = self._new_record(
                    name, model_name(model) if model_name else model, stream, traced
                )
                if keys_per_call:  # LiteLLM: the key may come with the call, never stored
                    call_key = kwargs.get("api_key")
                    if call_key is not None:
                        record.api_key_hash = self._call_keys.hash(call_key)
                        shown = hide_call_keys(kwargs)
            except Exception as exc:
                self._internal_error(exc)
                return getattr(target, attr)(*args, **kwargs)
            if self._guard is not None:
                refused = self._refuse_over_budget(record, kwargs, args, shown, target, attr)
                if refused is not None:
                    return refused
            # A sync SDK client sends its requests (and retries) inside this call.
            token = IN_FLIGHT.set(record) if self._counts_retries == "sync" else None
            current = None if record.span is None else self._enter_span(record)
            try:
                result = getattr(target, attr)(*args, **sent)
            except BaseException as exc:
                if known:
                    self._log_error(record, snapshot(args, shown), exc)
                raise
            finally:
                if token is not None:
                    IN_FLIGHT.reset(token)
                if current is not None:
                    self._leave_span(current)
            kind = AWAIT if type(result) is CoroutineType else result_kind(result)
            if kind == AWAIT:  # an SDK method's coroutine: the usual async case
                # Frozen before the request goes out: callers mutate `messages` freely.
                request = snapshot(args, shown)
                logs_errors = known or name in methods_with_usage
                return self._await(result, record, request, known, logs_errors, sent is not kwargs)
            if kind == ASYNC_PAGINATOR:
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
                if not streamed and not has_usage(result, self._ctx.extractor):
                    record.span = None  # not an LLM call: no span, no row
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
        if self._spans is not None and logs_errors and record.span is None:
            self._start_span(record)  # an async client's LLM call: opened as it runs
        current = None if record.span is None else self._enter_span(record)
        try:
            result = await awaitable
        except BaseException as exc:
            if logs_errors:
                self._log_error(record, request, exc)
            raise
        finally:
            if token is not None:
                IN_FLIGHT.reset(token)
            if current is not None:
                self._leave_span(current)
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
                usage = extract_usage(response, self._ctx.extractor)
            except Exception:  # logged as unreadable if this method is known to bill
                known_to_bill = record.operation in self._methods_with_usage
                usage = Usage(flags=("unreadable_usage",)) if known_to_bill else None
            if usage is None:
                record.span = None  # not an LLM call: no span (never ended, never exported)
                return result  # and passed through unlogged
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
                self._refuse_over_budget if self._guard is not None else None,
            )
        return self._bedrock_hooks

    def _wrap_stream_helper(self, target: Any, attr: str, operation: str) -> Callable[..., Any]:
        def stream(*args: Any, **kwargs: Any) -> Any:
            sent = with_stream_usage(kwargs) if operation == "chat.completions" else kwargs
            record = self._new_record(operation, kwargs.get("model"), True)
            if self._guard is not None:
                self._refuse_over_budget(record, kwargs, args, kwargs)
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
        derived._start_keys()  # its own key readers: each caches its own client's key
        derived._ctx = dataclasses.replace(self._ctx)
        derived._derived = True
        derived._bedrock_hooks = None  # bound to the parent's methods
        derived._api_key_hash()
        derived._counts_retries = count_retries(client)  # with_options(http_client=...)
        return derived


class SyncClientWrapper(SyncControl, ClientWrapper[ClientT]):
    """A wrapper around a sync-only client (``openai.OpenAI``, ``anthropic.Anthropic``,
    a boto3 client): the same calls, and flush(), close(), replay_spool() and
    record_outcome() are plain methods (``capture/control.py``), for programs with no
    event loop anywhere. Its writer always runs on the library's writer thread
    (``delivery/writer_thread.py``)."""

    _writer: HostedWriter  # type: ignore[assignment]
