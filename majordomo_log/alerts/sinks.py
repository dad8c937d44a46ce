"""Alert sinks: where an ``AlertEvent`` goes (a signed webhook, Slack, PagerDuty, the log).

A sink's ``send()`` blocks and raises :class:`SinkError` when delivery fails; it is called
on the dispatcher's thread (``dispatch.py``), never on a caller's, and the dispatcher
decides from ``SinkError.transient`` whether to try again: 5xx, 408, 429 (with its
``Retry-After``), a refused connection and a timeout are transient; any other 4xx, and a
3xx (redirects are not followed), is final. Anything with a ``name`` and a
``send(event)`` is a sink (:class:`AlertSink`), so users can write their own.

Secrets: a sink URL may carry credentials, and the PagerDuty routing key and the webhook
secret are secrets. None appears in a sink's ``repr()`` or ``name``, in a log line or in
an exception message: a sink shows only ``scheme://host[:port]`` (``transport.py`` does the
HTTP and the scrubbing).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import socket
import time
from typing import Protocol, runtime_checkable

from .._exceptions import ConfigError
from .._log import logger
from .events import AlertEvent
from .payloads import SOURCE, json_bytes, log_line, pagerduty_event, slack_message, webhook_body
from .transport import Endpoint, check_timeout, parse_endpoint, post_json

SIGNATURE_HEADER = "X-Majordomo-Signature"
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
USER_AGENT = "majordomo-log-alerts"
_ERROR_TEXT_SHOWN = 200  # characters of a refusal's body kept in the error (Slack's reason)


@runtime_checkable
class AlertSink(Protocol):
    """Where alerts go. ``name`` is shown in logs and ``stats()``: never put a secret in
    it. ``send`` blocks until the alert is delivered and raises on failure: a
    :class:`SinkError` with ``transient`` set says whether trying again may help; any other
    exception is taken as transient and only its type is ever shown."""

    @property
    def name(self) -> str: ...

    def send(self, event: AlertEvent) -> None: ...


class SinkError(Exception):
    """A sink could not deliver an alert. ``transient``: trying again later may succeed
    (a 5xx, 408, 429, a refused connection, a timeout); otherwise the alert was refused for
    good (another 4xx) and is not retried. ``retry_after``: seconds the server asked to
    wait (``Retry-After``). The message names only ``scheme://host[:port]``."""

    def __init__(
        self,
        message: str,
        *,
        transient: bool = False,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.status = status
        self.retry_after = retry_after


class TransientSinkError(SinkError):
    """A failure worth retrying: the server or the network, not the alert."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, transient=True, status=status, retry_after=retry_after)


# -- signing --------------------------------------------------------------------------------


def sign_payload(body: bytes, secret: str | bytes, timestamp: int | None = None) -> str:
    """The ``X-Majordomo-Signature`` value for ``body``: ``t=<unix seconds>,v1=<hex>``, the
    HMAC-SHA256 under ``secret`` of ``f"{t}.".encode() + body``. The timestamp is signed
    too, so a captured request cannot be replayed later with a fresh one."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={t},v1={_mac(_key(secret), t, body)}"


def verify_signature(
    body: bytes | str,
    header: str,
    secret: str | bytes,
    tolerance: float | None = 300,
    *,
    now: float | None = None,
) -> bool:
    """For receivers: True when ``header`` (the ``X-Majordomo-Signature`` value) signs
    ``body`` (the raw request bytes, before any JSON parsing) under ``secret``, and its
    timestamp is within ``tolerance`` seconds of now (None: any age). Never raises on a
    malformed header: it is simply not valid. Several ``v1=`` entries are accepted (any one
    matching), for rotating secrets."""
    raw = body.encode() if isinstance(body, str) else bytes(body)
    if not isinstance(header, str):
        return False
    timestamps: list[str] = []
    signatures: list[str] = []
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t":
            timestamps.append(value)
        elif name == "v1" and value.isascii():
            signatures.append(value)
    if len(timestamps) != 1 or not signatures:
        return False
    stamp = timestamps[0]
    if not (stamp.isascii() and stamp.isdigit()):
        return False
    t = int(stamp)
    current = time.time() if now is None else now
    if tolerance is not None and abs(current - t) > tolerance:
        return False
    expected = _mac(_key(secret), t, raw)
    return any(hmac.compare_digest(expected, signature) for signature in signatures)


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else bytes(secret)


def _mac(key: bytes, t: int, body: bytes) -> str:
    return hmac.new(key, f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def _deliver(
    endpoint: Endpoint,
    body: bytes,
    timeout: float,
    headers: dict[str, str] | None = None,
    secrets: tuple[str, ...] = (),
) -> None:
    """POST; return on a 2xx, else raise the :class:`SinkError` the answer calls for. Raised
    here, outside any ``except``: nothing chains back to urllib's URL-bearing errors."""
    reply = post_json(endpoint, body, timeout, headers, secrets)
    if reply.ok:
        return
    shown = " ".join(reply.text.split())[:_ERROR_TEXT_SHOWN]
    if reply.status is None:
        raise TransientSinkError(f"{endpoint.display}: {shown}")
    status = reply.status
    message = f"{endpoint.display}: HTTP {status}" + (f" ({shown})" if shown else "")
    if status in (408, 429) or status >= 500:
        raise TransientSinkError(message, status=status, retry_after=reply.retry_after)
    if 300 <= status < 400:
        message += "; redirects are not followed: configure the final URL"
    raise SinkError(message, status=status)


# -- the sinks ------------------------------------------------------------------------------


class WebhookAlert:
    """POSTs ``event.to_dict()`` (plus ``"source": "majordomo-log"``) as JSON. With a
    ``secret``, each request carries ``X-Majordomo-Signature: t=<unix>,v1=<hex>``, the
    HMAC-SHA256 of ``f"{t}.{body}"``; receivers check it with :func:`verify_signature`.
    Any 2xx is delivered."""

    def __init__(self, url: str, secret: str | bytes | None = None, timeout: float = 5.0) -> None:
        self._endpoint = parse_endpoint(url, "WebhookAlert url")
        if secret is not None and (not isinstance(secret, (str, bytes)) or not secret):
            raise ConfigError("WebhookAlert secret must be a non-empty str or bytes")
        self._secret = None if secret is None else _key(secret)
        self._timeout = check_timeout(timeout, "WebhookAlert")
        self.name = f"webhook:{self._endpoint.display}"

    def __repr__(self) -> str:
        signed = self._secret is not None
        return f"WebhookAlert(url={self._endpoint.display!r}, signed={signed})"

    def send(self, event: AlertEvent) -> None:
        body = json_bytes(webhook_body(event))
        headers = {}
        hidden: tuple[str, ...] = ()
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign_payload(body, self._secret)
            hidden = (self._secret.decode("utf-8", "replace"),)
        _deliver(self._endpoint, body, self._timeout, headers, hidden)


class SlackAlert:
    """Posts to a Slack incoming webhook: ``text`` (the notification line) and ``blocks``
    (a header and the figures). Slack answers 200 ``ok``; its refusals (400
    ``invalid_payload``, 403, 404 ``no_service``, 410 ``channel_is_archived``) are final."""

    def __init__(self, webhook_url: str, timeout: float = 5.0) -> None:
        self._endpoint = parse_endpoint(webhook_url, "SlackAlert webhook_url")
        self._timeout = check_timeout(timeout, "SlackAlert")
        self.name = f"slack:{self._endpoint.display}"

    def __repr__(self) -> str:
        return f"SlackAlert(webhook_url={self._endpoint.display + '/…'!r})"

    def send(self, event: AlertEvent) -> None:
        _deliver(self._endpoint, json_bytes(slack_message(event)), self._timeout)


class PagerDutyAlert:
    """Sends an Events API v2 ``trigger`` (one incident per dedup key). PagerDuty answers
    202; a 400 (a malformed event, a bad routing key) is final, 429 and 5xx are retried.
    ``source`` is the affected system PagerDuty shows (default: this host's name)."""

    def __init__(
        self,
        routing_key: str,
        url: str = PAGERDUTY_URL,
        timeout: float = 5.0,
        *,
        source: str | None = None,
    ) -> None:
        if (
            not isinstance(routing_key, str)
            or not routing_key.strip()
            or any(ch.isspace() for ch in routing_key)
        ):
            raise ConfigError("PagerDutyAlert routing_key must be a non-empty string")
        self._routing_key = routing_key
        self._endpoint = parse_endpoint(url, "PagerDutyAlert url")
        self._timeout = check_timeout(timeout, "PagerDutyAlert")
        self._source = source or socket.gethostname() or SOURCE
        self.name = f"pagerduty:{self._endpoint.display}"

    def __repr__(self) -> str:
        return f"PagerDutyAlert(url={self._endpoint.display!r}, routing_key='***')"

    def send(self, event: AlertEvent) -> None:
        body = json_bytes(pagerduty_event(event, self._routing_key, self._source))
        _deliver(self._endpoint, body, self._timeout, secrets=(self._routing_key,))


class LogAlert:
    """Logs each alert as one line through the ``majordomo_log`` logger, at ``level``.
    Never raises: the application's logging configuration decides where it goes."""

    name = "log"

    def __init__(self, level: int | str = logging.WARNING) -> None:
        number = logging.getLevelName(level) if isinstance(level, str) else level
        if isinstance(number, bool) or not isinstance(number, int):
            raise ConfigError("LogAlert level must be a logging level (an int or a level name)")
        self._level = number

    def __repr__(self) -> str:
        return f"LogAlert(level={logging.getLevelName(self._level)!r})"

    def send(self, event: AlertEvent) -> None:
        try:
            logger.log(self._level, "%s", log_line(event))
        except Exception:  # a log sink that raised would only be retried into the same log
            pass
