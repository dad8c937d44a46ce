"""AWS Bedrock Runtime through botocore (boto3, sync) and aiobotocore (aioboto3, async):
``converse``, ``converse_stream``, ``invoke_model`` and
``invoke_model_with_response_stream`` (the botocore family's methods:
``capture/families.py``), logged under those names with the model of ``modelId``.

Their results are plain dicts, so the caller's path keeps their parts as they are (a
shallow copy of the result's head, the body's bytes, the stream's events) in
``record.stream_chunks`` and the background makes the response and usage of them
(``record/bedrock.py``). Streams and bodies are handed back logged
(``capture/bedrock_streams.py``). A botocore client's other methods (``get_paginator``,
``can_paginate``, ``meta``, waiters, the control plane's ``list_foundation_models``) are
not LLM calls: the wrapper hands them back untouched.

The wrapper lends this module what it needs as ``Hooks``: making, failing and submitting
a record, and noting a stream that is still open.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..record.callinfo import remember
from .bedrock_streams import (
    LoggedEventStream,
    ReplayedBody,
    converse_token,
    invoke_token,
    replayed_sync_body,
)
from .cloud import request_id_of
from .methods import snapshot

if TYPE_CHECKING:
    from ..record.call import CallRecord
    from .families import Method

# streaming method -> (the result's key holding the stream, what its first token is)
_STREAMS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "converse_stream": ("stream", converse_token),
    "invoke_model_with_response_stream": ("body", invoke_token),
}


@dataclass(frozen=True, slots=True)
class Hooks:
    """What the wrapper lends a Bedrock call (its own methods, bound)."""

    new_record: Callable[[str, Any, bool], CallRecord]
    log_error: Callable[[CallRecord, bytes, BaseException], None]
    submit: Callable[[CallRecord], None]
    internal_error: Callable[[Exception], None]
    open_streams: MutableMapping[str, CallRecord]  # where record_outcome() finds a stream's
    blocking_writer: Any  # the writer when on_full="block" (callers wait for room), else None
    # budgets: raises BudgetExceeded (after logging the blocked attempt), else None
    # (the coroutine that raises it, for an async method: returned to the caller)
    refuse_over_budget: Callable[..., Any] | None

    def room(self) -> Awaitable[None] | None:
        """What an async call awaits before its record is queued: room in a full queue."""
        writer = self.blocking_writer
        return writer.wait_for_room() if writer is not None and writer.is_full() else None

    def room_sync(self) -> None:
        """The same for a blocking call: the writer thread's wait, never a loop's."""
        writer = self.blocking_writer
        if writer is not None and writer.is_full():
            wait = getattr(writer, "wait_for_room_sync", None)
            if wait is not None:
                wait()


def wrap_method(hooks: Hooks, target: Any, attr: str, method: Method) -> Callable[..., Any]:
    """A logging ``target.<attr>``, looked up on every call (``mock.patch`` still works);
    ``method`` is what the botocore family knows of it (``capture/families.py``)."""
    operation, streamed = method

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            record = hooks.new_record(operation, kwargs.get("modelId"), streamed)
            # Before the call: aiobotocore sends when awaited, the caller may mutate
            # `messages` meanwhile. botocore takes keyword arguments only.
            request = snapshot(args, _readable(kwargs))
        except Exception as exc:
            hooks.internal_error(exc)
            return getattr(target, attr)(*args, **kwargs)
        if hooks.refuse_over_budget is not None:
            refused = hooks.refuse_over_budget(record, kwargs, args, None, target, attr, request)
            if refused is not None:
                return refused
        try:
            result = getattr(target, attr)(*args, **kwargs)
        except BaseException as exc:
            hooks.log_error(record, request, exc)
            raise
        if inspect.isawaitable(result):  # aiobotocore
            return _finish_async(hooks, result, record, request)
        data = None
        if operation == "invoke_model":
            data, error = _read_sync_body(result)
            if error is not None:  # the caller meets it at its read; the row says so now
                hooks.log_error(record, request, error)
                return result
        t_end = time.perf_counter()
        try:
            hooks.room_sync()
        except Exception as exc:  # the writer's trouble is never the caller's
            hooks.internal_error(exc)
        return _captured(hooks, result, record, request, data, t_end)

    call.__name__ = attr
    call.__qualname__ = attr
    call.__doc__ = getattr(getattr(target, attr, None), "__doc__", None)
    return call


async def _finish_async(
    hooks: Hooks, awaitable: Awaitable[Any], record: CallRecord, request: bytes
) -> Any:
    data = error = None
    try:
        result = await awaitable
        if record.operation == "invoke_model":
            data, error = await _read_async_body(result)
    except BaseException as exc:  # cancelled while the body was read: incomplete
        hooks.log_error(record, request, exc)
        raise
    if error is not None:
        hooks.log_error(record, request, error)
        return result
    t_end = time.perf_counter()
    try:
        room = hooks.room()
        if room is not None:
            await room
    except asyncio.CancelledError:  # cancelled while waiting for room: logged (spilled) anyway
        _captured(hooks, result, record, request, data, t_end)
        raise
    except Exception as exc:  # the writer's trouble is never the caller's
        hooks.internal_error(exc)
    return _captured(hooks, result, record, request, data, t_end)


def _readable(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``invoke_model``'s ``body`` given as UTF-8 bytes is stored as its text (JSON, for
    every model family), not as base64."""
    body = kwargs.get("body")
    if type(body) is bytes:
        try:
            return {**kwargs, "body": body.decode("utf-8")}
        except UnicodeDecodeError:
            pass
    return kwargs


