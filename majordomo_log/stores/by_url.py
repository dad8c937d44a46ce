"""Stores named by URL or path in ``LoggingLLM(client, "sqlite:///llm_logs.db", "request_logs")``.

A plain path is a SQLite file (``db``) or a folder of bodies (``storage``); anything
with a scheme is a URL (``open.py``). Stores opened here are opened once per process
and URL: wrappers built again and again with the same URLs (one per request, in a
careless web handler) share one connection and one writer instead of piling them up.
They are opened on the writer thread's loop (``delivery/writer_thread.py``) and used
only there; a closed one is opened afresh the next time it is asked for.
"""

from __future__ import annotations

from os import PathLike, fspath
from pathlib import Path

from .._exceptions import ConfigError
from .base import BodyStore, MetadataStore
from .open import open_db, open_storage

StoreName = str | PathLike[str]

_opened: dict[str, MetadataStore | BodyStore] = {}


def db_url(name: StoreName) -> str:
    """``name`` as a metadata store URL: a path without a scheme is a SQLite file."""
    text = _text(name, "db")
    if text.startswith("sqlite:///"):
        # A relative file ("sqlite:///llm_logs.db") is named by its absolute path: stores
        # are shared per URL, and the same text from another working directory (a test,
        # a worker that chdir()s) is another file.
        path, query = text[len("sqlite:///") :].partition("?")[::2]
        if path and not path.startswith("/") and path != ":memory:":
            absolute = "sqlite:///" + str(Path(path).expanduser().resolve())
            return absolute + ("?" + query if query else "")
        return text
    if "://" in text:
        return text
    return "sqlite:///" + str(Path(text).expanduser().resolve())


def storage_url(name: StoreName) -> str:
    """``name`` as a body store URL: a path without a scheme is a folder of files."""
    text = _text(name, "storage")
    if "://" in text:
        return text
    return Path(text).expanduser().resolve().as_uri()


def _text(name: StoreName, what: str) -> str:
    try:
        text = fspath(name)
    except TypeError:
        raise ConfigError(f"{what} must be a store, a URL or a path") from None
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{what} must be a store, a URL or a path, got an empty name")
    return text


async def shared_db(url: str) -> MetadataStore:
    """The open metadata store for ``url`` (opened and migrated on first use)."""
    store = _opened.get(url)
    if store is None or getattr(store, "closed", False):
        store = await open_db(url)
        _opened[url] = store
    assert isinstance(store, MetadataStore)
    return store


async def shared_storage(url: str) -> BodyStore:
    """The open body store for ``url``."""
    store = _opened.get(url)
    if store is None or getattr(store, "closed", False):
        store = await open_storage(url)
        _opened[url] = store
    assert isinstance(store, BodyStore)
    return store
