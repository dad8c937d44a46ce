"""The dashboard's HTTP side: a stdlib ``ThreadingHTTPServer`` that answers GET only,
routes each path to its page, and turns every failure into an HTML page with a status.

Pages: ``/`` (overview), ``/budgets``, ``/calls`` (most expensive), ``/call/<request_id>``,
and ``/static/<name>`` for the files of ``assets.py``. Queries run on the stores' own
loop thread (``backend.py``); each request waits for its page at most
``request_timeout`` seconds. At most ``max_pages`` pages are computed at once (one loop,
one connection: more would only queue); a page asked beyond that is a 503 "busy" at once.
A connection that sends nothing for ``idle_timeout`` seconds is closed, so half-sent
requests do not hold a thread each.

Read-only and local by design:

* bound to 127.0.0.1 unless told otherwise; a request whose ``Host`` is not the address
  served (or ``localhost``) is refused, so a web page elsewhere cannot read the
  dashboard through a DNS name rebound to 127.0.0.1. Bound to a wildcard address
  (0.0.0.0, ::), a request may name localhost, a loopback address, one of this
  machine's addresses (the one it arrived on included), its host name, or a name given
  in ``allow_hosts`` (``--allow-host``), and no other;
* GET only (HEAD, POST and the rest: 405); the log is opened read-only, nothing is ever
  written;
* every response carries a Content-Security-Policy allowing scripts, styles and images
  from the dashboard itself only (no inline script, no third party, no framing) and
  ``X-Content-Type-Options: nosniff``; pages are ``no-store``;
* errors: a bad parameter is a 400 page saying which, an unknown page or call a 404,
  a store that fails a 500 or 503 page with the store's message (stores never put a
  password in one; the dashboard's own URL text has it removed too), never a traceback.
  The log URL is shown without its password.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import socket
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .._exceptions import MajordomoLogError, StoreUnavailable
from .._log import logger
from ..budgets.status import budget_status
from . import assets, bodies, pages, queries
from .backend import Backend, QueryTimeout
from .html import Html, error_page, page
from .overview import overview_page
from .params import BadRequest, NotFound, calls_params, overview_params, single

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
REQUEST_TIMEOUT = 30.0
IDLE_TIMEOUT = 30.0  # seconds a connection may stay silent (also mid-request)
MAX_PAGES = 4  # pages computed at once
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'none'; font-src 'none'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
_CALL_PATH = re.compile(r"/call/([^/]{1,100})")
_LOCAL_NAMES = ("127.0.0.1", "localhost", "::1")
_WILDCARDS = ("", "0.0.0.0", "::")


def machine_names() -> set[str]:
    """This machine's host name, fully qualified name and addresses (best effort)."""
    names = {socket.gethostname().lower(), socket.getfqdn().lower()}
    for name in list(names):
        try:
            names |= {str(info[4][0]).lower() for info in socket.getaddrinfo(name, None)}
        except OSError:
            pass
    return {n for n in names if n}


def _loopback(name: str) -> bool:
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


log = logger.getChild("dashboard")


class Busy(Exception):
    """Already ``max_pages`` pages being computed (503, at once)."""


class Response:
    def __init__(
        self, status: int, body: bytes, content_type: str, cache: str = "no-store"
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.cache = cache
        self.etag: str | None = None


class DashboardServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        backend: Backend,
        request_timeout: float,
        idle_timeout: float = IDLE_TIMEOUT,
        max_pages: int = MAX_PAGES,
        allow_hosts: Iterable[str] = (),
    ) -> None:
        self.backend = backend
        self.request_timeout = request_timeout
        self.idle_timeout = idle_timeout
        self.pages = threading.BoundedSemaphore(max_pages)
        if ":" in address[0]:  # an IPv6 literal (::1, ::)
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)
        host = address[0]
        # Hosts a request may name: the address served, localhost, loopback addresses,
        # those given; on a wildcard address this machine's own names and addresses too.
        self.wildcard = host in _WILDCARDS
        named = {h.strip().lower().strip("[]") for h in allow_hosts if h.strip()}
        self.allowed_hosts = frozenset(
            {host.lower(), *_LOCAL_NAMES, *named, *(machine_names() if self.wildcard else ())}
        )


