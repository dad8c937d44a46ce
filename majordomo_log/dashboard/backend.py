"""The stores behind the dashboard, owned by one background thread running one asyncio
loop: the HTTP server's threads hand it coroutines and wait for their results.

The stores' drivers are asyncio ones (aiosqlite, asyncpg, aiomysql, aioboto3) whose
connections and pools belong to the loop that opened them, so a single loop opens them,
runs every query and closes them; the threads that serve HTTP never touch a connection.

The log is opened as the CLI's read commands open it (``stores/open.py`` with
``read_only=True``): nothing is created, migrated or written. A SQLite file that is not
there is a ``ConfigError`` before anything is opened, and a database without the
``llm_requests`` table is the store's own ``StoreError`` (run ``majordomo-log migrate``).
A body store that cannot be opened does not stop the dashboard: call pages say why
their body cannot be shown.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from .._exceptions import ConfigError, MajordomoLogError
from ..cli.args import db_url as db_url_from
from ..cli.args import storage_url as storage_url_from
from ..stores.base import BodyStore, MetadataStore
from ..stores.open import open_db, open_storage
from ..stores.urls import shown_url, sqlite_path

T = TypeVar("T")
OPEN_TIMEOUT = 60.0  # seconds to open the stores
CLOSE_TIMEOUT = 15.0


class QueryTimeout(MajordomoLogError):
    """A page's queries took longer than the dashboard waits (504)."""


class Backend:
    """The loop thread and the stores it owns. ``start()`` opens them (raising what
    opening raised), ``run()`` runs a coroutine on the loop, ``close()`` closes both."""

    def __init__(self, db_url: str, storage_url: str | None) -> None:
        # The same strings the CLI takes: a plain path is a SQLite file, a plain folder
        # a file store.
        self.db_url = db_url_from(db_url)
        self.storage_url = None if storage_url is None else storage_url_from(storage_url)
        self.source = shown_url(self.db_url)  # for display: a path, or a URL without its password
        self.db: MetadataStore | None = None
        self.storage: BodyStore | None = None
        self.storage_problem: str | None = "no body store was given (--storage)"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="majordomo-log-ui-stores", daemon=True
        )
        self._closed = False

    def start(self) -> None:
        if urlsplit(self.db_url).scheme.lower() == "sqlite":
            path = sqlite_path(self.db_url)
            if not Path(path).is_file():
                raise ConfigError(f"no database at {path}: pass --db, or run `majordomo-log demo`")
        self._thread.start()
        try:
            self.run(self._open(), OPEN_TIMEOUT)
        except BaseException:
            self.close()
            raise

    async def _open(self) -> None:
        self.db = await open_db(self.db_url, read_only=True)
        if self.storage_url is None:
            return
        try:
            self.storage = await open_storage(self.storage_url, read_only=True)
            self.storage_problem = None
        except MajordomoLogError as exc:
            self.storage_problem = str(exc)
        except OSError as exc:
            self.storage_problem = f"{type(exc).__name__}: {exc.strerror or exc}"

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """The coroutine's result, run on the stores' loop; ``QueryTimeout`` after
        ``timeout`` seconds (the coroutine is cancelled)."""
        if self._closed:
            coro.close()
            raise MajordomoLogError("the dashboard is closed")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            raise QueryTimeout(f"the log did not answer within {timeout:g} s") from None

    def close(self) -> None:
        """Close the stores and stop the loop. Idempotent."""
        if self._closed:
            return
        if self._thread.is_alive():
            try:
                future = asyncio.run_coroutine_threadsafe(self._close_stores(), self._loop)
                future.result(CLOSE_TIMEOUT)
            except Exception:  # closing is best effort: the process is going away
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(CLOSE_TIMEOUT)
        self._closed = True
        if not self._thread.is_alive():
            self._loop.close()

    async def _close_stores(self) -> None:
        for store in (self.storage, self.db):
            if store is not None:
                try:
                    await store.close()
                except Exception:
                    pass
