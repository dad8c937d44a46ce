"""A real HTTP server on 127.0.0.1 that answers like an LLM provider, for SDKs whose
HTTP client cannot be handed a transport (google-genai's async client speaks aiohttp;
LiteLLM builds its own clients).

``LocalServer`` is the plumbing: a free port, a daemon thread per connection (stdlib
``ThreadingHTTPServer``), every request recorded, queued failures, and streamed replies
written chunk by chunk as they are paced, so time to first token is real. The dialects
are ``GeminiServer`` (``testing/gemini.py``), ``MistralServer`` (``testing/mistral.py``)
and ``OpenAIServer`` below, which serves a :class:`FakeProvider` over the socket.

Use as a context manager, or call ``close()``::

    with GeminiServer(usage={"prompt_token_count": 100}) as server:
        client = fake_gemini_client(server)
"""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx2

from .keys import remember_sent_keys
from .provider import FakeProvider
from .wire import JSON, ReceivedRequest, parse_json


@dataclass(frozen=True)
class Reply:
    """A whole answer: status, headers and a JSON body."""

    status: int
    body: JSON
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamReply:
    """A streamed answer: each part is (seconds to wait before it, its bytes), sent as
    one HTTP chunk as soon as its wait is over."""

    parts: Iterable[tuple[float, bytes]]
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200


class LocalServer:
    """The plumbing of a provider-shaped server; a dialect overrides ``answer``."""

    def __init__(self) -> None:
        self.requests: list[ReceivedRequest] = []
        self._failures: deque[tuple[int, str | None]] = deque()
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                server._serve(self)

            do_GET = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the test output is not the place for access logs

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name=f"{type(self).__name__}", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, no trailing slash."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def fail_next(self, status: int = 429, times: int = 1, *, message: str | None = None) -> None:
        """Answer the next ``times`` requests with this dialect's error body."""
        with self._lock:
            self._failures.extend((status, message) for _ in range(times))

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._failures.clear()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- what a dialect provides --------------------------------------------------------

    def answer(self, request: ReceivedRequest) -> Reply | StreamReply:
        raise NotImplementedError

    def error(self, status: int, message: str | None) -> Reply:
        return Reply(status, {"error": {"code": status, "message": message or "Error."}})

    # -- serving ------------------------------------------------------------------------

    def _serve(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        raw = handler.rfile.read(length) if length else b""
        path, _, query = handler.path.partition("?")
        headers = {k.lower(): v for k, v in handler.headers.items()}
        remember_sent_keys(headers)
        request = ReceivedRequest(
            method=handler.command,
            path=path,
            headers=headers,
            body=parse_json(raw),
            query=dict(p.partition("=")[::2] for p in query.split("&") if p),
        )
        with self._lock:
            self.requests.append(request)
            failure = self._failures.popleft() if self._failures else None
        reply = self.error(*failure) if failure is not None else self.answer(request)
        try:
            if isinstance(reply, StreamReply):
                _write_stream(handler, reply)
            else:
                _write_json(handler, reply)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (an abandoned stream): nothing to answer


def _write_json(handler: http.server.BaseHTTPRequestHandler, reply: Reply) -> None:
    data = _json_bytes(reply.body)
    handler.send_response(reply.status)
    handler.send_header("content-type", "application/json; charset=utf-8")
    handler.send_header("content-length", str(len(data)))
    for name, value in reply.headers.items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)
    handler.wfile.flush()


def _write_stream(handler: http.server.BaseHTTPRequestHandler, reply: StreamReply) -> None:
    handler.send_response(reply.status)
    handler.send_header("content-type", "text/event-stream")
    handler.send_header("cache-control", "no-cache")
    handler.send_header("transfer-encoding", "chunked")
    for name, value in reply.headers.items():
        handler.send_header(name, value)
    handler.end_headers()
    for wait, data in reply.parts:
        if wait > 0:
            time.sleep(wait)
        if data:
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            handler.wfile.flush()
    handler.wfile.write(b"0\r\n\r\n")
    handler.wfile.flush()


def _json_bytes(body: Any) -> bytes:
    import json

    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def sse(data: Any) -> bytes:
    """One server-sent event holding ``data`` as JSON (or a literal such as ``[DONE]``)."""
    text = data if isinstance(data, str) else _json_bytes(data).decode("utf-8")
    return f"data: {text}\n\n".encode()


def paced(
    events: Iterable[bytes], first_delay: float, delay: float
) -> Iterator[tuple[float, bytes]]:
    """Events with the waits the delay knobs ask for: ``first_delay`` before the first
    content event, ``delay`` before each later one."""
    for index, event in enumerate(events):
        yield (first_delay if index == 0 else delay), event


class OpenAIServer(LocalServer):
    """A :class:`FakeProvider` (OpenAI and Anthropic shapes) served over a socket: for
    clients such as LiteLLM that are pointed at a URL (``api_base=server.url + "/v1"``).
    Its knobs are the provider's (``server.provider.openai_usage = ...``); failures are
    queued on it too (``server.provider.fail_next(...)``). A streamed reply is relayed
    chunk by chunk as the provider paces it."""

    def __init__(self, provider: FakeProvider | None = None) -> None:
        self.provider = provider or FakeProvider()
        super().__init__()

    def answer(self, request: ReceivedRequest) -> Reply | StreamReply:
        raise NotImplementedError  # _serve is replaced below: the provider does it all

    def _serve(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        raw = handler.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in handler.headers.items()}
        sent = httpx2.Request(
            handler.command, "http://openai.local" + handler.path, headers=headers, content=raw
        )
        with self._lock:
            self.requests.append(
                ReceivedRequest(
                    method=handler.command,
                    path=handler.path.partition("?")[0],
                    headers=headers,
                    body=parse_json(raw),
                    query={},
                )
            )
        try:
            asyncio.run(self._relay(sent, handler))
        except (BrokenPipeError, ConnectionResetError):
            pass

    async def _relay(
        self, sent: httpx2.Request, handler: http.server.BaseHTTPRequestHandler
    ) -> None:
        response = await self.provider.transport.handle_async_request(sent)
        streamed = response.headers.get("content-type", "").startswith("text/event-stream")
        handler.send_response(response.status_code)
        for name, value in response.headers.items():
            if name.lower() not in ("content-length", "transfer-encoding", "content-encoding"):
                handler.send_header(name, value)
        if not streamed:
            data = await response.aread()
            handler.send_header("content-length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
            handler.wfile.flush()
            return
        handler.send_header("transfer-encoding", "chunked")
        handler.end_headers()
        async for data in response.aiter_raw():
            if data:
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                handler.wfile.flush()
        handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()
