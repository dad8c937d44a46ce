"""Open a store from a URL: the same strings the CLI takes.

sqlite:///relative/path.db     sqlite:////absolute/path.db
postgresql://user@host/db      mysql://user@host/db
file:///var/log/llm            s3://bucket/prefix?endpoint_url=...

Every URL the library shows (a store's ``url``, reprs, errors, log lines, spool
headers, CLI output) goes through :func:`redact_url` or is built without secrets.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

from .._exceptions import ConfigError
from .base import BodyStore, MetadataStore

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


async def open_db(url: str, *, read_only: bool = False, **options: Any) -> MetadataStore:
    """Open (and migrate) the metadata store a URL names.

    ``read_only=True`` is for code that only reads the log (the CLI's ``report``,
    ``tail``, ``show`` and ``prices``): nothing is created or migrated, SQLite is opened
    read-only, and a database without the ``llm_requests`` table is a ``StoreError``
    that says to run ``majordomo-log migrate``."""
    check_url(url)
    scheme = urlsplit(url).scheme.lower()
    if read_only:
        options["read_only"] = True
    if scheme == "sqlite":
        from .sql.sqlite import SqliteAdapter

        return await SqliteAdapter.create(sqlite_path(url), **options)
    if scheme in ("postgresql", "postgres", "mysql", "mariadb"):
        from . import optional

        adapter_cls = optional.load(
            "PostgresAdapter" if scheme.startswith("postgres") else "MySQLAdapter"
        )
        result: MetadataStore = await adapter_cls.create(url, **options)
        return result
    raise ConfigError(
        f"unsupported database URL {redact_url(url)!r}: use sqlite:///file.db, "
        "postgresql://... or mysql://..."
    )


async def open_storage(url: str, *, read_only: bool = False, **options: Any) -> BodyStore:
    """Open the body store a URL names. ``read_only=True``: a folder that does not exist
    is an error, not created."""
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigError("the storage URL cannot be parsed") from None
    scheme = parts.scheme.lower()
    if scheme == "file":
        from .bodies.files import FileStorageAdapter

        if "@" in parts.netloc:
            raise ConfigError("a file URL names a folder and takes no user or password")
        path = unquote(parts.netloc + parts.path)
        if not path:
            raise ConfigError(
                f"file URL {redact_url(url)!r} names no folder: use file:///var/log/llm"
            )
        query = dict(parse_qsl(parts.query))
        if "mode" in query:
            options.setdefault("mode", query["mode"])
        if "compresslevel" in query:
            options.setdefault("compresslevel", parse_compresslevel(query["compresslevel"]))
        if "group_read" in query:
            options.setdefault("group_read", query["group_read"].lower() in TRUE_WORDS)
        if read_only:
            options["read_only"] = True
        return await FileStorageAdapter.create(path, **options)
    if scheme == "s3":
        from . import optional

        result: BodyStore = await optional.load("S3Adapter").from_url(url, **options)
        return result
    raise ConfigError(
        f"unsupported storage URL {redact_url(url)!r}: use file:///folder or s3://bucket/prefix"
    )


TRUE_WORDS = ("1", "true", "yes", "on")


def parse_compresslevel(value: str) -> int:
    try:
        level = int(value)
    except ValueError:
        level = -1
    if not 0 <= level <= 9:
        raise ConfigError(f"compresslevel must be a whole number from 0 to 9, got {value!r:.20}")
    return level
