"""The sinks' transport: POSTing an alert's JSON with the standard library, with the
URL's secrets kept out of everything shown.

``urllib`` is enough for a handful of small POSTs, so no dependency. Its errors, though,
can print the URL, and a sink URL may be a credential (``https://user:pw@host/``, Slack's
token in the path, a ``?token=`` query). So :func:`post_json` never raises: it turns every
outcome into a :class:`Reply` whose text was written here (or scrubbed of the URL's
pieces), and the sink raises its own error from that, with no traceback chaining back to
urllib's. Only ``scheme://host[:port]`` (``Endpoint.display``) is ever shown.

Redirects are not followed: urllib would resend a POST as a GET without its body, and
could carry the Authorization header to another host. Configure the final URL.
"""

from __future__ import annotations

import base64
import email.utils
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import IO, Any

from .._exceptions import ConfigError

USER_AGENT = "majordomo-log-alerts"
_BODY_READ_MAX = 64 * 1024


@dataclass(frozen=True, repr=False)
class Endpoint:
    """A checked sink URL."""

    url: str  # what is requested: no userinfo (sent as an Authorization header instead)
    display: str  # scheme://host[:port]: all of it that is ever shown
    authorization: str | None
    secrets: tuple[str, ...]  # the URL's pieces, scrubbed from any text shown

    def __repr__(self) -> str:
        return f"Endpoint({self.display!r})"


@dataclass(frozen=True)
class Reply:
    """How a POST went. ``status`` None: no HTTP answer (refused, timed out). ``text``: the
    answer's body, or what went wrong; safe to show either way."""

    status: int | None
    text: str
    retry_after: float | None = None  # seconds, from a Retry-After header

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def parse_endpoint(url: object, what: str) -> Endpoint:
    """Check ``url`` at configuration, so a typo fails there and not at the first alert.
    No message quotes the URL: it may be the secret."""
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{what} must be an http:// or https:// URL")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise ConfigError(f"{what} holds whitespace or control characters")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigError(f"{what} is not a valid URL (its host or port)") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ConfigError(f"{what} must be an http:// or https:// URL")
    host = parts.hostname
    if not host:
        raise ConfigError(f"{what} has no host")
    netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port is not None else "")
    authorization = None
    secrets = [url, parts.netloc, parts.path, parts.query, parts.fragment]
    if parts.username is not None or parts.password is not None:
        user = urllib.parse.unquote(parts.username or "")
        password = urllib.parse.unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        authorization = f"Basic {token}"
        secrets += [parts.netloc.rpartition("@")[0], user, password, token]
    secrets += parts.path.split("/")
    secrets += [value for _, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)]
    return Endpoint(
        url=urllib.parse.urlunsplit((scheme, netloc, parts.path or "/", parts.query, "")),
        display=f"{scheme}://{netloc}",
        authorization=authorization,
        secrets=secret_list(secrets),
    )


def secret_list(candidates: Iterable[str]) -> tuple[str, ...]:
    """Longest first, so a whole URL goes before a part of it. Pieces under 6 characters
    ("v2", "T0") are left: they are not secrets, and scrubbing them garbles the text."""
    return tuple(sorted({s for s in candidates if len(s) >= 6}, key=len, reverse=True))


def scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def check_timeout(value: object, what: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(f"{what} timeout must be a positive number of seconds")
    return float(value)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx then ends the attempt as an HTTPError


_OPENER = urllib.request.build_opener(_NoRedirect)


def post_json(
    endpoint: Endpoint,
    body: bytes,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    secrets: Iterable[str] = (),
) -> Reply:
    """POST ``body`` as JSON. Never raises; ``secrets`` (a routing key, a signing secret)
    are scrubbed from the reply's text along with the URL's pieces."""
    request = urllib.request.Request(endpoint.url, data=body, method="POST")
    request.add_header("Content-Type", "application/json; charset=utf-8")
    request.add_header("User-Agent", USER_AGENT)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    if endpoint.authorization is not None:
        request.add_header("Authorization", endpoint.authorization)
    hidden = secret_list([*endpoint.secrets, *secrets])
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return Reply(response.status, scrub(_read_text(response), hidden))
    except urllib.error.HTTPError as exc:
        retry_after = retry_after_seconds(exc.headers.get("Retry-After") if exc.headers else None)
        text = scrub(_read_text(exc), hidden)
        exc.close()
        return Reply(exc.code, text, retry_after)
    except urllib.error.URLError as exc:
        return Reply(None, _reason(exc.reason, timeout))
    except TimeoutError:
        return Reply(None, f"no answer within {timeout:g}s")
    except Exception as exc:  # http.client's errors (a torn reply): the type says enough
        return Reply(None, f"{type(exc).__name__}")


def _read_text(stream: IO[bytes]) -> str:
    try:
        return stream.read(_BODY_READ_MAX).decode("utf-8", "replace")
    except Exception:  # a body cut short says nothing the status does not
        return ""


def _reason(reason: object, timeout: float) -> str:
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g}s"
    if isinstance(reason, OSError):
        return f"could not connect ({type(reason).__name__}: {reason.strerror or 'failed'})"
    return f"could not connect ({type(reason).__name__})"


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` value (delta-seconds or an HTTP date); None if
    absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(moment.timestamp() - time.time(), 0.0)
