"""A small threaded HTTP/1.1 server on 127.0.0.1 for ``FakeCloud``: it hands each request
to an app and writes the app's ``Reply``, a JSON body or a stream of byte chunks sent as
they come (chunked transfer encoding), which is what a streaming client must see."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .wire import JSON


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # percent-decoded
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes


@dataclass
class Reply:
    status: int = 200
    json: JSON | None = None
    stream: Iterator[bytes] | None = None  # each chunk written and flushed as it comes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


App = Callable[[Request], Reply]


class LocalServer:
    """Serves ``app`` on a free port of 127.0.0.1 from a daemon thread."""

    def __init__(self, app: App) -> None:
        handler = type("_BoundHandler", (_Handler,), {"app": staticmethod(app)})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            args=(0.05,),
            name="majordomo-fake-cloud",
            daemon=True,
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    app: App
    protocol_version = "HTTP/1.1"
    # Each stream event is its own small write: Nagle's algorithm would hold it for the
    # client's delayed ACK (40 ms), and a time to first token would measure that.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: the test output is not the place for an access log

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("content-length") or 0)
        parts = urllib.parse.urlsplit(self.path)
        request = Request(
            method=method,
            path=urllib.parse.unquote(parts.path),
            query=dict(urllib.parse.parse_qsl(parts.query)),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
        )
        reply = self.app(request)
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        if reply.stream is None:
            data = json.dumps(reply.json if reply.json is not None else {}).encode("utf-8")
            self.send_header("Content-Length", str(len(data)))
        else:
            self.send_header("Transfer-Encoding", "chunked")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if reply.stream is None:
            self.wfile.write(data)
            return
        try:
            for chunk in reply.stream:
                self.wfile.write(b"%X\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):  # the client closed the stream early
            self.close_connection = True