class Handler(BaseHTTPRequestHandler):
    server: DashboardServer
    server_version = "majordomo-log-ui"
    sys_version = ""
    timeout = IDLE_TIMEOUT  # the socket's; setup() takes the server's

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.idle_timeout)

    # -- methods -----------------------------------------------------------------------

    def do_GET(self) -> None:
        self._send(self._respond())

    def _refuse(self) -> None:
        response = self._error(
            HTTPStatus.METHOD_NOT_ALLOWED, "the dashboard is read-only: GET only"
        )
        self._send(response, extra={"Allow": "GET"})

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_TRACE = do_CONNECT = _refuse

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's errors (a malformed request line, an unknown method) as our page."""
        try:
            status = HTTPStatus(code)
        except ValueError:
            status = HTTPStatus.BAD_REQUEST
        self._send(self._error(status, message or status.phrase))

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    # -- routing -----------------------------------------------------------------------

    def _respond(self) -> Response:
        try:
            self._check_host()
            return self._route()
        except BadRequest as exc:
            return self._error(HTTPStatus.BAD_REQUEST, str(exc))
        except NotFound as exc:
            return self._error(HTTPStatus.NOT_FOUND, str(exc))
        except Busy as exc:
            return self._error(HTTPStatus.SERVICE_UNAVAILABLE, str(exc))
        except QueryTimeout as exc:
            return self._error(HTTPStatus.GATEWAY_TIMEOUT, str(exc))
        except StoreUnavailable as exc:
            log.warning("dashboard: the log is unavailable: %s", self._clean(str(exc)))
            return self._error(HTTPStatus.SERVICE_UNAVAILABLE, f"the log is unavailable: {exc}")
        except MajordomoLogError as exc:
            log.warning("dashboard: a query failed: %s", self._clean(str(exc)))
            return self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"reading the log failed: {exc}")
        except Exception as exc:  # a bug: the page says so, without details
            log.error("dashboard: %s on %s", type(exc).__name__, self.path[:200], exc_info=True)
            return self._error(
                HTTPStatus.INTERNAL_SERVER_ERROR,
                f"the dashboard failed ({type(exc).__name__}); see the majordomo_log logger",
            )

    def _check_host(self) -> None:
        allowed = self.server.allowed_hosts
        host = (self.headers.get("Host") or "").strip().lower()
        if not host:  # an HTTP/1.0 client; a browser always names the host
            return
        if host.startswith("["):  # [v6]:port
            name = host[1:].split("]", 1)[0]
        else:
            name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        if name in allowed or _loopback(name):
            return
        if self.server.wildcard and name == str(self.connection.getsockname()[0]).lower():
            return  # the address the request came in on: this machine's
        raise BadRequest(
            "this dashboard answers requests addressed to "
            f"{self.server.server_address[0]!s}, localhost or a name given with --allow-host"
        )

    def _route(self) -> Response:
        parts = urlsplit(self.path)
        path = parts.path
        try:
            query = parse_qs(parts.query, keep_blank_values=True, max_num_fields=20)
        except ValueError:
            raise BadRequest("too many query parameters") from None
        if path.startswith("/static/"):
            return self._asset(path.removeprefix("/static/"))
        if not self.server.pages.acquire(blocking=False):
            raise Busy("the dashboard is busy with other pages: try again in a moment")
        try:
            return self._page_for(path, query)
        finally:
            self.server.pages.release()

    def _page_for(self, path: str, query: dict[str, list[str]]) -> Response:
        now = dt.datetime.now(dt.timezone.utc)
        backend = self.server.backend
        if path == "/":
            params = overview_params(query, now)
            figures = self._run(queries.overview(self._db(), params))
            body = overview_page(figures)
            return self._page("Overview", body, "/", charts=True)
        if path == "/budgets":
            single(query, ())
            status = self._run(budget_status(self._db(), now))
            return self._page(
                "Budgets", pages.budgets_page(status, now, backend.source), "/budgets"
            )
        if path == "/calls":
            calls = calls_params(query, now)
            rows = self._run(queries.expensive_calls(self._db(), calls))
            return self._page("Expensive calls", pages.calls_page(rows, calls), "/calls")
        match = _CALL_PATH.fullmatch(path)
        if match:
            single(query, ())
            request_id = unquote(match[1])
            return self._call_page(request_id)
        raise NotFound(f"no page {path[:80]!r}: the pages are /, /budgets and /calls")

    def _call_page(self, request_id: str) -> Response:
        backend = self.server.backend
        row = self._run(queries.call(self._db(), request_id))
        if row is None:
            raise NotFound(f"no call {request_id[:60]!r} in {backend.source}")
        body = self._run(queries.call_body(backend.storage, backend.storage_problem, row))
        return self._page(f"Call {row['request_id']}", bodies.call_body(row, body), "/calls")

    def _asset(self, name: str) -> Response:
        data = assets.read(name)
        if data is None:
            raise NotFound(f"no static file {name[:60]!r}")
        response = Response(HTTPStatus.OK, data, assets.content_type(name), cache="no-cache")
        response.etag = assets.etag(data)
        if self.headers.get("If-None-Match") == response.etag:
            response.status, response.body = HTTPStatus.NOT_MODIFIED, b""
        return response

    # -- helpers -----------------------------------------------------------------------

    def _db(self) -> Any:
        db = self.server.backend.db
        if db is None:
            raise MajordomoLogError("the log is not open")
        return db

    def _run(self, coro: Any) -> Any:
        return self.server.backend.run(coro, self.server.request_timeout)

    def _page(self, title: str, body: Html, active: str, charts: bool = False) -> Response:
        source = self.server.backend.source
        return Response(
            HTTPStatus.OK,
            page(title, body, active=active, source=source, charts=charts),
            "text/html; charset=utf-8",
        )

    def _clean(self, text: str) -> str:
        """A message without the log URL's password, should a store ever echo it."""
        password = urlsplit(self.server.backend.db_url).password
        if password:
            text = text.replace(password, "***")
        return text

    def _error(self, status: HTTPStatus, message: str) -> Response:
        body = error_page(
            status.value, status.phrase, self._clean(message), source=self.server.backend.source
        )
        return Response(status.value, body, "text/html; charset=utf-8")

    def _send(self, response: Response, extra: dict[str, str] | None = None) -> None:
        try:
            self.send_response(response.status)
            for name, value in {**SECURITY_HEADERS, **(extra or {})}.items():
                self.send_header(name, value)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Cache-Control", response.cache)
            if response.etag:
                self.send_header("ETag", response.etag)
            self.send_header("Content-Length", str(len(response.body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD" and response.body:
                self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):  # the browser went away
            pass
        self.close_connection = True


class Dashboard:
    """The dashboard over one log: ``start()`` opens the stores and serves in a thread of
    its own (tests, notebooks); ``serve_forever()`` serves in the calling thread;
    ``close()`` stops serving and closes the stores. A context manager."""

    def __init__(
        self,
        db: str,
        storage: str | None = None,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        request_timeout: float = REQUEST_TIMEOUT,
        idle_timeout: float = IDLE_TIMEOUT,
        max_pages: int = MAX_PAGES,
        allow_hosts: Iterable[str] = (),
    ) -> None:
        self.backend = Backend(db, storage)
        self.allow_hosts = tuple(allow_hosts)
        self.idle_timeout = idle_timeout
        self.max_pages = max_pages
        self.host = host
        self.port = port
        self.request_timeout = request_timeout
        self._server: DashboardServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the dashboard is not open: call open() or start()")
        host, port = str(self._server.server_address[0]), self._server.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/"

    def open(self) -> str:
        """Open the stores and bind the port; return the URL to browse."""
        if self._server is None:
            self.backend.start()
            try:
                self._server = DashboardServer(
                    (self.host, self.port),
                    self.backend,
                    self.request_timeout,
                    self.idle_timeout,
                    self.max_pages,
                    self.allow_hosts,
                )
            except BaseException:
                self.backend.close()
                raise
        return self.url

    def start(self) -> str:
        """Open, then serve in a background thread; return the URL."""
        url = self.open()
        if self._thread is None:
            assert self._server is not None
            self._thread = threading.Thread(
                target=self._server.serve_forever, name="majordomo-log-ui", daemon=True
            )
            self._thread.start()
        return url

    def serve_forever(self) -> None:
        self.open()
        assert self._server is not None
        self._server.serve_forever()

    def close(self) -> None:
        """Stop serving, close the stores. Idempotent."""
        server, self._server = self._server, None
        if server is not None:
            if self._thread is not None:
                server.shutdown()
                self._thread.join()
                self._thread = None
            server.server_close()
        self.backend.close()

    def __enter__(self) -> Dashboard:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_dashboard(
    db: str,
    storage: str | None = None,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    ready: Callable[[str], object] | None = None,
    allow_hosts: Iterable[str] = (),
) -> None:
    """Serve the dashboard over the log at ``db`` (and the bodies at ``storage``) until
    interrupted, in the calling thread. ``ready(url)`` is called once it is listening;
    ``allow_hosts``: more names a request's ``Host`` may give."""
    dashboard = Dashboard(db, storage, host=host, port=port, allow_hosts=allow_hosts)
    try:
        url = dashboard.open()
        if ready is not None:
            ready(url)
        dashboard.serve_forever()
    finally:
        dashboard.close()
