"""Streaming calls: pass every chunk through untouched, keep a reference to it,
and log the call once when the stream ends, fails or is abandoned.

On the hot path a chunk costs one list append (and, for OpenAI chat streams
where the wrapper asked for usage on the caller's behalf, one check to hide the
usage-only chunk). Assembling the final response and finding the usage happens
in the background (``assemble_stream``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..record.callinfo import remember
from ..record.usage import field_of

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
}


def provider_request_id(stream: Any) -> str | None:
    headers = getattr(getattr(stream, "response", None), "headers", None)
    if headers is None:
        return None
    try:
        value = headers.get("x-request-id") or headers.get("request-id")
    except Exception:  # an exotic headers object must not break the call
        return None
    return value if isinstance(value, str) else None


class LoggedStream:
    """Wraps an SDK ``AsyncStream``: same chunks, same methods, logged once."""

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
        self, stream: Any, record: CallRecord, finish: Finish, hide_usage_chunk: bool
    ) -> None:
        self._stream = stream
        self._record = record
        self._finish = finish
        self._hide_usage_chunk = hide_usage_chunk
        self._first_token = _FIRST_TOKEN.get(record.operation, _any_chunk)
        self._done = False
        record.stream_chunks = []
        record.provider_request_id = provider_request_id(stream)

    def __aiter__(self) -> LoggedStream:
        return self

    async def __anext__(self) -> Any:
        record = self._record
        while True:
            try:
                chunk = await self._stream.__anext__()
            except StopAsyncIteration:
                self.end("ok")
                raise
            except BaseException as exc:
                self.end("error", exc)
                raise
            if record.t_first is None and self._first_token(chunk):
                record.t_first = time.perf_counter()
            chunks = record.stream_chunks
            if chunks is not None:
                chunks.append(chunk)
            if self._hide_usage_chunk and _is_usage_only_chunk(chunk):
                continue  # the caller did not ask for it and may index choices[0]
            return chunk

    def end(self, status: str, exc: BaseException | None = None) -> None:
        """Log the call once: ``ok`` at the end of the chunks, else why it stopped."""
        if self._done:
            return
        self._done = True
        record = self._record
        if exc is not None:
            record.fail(exc)
        else:
            record.t_end = time.perf_counter()
            record.status = status
        self._finish(record)

    async def close(self) -> None:
        try:
            await self._stream.close()
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

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def __repr__(self) -> str:
        return f"<LoggedStream of {self._stream!r}>"

    def __del__(self) -> None:
        if not self._done:  # abandoned without close(): garbage collection ends it
            self.end("incomplete")


class LoggedStreamManager:
    """Wraps an SDK stream helper (anthropic ``messages.stream``, openai
    ``chat.completions.stream`` and ``responses.stream``). ``async with`` yields the
    SDK's own stream object; its raw chunk stream is swapped for a ``LoggedStream``,
    so every way of consuming it (iteration, ``text_stream``, ``get_final_*``) is seen."""

    def __init__(
        self, manager: Any, record: CallRecord, finish: Finish, hide_usage_chunk: bool
    ) -> None:
        self._manager = manager
        self._record = record
        self._finish = finish
        self._hide_usage_chunk = hide_usage_chunk
        self._stream: Any = None
        self._logged: LoggedStream | None = None

    async def __aenter__(self) -> Any:
        try:
            stream = await self._manager.__aenter__()
        except BaseException as exc:
            self._record.fail(exc)
            self._finish(self._record)
            raise
        self._stream = stream
        raw = getattr(stream, "_raw_stream", None)
        self._logged = LoggedStream(raw, self._record, self._end, self._hide_usage_chunk)
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

    def __getattr__(self, name: str) -> Any:
        return getattr(self._manager, name)

    def __repr__(self) -> str:
        return f"<LoggedStreamManager of {self._manager!r}>"


# -- background: turn the chunks into one response and one usage -------------------


def assemble_stream(record: CallRecord) -> None:
    """Worker thread: set ``response``, ``usage`` and ``served_model`` from the chunks."""
    chunks = record.stream_chunks
    if chunks is None:
        return
    record.stream_chunks = None
    if record.operation == "chat.completions":
        _assemble_chat(record, chunks)
    elif record.operation == "responses":
        _assemble_responses(record, chunks)
    elif record.operation == "messages":
        _assemble_messages(record, chunks)
    else:
        record.response = {"chunks": [_dump(c) for c in chunks]}
        for chunk in chunks:
            record.usage = getattr(chunk, "usage", None) or record.usage


def _dump(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump(mode="json", warnings=False) if callable(dump) else value


def _assemble_chat(record: CallRecord, chunks: list[Any]) -> None:
    choices: dict[int, dict[str, Any]] = {}
    head: Any = None
    for chunk in chunks:
        head = head or chunk
        record.served_model = getattr(chunk, "model", None) or record.served_model
        if getattr(chunk, "usage", None) is not None:
            record.usage = chunk.usage
        for choice in getattr(chunk, "choices", None) or ():
            slot = choices.setdefault(
                choice.index,
                {
                    "index": choice.index,
                    "role": None,
                    "content": [],
                    "tool_calls": {},
                    "finish_reason": None,
                },
            )
            delta = choice.delta
            if delta is not None:
                slot["role"] = delta.role or slot["role"]
                if delta.content:
                    slot["content"].append(delta.content)
                for call in delta.tool_calls or ():
                    tool = slot["tool_calls"].setdefault(
                        call.index, {"id": None, "type": "function", "name": "", "arguments": ""}
                    )
                    tool["id"] = call.id or tool["id"]
                    if call.function is not None:
                        tool["name"] += call.function.name or ""
                        tool["arguments"] += call.function.arguments or ""
            slot["finish_reason"] = choice.finish_reason or slot["finish_reason"]
    record.response = {
        "id": getattr(head, "id", None),
        "object": "chat.completion",
        "model": record.served_model,
        "choices": [
            {
                "index": slot["index"],
                "message": {
                    "role": slot["role"] or "assistant",
                    "content": "".join(slot["content"]),
                    **(
                        {
                            "tool_calls": [
                                {
                                    "id": t["id"],
                                    "type": t["type"],
                                    "function": {"name": t["name"], "arguments": t["arguments"]},
                                }
                                for _, t in sorted(slot["tool_calls"].items())
                            ]
                        }
                        if slot["tool_calls"]
                        else {}
                    ),
                },
                "finish_reason": slot["finish_reason"],
            }
            for _, slot in sorted(choices.items())
        ],
        "usage": _dump(record.usage),
        "stream_chunks": len(chunks),
    }


def _assemble_responses(record: CallRecord, chunks: list[Any]) -> None:
    final: Any = None
    for event in chunks:
        response = getattr(event, "response", None)
        if response is not None:  # created / in_progress / completed / incomplete / failed
            final = response
    if final is not None:
        record.response = final
        record.usage = getattr(final, "usage", None)
        record.served_model = getattr(final, "model", None)
        outcome = getattr(final, "status", None)
        if record.status == "ok" and outcome in ("failed", "incomplete"):
            # The stream ended normally but the response did not (response.failed or
            # response.incomplete events): say so instead of "ok".
            record.status = "error" if outcome == "failed" else "incomplete"
            error = getattr(final, "error", None)
            record.error_type = "response." + outcome
            record.error_message = None if error is None else str(getattr(error, "message", error))
    else:
        record.response = {"events": [_dump(e) for e in chunks]}


def _assemble_messages(record: CallRecord, chunks: list[Any]) -> None:
    usage: dict[str, Any] = {}
    message: dict[str, Any] = {}
    texts: dict[int, list[str]] = {}
    for event in chunks:
        kind = getattr(event, "type", None)
        if kind == "message_start":
            message = _dump(event.message)
            _merge_usage(usage, message.get("usage"))
            record.served_model = message.get("model")
        elif kind == "content_block_delta":
            text = field_of(event.delta, "text")
            if text:
                texts.setdefault(event.index, []).append(text)
        elif kind == "message_delta":
            _merge_usage(usage, _dump(getattr(event, "usage", None)))
            message["stop_reason"] = field_of(event.delta, "stop_reason")
    if texts:
        message["content"] = [
            {"type": "text", "text": "".join(parts)} for _, parts in sorted(texts.items())
        ]
    message["usage"] = usage or None
    message["stream_events"] = len(chunks)
    record.response = message
    record.usage = usage or None


def _merge_usage(into: dict[str, Any], update: Any) -> None:
    """Anthropic stream usage is cumulative: the latest non-null value of each field wins."""
    if isinstance(update, dict):
        for key, value in update.items():
            if value is not None:
                into[key] = value
