"""Open a store from a URL: the same strings the CLI takes.

sqlite:///relative/path.db     sqlite:////absolute/path.db
postgresql://user@host/db      mysql://user@host/db
file:///var/log/llm            s3://bucket/prefix?endpoint_url=...

Taking the URLs apart, checking and redacting them is ``urls.py``'s job.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from .._exceptions import ConfigError
from .base import BodyStore, MetadataStore
from .urls import check_url, file_url, redact_url, sqlite_path


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

        path, url_options = file_url(url)
        for name, value in url_options.items():
            options.setdefault(name, value)
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
