"""Redis URLs for ``budget_store=``: checked when a wrapper is built, so that a typo is a
``ConfigError`` at start-up and not a budget that silently counts only locally, and
shown without their secrets.

A Redis URL's password is in its user part (``redis://:secret@host``) or, for a unix
socket, in its query (``unix:///run/redis.sock?password=secret``): what is shown of a
URL is built from its scheme, host, port and database only, never echoed.
"""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

from .._exceptions import ConfigError

SCHEMES = ("redis", "rediss", "unix")
DEFAULT_PORT = 6379


def describe_redis_url(url: str) -> str:
    """``scheme://host:port/db`` (``unix://path?db=N`` for a socket): what a repr, a
    log line or an error shows of the URL. Assumes ``check_redis_url`` passed."""
    parts = urlsplit(url)
    db = _database(url)
    if parts.scheme == "unix":
        return f"unix://{unquote(parts.path)}?db={db}"
    host = parts.hostname or "localhost"
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    return f"{parts.scheme}://{host}:{parts.port or DEFAULT_PORT}/{db}"


def check_redis_url(url: str) -> None:
    """Raise ``ConfigError`` for a URL redis-py would not open; the message names what
    is wrong without repeating the URL (it may hold a password)."""
    if not isinstance(url, str) or not url:
        raise ConfigError("budget_store= takes a redis://, rediss:// or unix:// URL")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a garbled netloc or port
    except ValueError:
        raise ConfigError(
            "the budget_store URL cannot be parsed: percent-encode special characters in "
            "the password (e.g. '#' as %23, '/' as %2F, '@' as %40) and check the port"
        ) from None
    if parts.scheme not in SCHEMES:
        raise ConfigError(
            f"budget_store= takes a redis://, rediss:// or unix:// URL, "
            f"not a {parts.scheme or 'scheme-less'} one"
        )
    if parts.scheme == "unix":
        if not parts.path:
            raise ConfigError("a unix:// budget_store URL names the socket's path")
    elif not parts.hostname:
        raise ConfigError(f"the {parts.scheme}:// budget_store URL names no host")
    _database(url)


def _database(url: str) -> int:
    """The database number: ``?db=N``, else the path of a redis(s) URL, else 0."""
    parts = urlsplit(url)
    values = parse_qs(parts.query).get("db")
    text = values[0] if values else ""
    if not text and parts.scheme != "unix":
        text = unquote(parts.path).strip("/")
    if not text:
        return 0
    if not text.isdigit():
        raise ConfigError("the budget_store URL's database must be a number (redis://host:6379/0)")
    return int(text)