Read = tuple[Any, Exception | None]  # (the body's bytes, or the error reading it raised)


def _read_sync_body(result: Any) -> Read:
    """boto3: read ``invoke_model``'s body and put an equivalent one in its place."""
    body = result.get("body") if type(result) is dict else None
    if body is None or not callable(getattr(body, "read", None)):
        return None, None
    try:
        data = body.read()
    except Exception as exc:
        result["body"] = replayed_sync_body(None, exc)
        return None, exc
    result["body"] = replayed_sync_body(data, None)
    return data, None


async def _read_async_body(result: Any) -> Read:
    """aiobotocore: the same, with the body's async ``read()``."""
    body = result.get("body") if type(result) is dict else None
    if body is None or not callable(getattr(body, "read", None)):
        return None, None
    try:
        data = await body.read()
    except Exception as exc:
        result["body"] = ReplayedBody(body, b"", exc)
        return None, exc
    result["body"] = ReplayedBody(body, data)
    return data, None


def _captured(
    hooks: Hooks, result: Any, record: CallRecord, request: bytes, body: Any, t_end: float
) -> Any:
    """Keep the parts of ``result`` the background needs, hand the streams back logged,
    and submit the record (a stream's when it ends). Never raises: a logging failure
    costs the record, not the caller's result."""
    record.request_json = request
    try:
        if type(result) is not dict:  # not botocore's: logged as it is (missing usage)
            record.response = result
        else:
            record.provider_request_id = request_id_of(result)
            stream = _STREAMS.get(record.operation)
            if stream is not None and stream[0] in result:
                key, first_token = stream
                record.stream_chunks = [{k: v for k, v in result.items() if k != key}]
                logged = LoggedEventStream(result[key], record, hooks.submit, first_token)
                result[key] = logged
                hooks.open_streams[record.request_id] = record
                # call_info(result[key]): the stream, held weakly. A dict cannot be, and
                # call_info's bounded strong cache would keep a dropped stream from ever
                # being collected, and logged.
                remember(logged, record)
                return result
            if record.operation == "invoke_model":
                record.stream_chunks = [{k: v for k, v in result.items() if k != "body"}, body]
            else:  # converse: the whole result is the response
                record.stream_chunks = [dict(result)]
        record.t_end = t_end
        remember(result, record)
    except Exception as exc:
        hooks.internal_error(exc)
        return result
    hooks.submit(record)
    return result
