"""Store URLs: parsing, checking and redacting them (``open.py`` opens the stores they
name; the adapters take their own URLs apart with these helpers).

Every URL the library shows (a store's ``url``, reprs, errors, log lines, spool
headers, CLI output) goes through :func:`redact_url` or is built without secrets.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

from .._exceptions import ConfigError

# A query parameter whose name contains one of these holds a secret: password=,
# sslpassword=, aws_secret_access_key=, aws_session_token=, X-Amz-Signature=, ...
_SECRET_WORDS = (
    "password", "passwd", "pwd", "secret", "token", "signature", "credential",
    "apikey", "api_key", "api-key",
)  # fmt: skip
UNPARSABLE = "<unparsable URL>"
# A password of a URL inside the text (an S3 store's "s3://bucket/prefix at http://..."):
# everything from the user's ':' to the '@', even if it holds '#', '?' or '/'.
_EMBEDDED_PASSWORD = re.compile(r"(://[^\s:/?#@]*):[^\s@]*@")


def is_secret_param(name: str) -> bool:
    lowered = unquote(name).lower()
    return any(word in lowered for word in _SECRET_WORDS)


def _split_authority(url: str, parts: SplitResult) -> tuple[str, str, str]:
    """(everything up to the authority, the authority, everything after it), as written."""
    if not parts.netloc:
        return "", "", url
    start = url.find("//") + 2
    return url[:start], url[start : start + len(parts.netloc)], url[start + len(parts.netloc) :]


def _garbled_userinfo(url: str, parts: SplitResult) -> bool:
    """An unencoded '#', '?' or '/' in a password cuts the authority short: the password's
    tail then lands in the path, query or fragment, with the '@' after it
    (``postgresql://u:12#34@host/db`` parses as host 'u', port 12), where no parser
    looks for a secret."""
    _, netloc, rest = _split_authority(url, parts)
    return ":" in netloc and "@" not in netloc and "@" in rest


def redact_url(url: str) -> str:
    """The URL as given, with every password (in the user part, in a query parameter,
    in a URL inside a query parameter) replaced by ``***``: for messages and reprs. A
    URL that cannot be parsed, or whose password is garbled, is not echoed at all."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a garbled netloc
    except ValueError:
        return UNPARSABLE
    if _garbled_userinfo(url, parts):
        return UNPARSABLE
    head, netloc, rest = _split_authority(url, parts)
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
    before_fragment, hash_mark, fragment = rest.partition("#")
    path, qmark, query = before_fragment.partition("?")
    if query:
        query = "&".join(_redact_param(piece) for piece in query.split("&"))
    if fragment:
        fragment = "***"  # no store URL has a fragment: a '#' here is more likely a secret's
    shown = head + netloc + path + qmark + query + hash_mark + fragment
    return _EMBEDDED_PASSWORD.sub(r"\1:***@", shown)


def _redact_param(piece: str) -> str:
    name, equals, value = piece.partition("=")
    if not equals:
        return piece
    if is_secret_param(name):
        return f"{name}=***"
    if "://" in unquote(value):
        inner = redact_url(unquote(value))
        return piece if inner == unquote(value) else f"{name}={inner}"
    return piece


def url_secrets(url: str) -> list[str]:
    """The secrets a URL carries (its password, secret query values), as written and
    decoded: for scrubbing a driver's messages, which may echo either form."""
    try:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        raw = [parts.password] if parts.password else []
    except ValueError:
        return []
    raw += [value for name, value in query if is_secret_param(name) and value]
    return [form for secret in raw for form in {secret, unquote(secret)}]


def check_url(url: str) -> None:
    """Fail on a URL Python cannot parse (often an unencoded '#', '?' or '/' in a
    password) with an error that does not repeat the URL."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a garbled netloc
        garbled = _garbled_userinfo(url, parts)
    except ValueError:
        garbled = True
    if garbled:
        raise ConfigError(
            "the database URL cannot be parsed: percent-encode special characters in the "
            "password (e.g. '#' as %23, '/' as %2F, '@' as %40)"
        ) from None


def sqlite_path(url: str) -> str:
    check_url(url)
    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise ConfigError("a SQLite URL names a file and takes no user or password")
    path = unquote(parts.netloc + parts.path)
    if path.startswith("/") and not path.startswith("//"):
        path = path[1:]  # sqlite:///rel.db -> rel.db ; sqlite:////abs.db -> /abs.db
    elif path.startswith("//"):
        path = path[1:]
    if not path:
        raise ConfigError(
            f"SQLite URL {redact_url(url)!r} names no file: use sqlite:///llm_logs.db"
        )
    return path


def file_url(url: str) -> tuple[str, dict[str, Any]]:
    """The folder a ``file://`` URL names, and the store options its query sets
    (``mode``, ``compresslevel``, ``group_read``)."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise ConfigError("a file URL names a folder and takes no user or password")
    path = unquote(parts.netloc + parts.path)
    if not path:
        raise ConfigError(f"file URL {redact_url(url)!r} names no folder: use file:///var/log/llm")
    query = dict(parse_qsl(parts.query))
    options: dict[str, Any] = {}
    if "mode" in query:
        options["mode"] = query["mode"]
    if "compresslevel" in query:
        options["compresslevel"] = parse_compresslevel(query["compresslevel"])
    if "group_read" in query:
        options["group_read"] = query["group_read"].lower() in TRUE_WORDS
    return path, options


TRUE_WORDS = ("1", "true", "yes", "on")


def parse_compresslevel(value: str) -> int:
    try:
        level = int(value)
    except ValueError:
        level = -1
    if not 0 <= level <= 9:
        raise ConfigError(f"compresslevel must be a whole number from 0 to 9, got {value!r:.20}")
    return level


def shown_url(url: str) -> str:
    """How a store is shown to a person: a SQLite database as its file's path and a
    file store as its folder's (pasted back as ``--db`` or ``--storage``, or into
    ``LoggingLLM``, either names the same file or folder from the same directory, which
    ``sqlite://tmp/x.db`` would not: that is ``tmp/x.db``), anything else as the URL
    with its secrets redacted."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme == "sqlite":
            path = sqlite_path(url)
        elif scheme == "file" and not parts.query:  # a query's options would be lost
            path = file_url(url)[0]
        else:
            return redact_url(url)
    except (ConfigError, ValueError):
        return redact_url(url)
    # A path that would be read back as a URL, or whose spaces at an end are easy to
    # lose, stays a URL.
    if "://" in path or not path.strip() or path != path.strip():
        return redact_url(url)
    return path
