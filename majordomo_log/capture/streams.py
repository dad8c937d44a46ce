"""Streaming calls: pass every chunk through untouched, keep a reference to it,
and log the call once when the stream ends, fails or is abandoned.

On the hot path a chunk costs one list append (and, for OpenAI chat streams
where the wrapper asked for usage on the caller's behalf, one check to hide the
usage-only chunk). Assembling the final response and finding the usage happens
in the background (``record/assemble.py``).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..delivery import lifecycle
from ..record.callinfo import remember
from .chunks import FIRST_TOKEN as MORE_FIRST_TOKENS
from .chunks import USAGE_ONLY
from .retries import IN_FLIGHT

if TYPE_CHECKING:
    from ..record.call import CallRecord

Finish = Callable[["CallRecord"], None]


def _is_usage_only_chunk(chunk: Any) -> bool:
    return not getattr(chunk, "choices", True) and getattr(chunk, "usage", None) is not None


def _chat_token(chunk: Any) -> bool:
    for choice in getattr(chunk, "choices", None) or ():
        delta = choice.delta
        if delta is not None and (
            delta.content or delta.tool_calls or getattr(delta, "refusal", None)
        ):
            return True
    return False


def _event_token(event: Any) -> bool:
    kind = getattr(event, "type", None)
    return isinstance(kind, str) and (kind.endswith(".delta") or kind == "content_block_delta")


def _any_chunk(chunk: Any) -> bool:
    return True


# What counts as the first token: a content delta, not the role chunk or a "created" event.
_FIRST_TOKEN: dict[str, Callable[[Any], bool]] = {
    "chat.completions": _chat_token,
    "responses": _event_token,
    "messages": _event_token,
    "completion": _chat_token,  # LiteLLM's chunks are OpenAI chat chunks
    **MORE_FIRST_TOKENS,  # google-genai, mistralai (capture/chunks.py)
}


def provider_request_id(stream: Any) -> str | None:
    headers = getattr(getattr(stream, "response", None), "headers", None)
    if headers is None:
        return None
    try:
        value = headers.get("x-request-id") or headers.get("request-id")
        if value is None:  # AnthropicBedrock's streams: AWS's request id
            value = headers.get("x-amzn-requestid")
    except Exception:  # an exotic headers object must not break the call
        return None
    return value if isinstance(value, str) else None


# Streams being read: at exit or on SIGTERM each is logged as incomplete before the
# writers close (a stream in a global, or in a thread the exit does not wait for).
_open: weakref.WeakSet[StreamLog] = weakref.WeakSet()


def end_open_streams() -> None:
    for stream in list(_open):
        stream.end("incomplete")


lifecycle.on_rescue(end_open_streams)


class StreamLog:
    """What every logged stream shares (the SDKs' here, Bedrock's event streams in
    ``bedrock_streams.py``): the record, one append per chunk, the first token's time,
    and logging the call once, at the end, on a failure, a close, garbage collection,
    or exit (``end_open_streams``)."""

    __slots__ = (
        "__weakref__",
        "_done",
        "_finish",
        "_first_token",
        "_hide_usage_chunk",
        "_record",
        "_stream",
    )

    def __init__(
        self,
        stream: Any,
        record: CallRecord,
        finish: Finish,
        first_token: Callable[[Any], bool],
        hide_usage_chunk: Callable[[Any], bool] | None = None,
    ) -> None:
        self._stream = stream
        self._record = record
        self._finish = finish
        self._first_token = first_token
        self._hide_usage_chunk = hide_usage_chunk
        self._done = False
        _open.add(self)

    def _keep(self, chunk: Any) -> bool:
        """Note a chunk (one append); False for the usage-only chunk the caller never asked
        for and may index ``choices[0]`` of."""
        record = self._record
        if record.t_first is None and self._first_token(chunk):
            record.t_first = time.perf_counter()
        chunks = record.stream_chunks
        if chunks is not None:
            chunks.append(chunk)
        hidden = self._hide_usage_chunk
        return hidden is None or not hidden(chunk)

    def end(self, status: str, exc: BaseException | None = None) -> None:
        """Log the call once: ``ok`` at the end of the chunks, else why it stopped."""
        if self._done:
            return
        self._done = True
        _open.discard(self)
        record = self._record
        if exc is not None:
            record.fail(exc)
        else:
            record.t_end = time.perf_counter()
            record.status = status
        self._finish(record)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._stream!r}>"

    def __del__(self) -> None:
        if not self._done:  # abandoned without close(): garbage collection ends it
            self.end("incomplete")


class _SdkStream(StreamLog):
    """A stream an SDK call returned (``stream=True``, or a stream helper's raw stream)."""

    __slots__ = ()

    def __init__(
        self, stream: Any, record: CallRecord, finish: Finish, hide_usage_chunk: bool
    ) -> None:
        # The usage chunk the wrapper asked for on the caller's behalf, hidden from them.
        hide = USAGE_ONLY.get(record.operation, _is_usage_only_chunk) if hide_usage_chunk else None
        super().__init__(
            stream, record, finish, _FIRST_TOKEN.get(record.operation, _any_chunk), hide
        )
        record.stream_chunks = []
        remember(self, record)  # call_info(stream) works while it is read
        record.provider_request_id = provider_request_id(stream)


class LoggedStream(_SdkStream):
    """Wraps an SDK ``AsyncStream``: same chunks, same methods, logged once."""

    __slots__ = ()

    def __aiter__(self) -> LoggedStream:
        return self

    async def __anext__(self) -> Any:
        while True:
            try:
                chunk = await self._stream.__anext__()
            except StopAsyncIteration:
                self.end("ok")
                raise
            except BaseException as exc:
                self.end("error", exc)
                raise
            if self._keep(chunk):
                return chunk

    async def close(self) -> None:
        try:
            # SDK streams have close(); async generators (google-genai's streams) and
            # LiteLLM's CustomStreamWrapper only aclose().
            close = getattr(self._stream, "close", None) or self._stream.aclose
            await close()
        finally:
            self.end("incomplete")

    aclose = close

    async def __aenter__(self) -> LoggedStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class LoggedSyncStream(_SdkStream):
    """Wraps an SDK ``Stream`` (a sync client's ``stream=True``): same chunks, logged once."""

    __slots__ = ()

    def __iter__(self) -> LoggedSyncStream:
        return self

    def __next__(self) -> Any:
        while True:
            try:
                chunk = next(self._stream)
            except StopIteration:
                self.end("ok")
                raise
            except BaseException as exc:
                self.end("error", exc)
                raise
            if self._keep(chunk):
                return chunk

    def close(self) -> None:
        try:
            close = getattr(self._stream, "close", None)
            if close is not None:
                close()
        finally:
            self.end("incomplete")

    def __enter__(self) -> LoggedSyncStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class LoggedStreamManager:
    """Wraps an SDK stream helper (anthropic ``messages.stream``, openai
    ``chat.completions.stream`` and ``responses.stream``). ``async with`` (or ``with``,
    for a sync client) yields the SDK's own stream object; its raw chunk stream is
    swapped for a ``LoggedStream`` (``LoggedSyncStream``),
    so every way of consuming it (iteration, ``text_stream``, ``get_final_*``) is seen."""

    def __init__(
        self, manager: Any, record: CallRecord, finish: Finish, hide_usage_chunk: bool
    ) -> None:
        self._manager = manager
        self._record = record
        self._finish = finish
        self._hide_usage_chunk = hide_usage_chunk
        self._stream: Any = None
        self._logged: _SdkStream | None = None

    async def __aenter__(self) -> Any:
        token = IN_FLIGHT.set(self._record)  # the request goes out here: count its attempts
        try:
            stream = await self._manager.__aenter__()
        except BaseException as exc:
            self._record.fail(exc)
            self._finish(self._record)
            raise
        finally:
            IN_FLIGHT.reset(token)
        return self._opened(stream, LoggedStream)

    def __enter__(self) -> Any:
        token = IN_FLIGHT.set(self._record)  # the request goes out here: count its attempts
        try:
            stream = self._manager.__enter__()
        except BaseException as exc:
            self._record.fail(exc)
            self._finish(self._record)
            raise
        finally:
            IN_FLIGHT.reset(token)
        return self._opened(stream, LoggedSyncStream)

    def _opened(self, stream: Any, kind: type[_SdkStream]) -> Any:
        self._stream = stream
        raw = getattr(stream, "_raw_stream", None)
        self._logged = kind(raw, self._record, self._end, self._hide_usage_chunk)
        if raw is not None:
            stream._raw_stream = self._logged
        remember(stream, self._record)
        return stream

    def _end(self, record: CallRecord) -> None:
        # Anthropic's get_final_message() returns this very snapshot: let call_info find it.
        try:
            snapshot = getattr(self._stream, "current_message_snapshot", None)
        except Exception:  # the SDK asserts when no event arrived
            snapshot = None
        if snapshot is not None:
            remember(snapshot, record)
        self._finish(record)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        try:
            return await self._manager.__aexit__(exc_type, exc, tb)
        finally:
            if self._logged is not None:
                self._logged.end("incomplete")  # a no-op when the stream was read to the end

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        try:
            return self._manager.__exit__(exc_type, exc, tb)
        finally:
            if self._logged is not None:
                self._logged.end("incomplete")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._manager, name)

    def __repr__(self) -> str:
        return f"<LoggedStreamManager of {self._manager!r}>"
