"""``AlertReceiver``: a real HTTP endpoint on 127.0.0.1 for testing alert sinks.

Alert sinks are tested over real HTTP on loopback, not with urllib mocked, so what a
receiver records is byte for byte what Slack, PagerDuty or a webhook would get (the raw
body, for checking a signature), and failures are real ones: statuses, ``Retry-After``,
a slow answer, a refused connection::

    with AlertReceiver() as receiver:
        receiver.fail_next(2, status=503)
        sink = SlackAlert(receiver.url + "/services/T0/B0/XXXX")
        ...
        assert receiver.wait_for(3)
        assert receiver.requests[-1].json["text"]

Answers 200 ``ok`` (Slack's success) unless told otherwise (``status=202`` for a
PagerDuty-shaped receiver). Stdlib only: ``http.server.ThreadingHTTPServer`` in a thread.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl


@dataclass(frozen=True)
class ReceivedAlert:
    """One request, as it arrived."""

    method: str
    path: str  # without the query
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: bytes  # raw: what a signature covers
    at: float  # time.monotonic() on arrival

    @property
    def json(self) -> Any:
        """The body parsed as JSON; None if it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


class AlertReceiver:
    """Records every request; answers ``status``/``body`` unless a failure is queued
    (:meth:`fail_next`); ``delay`` seconds before each answer (a slow or hanging
    receiver); :meth:`down` refuses connections until :meth:`up`."""

    def __init__(
        self,
        *,
        status: int = 200,
        body: bytes | str = b"ok",
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        self._answer = _Answer(status, _bytes(body), dict(headers or {}))
        self.delay = delay
        self._requests: list[ReceivedAlert] = []
        self._failures: deque[_Answer] = deque()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._closing = threading.Event()  # ends a delay early, so close() never hangs
        self._port = 0
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.up()

    # -- what a test reads ------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, no trailing slash."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def requests(self) -> list[ReceivedAlert]:
        with self._lock:
            return list(self._requests)

    def wait_for(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until at least ``count`` requests arrived; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self._requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._arrived.wait(left)
            return True

    # -- what a test sets -------------------------------------------------------------------

    def fail_next(
        self,
        times: int = 1,
        status: int = 503,
        *,
        body: bytes | str = b"",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the next ``times`` requests with ``status`` (e.g. 429 with
        ``headers={"Retry-After": "1"}``)."""
        with self._lock:
            answer = _Answer(status, _bytes(body), dict(headers or {}))
            self._failures.extend(answer for _ in range(times))

    def answer(
        self, status: int, body: bytes | str = b"", headers: Mapping[str, str] | None = None
    ) -> None:
        """From now on, answer every request (not failed by :meth:`fail_next`) this way."""
        with self._lock:
            self._answer = _Answer(status, _bytes(body), dict(headers or {}))

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._failures.clear()

    def down(self) -> None:
        """Stop listening: connections to the port are refused."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=10)

    def up(self) -> None:
        """Listen (again, on the same port once it has one)."""
        if self._server is not None:
            return
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                receiver._serve(self)

            do_GET = do_PUT = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                pass  # no access log in the test output

        server = http.server.ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        server.daemon_threads = True
        self._port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},  # shutdown() waits up to one interval
            name="AlertReceiver",
            daemon=True,
        )
        self._thread.start()

    def close(self) -> None:
        self._closing.set()
        self.down()

    def __enter__(self) -> AlertReceiver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- serving ------------------------------------------------------------------------------

    def _serve(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length) if length else b""
        path, _, query = handler.path.partition("?")
        request = ReceivedAlert(
            method=handler.command,
            path=path,
            query=dict(parse_qsl(query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=body,
            at=time.monotonic(),
        )
        with self._lock:
            self._requests.append(request)
            self._arrived.notify_all()
            answer = self._failures.popleft() if self._failures else self._answer
            delay = self.delay
        if delay > 0 and self._closing.wait(delay):
            return  # closing: leave without answering, as a server that died would
        try:
            handler.send_response(answer.status)
            handler.send_header("Content-Type", "text/plain; charset=utf-8")
            handler.send_header("Content-Length", str(len(answer.body)))
            for name, value in answer.headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(answer.body)
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout): nothing to answer


def _bytes(body: bytes | str) -> bytes:
    return body.encode() if isinstance(body, str) else bytes(body)
