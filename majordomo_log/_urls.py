"""Open a store from a URL: the same strings the CLI takes.

sqlite:///relative/path.db     sqlite:////absolute/path.db
postgresql://user@host/db      mysql://user@host/db
file:///var/log/llm            s3://bucket/prefix?endpoint_url=...
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ._exceptions import ConfigError
from .adapters.base import BodyStore, MetadataStore

_SECRET_PARAMS = frozenset({"password", "passwd", "pwd", "secret", "token", "sslpassword"})


def redact_url(url: str) -> str:
    """The URL with any password (in the user part or a query parameter) replaced,
    for messages and reprs. A URL that cannot be parsed is not echoed at all."""
    try:
        parts = urlsplit(url)
        password = parts.password
        query = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc
    if password is not None:
        netloc = netloc.rsplit("@", 1)[1]
        netloc = f"{parts.username}:***@{netloc}" if parts.username else f":***@{netloc}"
    if any(k.lower() in _SECRET_PARAMS for k, _ in query):
        shown = "&".join(
            f"{k}=***" if k.lower() in _SECRET_PARAMS else f"{k}={v}" for k, v in query
        )
        return parts._replace(netloc=netloc, query=shown).geturl()
    return parts._replace(netloc=netloc).geturl()


def check_url(url: str) -> None:
    """Fail on a URL Python cannot parse (often an unencoded '#', '?' or '/' in a
    password) with an error that does not repeat the URL."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a garbled netloc
    except ValueError:
        raise ConfigError(
            "the database URL cannot be parsed: percent-encode special characters in the "
            "password (e.g. '#' as %23, '/' as %2F, '@' as %40)"
        ) from None


def sqlite_path(url: str) -> str:
    parts = urlsplit(url)
    path = unquote(parts.netloc + parts.path)
    if path.startswith("/") and not path.startswith("//"):
        path = path[1:]  # sqlite:///rel.db -> rel.db ; sqlite:////abs.db -> /abs.db
    elif path.startswith("//"):
        path = path[1:]
    if not path:
        raise ConfigError(f"SQLite URL {url!r} names no file: use sqlite:///llm_logs.db")
    return path


async def open_db(url: str, **options: Any) -> MetadataStore:
    """Open (and migrate) the metadata store a URL names."""
    check_url(url)
    scheme = urlsplit(url).scheme.lower()
    if scheme == "sqlite":
        from .adapters.sqlite import SqliteAdapter

        return await SqliteAdapter.create(sqlite_path(url), **options)
    if scheme in ("postgresql", "postgres", "mysql", "mariadb"):
        from . import _lazy

        adapter_cls = _lazy.load(
            "PostgresAdapter" if scheme.startswith("postgres") else "MySQLAdapter"
        )
        result: MetadataStore = await adapter_cls.create(url, **options)
        return result
    raise ConfigError(
        f"unsupported database URL {redact_url(url)!r}: use sqlite:///file.db, "
        "postgresql://... or mysql://..."
    )


async def open_storage(url: str, **options: Any) -> BodyStore:
    """Open the body store a URL names."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        from .adapters.files import FileStorageAdapter

        path = unquote(parts.netloc + parts.path)
        if not path:
            raise ConfigError(f"file URL {url!r} names no folder: use file:///var/log/llm")
        query = dict(parse_qsl(parts.query))
        if "mode" in query:
            options.setdefault("mode", query["mode"])
        if "compresslevel" in query:
            options.setdefault("compresslevel", int(query["compresslevel"]))
        return await FileStorageAdapter.create(path, **options)
    if scheme == "s3":
        from . import _lazy

        result: BodyStore = await _lazy.load("S3Adapter").from_url(url, **options)
        return result
    raise ConfigError(
        f"unsupported storage URL {redact_url(url)!r}: use file:///folder or s3://bucket/prefix"
    )
