"""What the caller reads from a Bedrock result, handed back logged: the event stream of
``converse_stream`` / ``invoke_model_with_response_stream``, and the body of
``invoke_model``.

Event streams: the same events in the same order, kept for the background (one list
append each, plus a check for the first token until it is found); the call is logged once,
when the stream ends, fails, is closed or is dropped.

Bodies: botocore hands ``invoke_model``'s body over unread, and a body can be read only
once, yet its JSON holds the usage (and it is the response the log stores). It is read
here, on the caller's path, and replaced by an equivalent body over the bytes read: for
boto3 a new ``botocore.response.StreamingBody`` (the same class, every method the same);
for aiobotocore a ``ReplayedBody`` with the async methods of aiobotocore's body (``read``,
``readinto``, ``iter_chunks``, ``iter_lines``, ``readlines``, ``async for``, ``tell``,
``async with``), anything else passed to the original (``close()``, ``headers``). The
caller waits for the body before the call returns instead of when it reads it: the same
bytes, over the same connection, a moment earlier. A read that fails is the caller's
failure: the replacement raises the same exception at the caller's first read.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from .streams import Finish, StreamLog

if TYPE_CHECKING:
    from ..record.call import CallRecord

_CHUNK_SIZE = 1024  # aiobotocore's default for `async for` and iter_chunks()


def converse_token(event: Any) -> bool:
    """``converse_stream``: the first token is the first content delta."""
    return isinstance(event, dict) and "contentBlockDelta" in event


# ``invoke_model_with_response_stream`` chunks are each model family's own JSON: a content
# delta of Claude, Nova; Llama's `generation`, Titan's `outputText`, Mistral's `outputs`.
_TOKEN_MARKERS = (
    b'"content_block_delta"',
    b'"contentBlockDelta"',
    b'"generation"',
    b'"outputText"',
    b'"outputs"',
)


def invoke_token(event: Any) -> bool:
    chunk = event.get("chunk") if isinstance(event, dict) else None
    data = chunk.get("bytes") if isinstance(chunk, dict) else None
    return isinstance(data, bytes) and any(marker in data for marker in _TOKEN_MARKERS)


class LoggedEventStream(StreamLog):
    """Wraps botocore's ``EventStream`` (sync iteration) or aiobotocore's
    ``AioEventStream`` (``async for``); its events go to ``record.stream_chunks``, which
    the caller seeded with the result's other parts (``capture/bedrock.py``)."""

    __slots__ = ("_aiter", "_iter")

    def __init__(
        self,
        stream: Any,
        record: CallRecord,
        finish: Finish,
        first_token: Callable[[Any], bool],
    ) -> None:
        super().__init__(stream, record, finish, first_token)
        self._iter: Any = None
        self._aiter: Any = None

    def __iter__(self) -> LoggedEventStream:
        return self

    def __next__(self) -> Any:
        if self._iter is None:
            # Outside the try: an AioEventStream refuses sync iteration, which is the
            # caller's mistake to see, not the call's failure.
            self._iter = iter(self._stream)
        try:
            event = next(self._iter)
        except StopIteration:
            self.end("ok")
            raise
        except BaseException as exc:
            self.end("error", exc)
            raise
        self._keep(event)
        return event

    def __aiter__(self) -> LoggedEventStream:
        return self

    async def __anext__(self) -> Any:
        if self._aiter is None:
            self._aiter = self._stream.__aiter__()
        try:
            event = await self._aiter.__anext__()
        except StopAsyncIteration:
            self.end("ok")
            raise
        except BaseException as exc:
            self.end("error", exc)
            raise
        self._keep(event)
        return event

    def close(self) -> None:
        """Both botocore's and aiobotocore's ``close()`` are plain methods."""
        try:
            self._stream.close()
        finally:
            self.end("incomplete")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # unset slots (copy, pickle): never the stream's
            raise AttributeError(name)
        return getattr(self._stream, name)


class _FailedRead(io.RawIOBase):
    """A raw stream whose every read raises the error the original read raised."""

    def __init__(self, error: Exception) -> None:
        self._error = error

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        raise self._error

    def readinto(self, buffer: Any) -> int:
        raise self._error


def replayed_sync_body(data: bytes | None, error: Exception | None) -> Any:
    """botocore's own ``StreamingBody`` over the bytes read (or over the read's error)."""
    from botocore.response import StreamingBody

    if error is not None:
        return StreamingBody(_FailedRead(error), None)
    assert data is not None
    return StreamingBody(io.BytesIO(data), len(data))


class ReplayedBody:
    """aiobotocore's ``StreamingBody`` API over bytes already read (see the module doc)."""

    def __init__(self, original: Any, data: bytes, error: Exception | None = None) -> None:
        self._original = original
        self._data = data
        self._pos = 0
        self._error = error

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # before __init__ (copy, pickle): never the original's
            raise AttributeError(name)
        return getattr(self._original, name)

    def __repr__(self) -> str:
        return f"<ReplayedBody {len(self._data)} bytes of {self._original!r}>"

    def _take(self, amt: int | None) -> bytes:
        if self._error is not None:
            raise self._error
        end = len(self._data) if amt is None or amt < 0 else min(len(self._data), self._pos + amt)
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    async def read(self, amt: int | None = None) -> bytes:
        return self._take(amt)

    async def readinto(self, b: bytearray) -> int:
        chunk = self._take(len(b))
        b[: len(chunk)] = chunk
        return len(chunk)

    def readable(self) -> bool:
        return self._pos < len(self._data)

    def tell(self) -> int:
        return self._pos

    async def iter_chunks(self, chunk_size: int = _CHUNK_SIZE) -> AsyncIterator[bytes]:
        while True:
            chunk = self._take(chunk_size)
            if not chunk:
                break
            yield chunk

    async def iter_lines(
        self, chunk_size: int = _CHUNK_SIZE, keepends: bool = False
    ) -> AsyncIterator[bytes]:
        pending = b""  # aiobotocore's algorithm, line for line
        async for chunk in self.iter_chunks(chunk_size):
            lines = (pending + chunk).splitlines(True)
            for line in lines[:-1]:
                yield line.splitlines(keepends)[0]
            pending = lines[-1]
        if pending:
            yield pending.splitlines(keepends)[0]

    async def readlines(self) -> list[bytes]:
        return [line async for line in self.iter_lines()]

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.iter_chunks(_CHUNK_SIZE)

    async def __anext__(self) -> bytes:
        chunk = self._take(_CHUNK_SIZE)
        if chunk:
            return chunk
        raise StopAsyncIteration

    anext = __anext__

    async def __aenter__(self) -> ReplayedBody:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        close = getattr(self._original, "close", None)
        if callable(close):  # releases the connection, as leaving the original would
            close()
