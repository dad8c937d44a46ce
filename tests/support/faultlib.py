"""Shared pieces of the fault, SIGKILL and soak tests: callers that keep calling through a
wrapped fake OpenAI client, and the check that the database holds exactly the calls made,
each with its body."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import majordomo_log as ml
from majordomo_log.delivery.options import RetryOptions
from majordomo_log.delivery.spool import Spool
from majordomo_log.stores.sql.mysql import MySQLAdapter
from majordomo_log.stores.sql.postgres import PostgresAdapter


def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries in tens of milliseconds instead of up to 5 s: the same full-jitter shape."""
    monkeypatch.setattr(
        RetryOptions,
        "delay",
        lambda self, attempt: random.uniform(0.0, min(0.2, 0.01 * 2**attempt)),
    )


def via_proxy(url: str, port: int) -> str:
    """The same server URL with the proxy's port (user, password, database kept)."""
    parts = urlsplit(url)
    auth = parts.netloc.rpartition("@")[0]
    netloc = f"{auth}@127.0.0.1:{port}" if auth else f"127.0.0.1:{port}"
    return parts._replace(netloc=netloc).geturl()


def target_of(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


async def proxied_store(
    direct: ml.MetadataStore, proxy_port: int, *, timeout: float = 3.0
) -> ml.MetadataStore:
    """A second store on the namespace of ``direct`` (an ``isolated_db``), connected
    through the proxy, with short command timeouts so a stalled server is noticed."""
    if isinstance(direct, PostgresAdapter):
        from servers import POSTGRES_URL

        return await PostgresAdapter.create(
            via_proxy(POSTGRES_URL, proxy_port), schema=direct.schema, command_timeout=timeout
        )
    if isinstance(direct, MySQLAdapter):
        from servers import MYSQL_URL

        database = urlsplit(direct.url).path
        url = urlsplit(via_proxy(MYSQL_URL, proxy_port))._replace(path=database).geturl()
        return await MySQLAdapter.create(url, command_timeout=timeout, connect_timeout=timeout)
    raise TypeError(f"no proxied store for {direct!r}")


class Callers:
    """``count`` tasks that each call ``llm`` in a loop until ``stop()``; every request id
    a caller got back is in ``ids``."""

    def __init__(self, llm: Any, count: int, *, pause: float = 2.0, size: int = 64) -> None:
        self.llm = llm
        self.ids: list[str] = []
        self.errors: list[BaseException] = []
        self._stop = asyncio.Event()
        self._pause = pause
        self._text = "x" * size
        self._tasks = [asyncio.create_task(self._caller(k)) for k in range(count)]

    async def _caller(self, k: int) -> None:
        n = 0
        while not self._stop.is_set():
            try:
                resp = await self.llm.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": f"{k}/{n} {self._text}"}],
                )
            except Exception as exc:  # the wrapper must never break the caller
                self.errors.append(exc)
                return
            self.ids.append(ml.call_info(resp).request_id)
            n += 1
            with contextlib.suppress(asyncio.TimeoutError):  # stop() ends the pause
                await asyncio.wait_for(self._stop.wait(), self._pause * random.random() * 2)

    async def stop(self) -> list[str]:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        assert not self.errors, f"calls failed: {self.errors[:3]}"
        return self.ids


async def assert_exactly_logged(
    db: ml.MetadataStore, storage: ml.BodyStore | None, ids: Sequence[str]
) -> None:
    """The database holds one row per call made, no other row, and every row's body is
    readable from the body store and is that call's."""
    assert len(ids) == len(set(ids)), "request ids handed to callers are not unique"
    rows = await db.fetch("SELECT request_id, body_ref FROM llm_requests")
    got = [str(r["request_id"]) for r in rows]
    assert len(got) == len(set(got)), "duplicated rows"
    missing, extra = set(ids) - set(got), set(got) - set(ids)
    assert not missing and not extra, (
        f"{len(missing)} calls have no row (e.g. {sorted(missing)[:3]}), "
        f"{len(extra)} rows match no call (e.g. {sorted(extra)[:3]})"
    )
    if storage is None:
        return
    no_body = [str(r["request_id"]) for r in rows if not r["body_ref"]]
    assert not no_body, f"{len(no_body)} rows without a body, e.g. {no_body[:3]}"
    limit = asyncio.Semaphore(32)

    async def check(row: dict[str, Any]) -> None:
        async with limit:
            body = await storage.get(row["body_ref"])
        assert body["request_id"] == str(row["request_id"])

    await asyncio.gather(*(check(r) for r in rows))


def spooled_ids(directory: Path) -> list[str]:
    """Request ids of the records waiting in a spool directory (not rejected/)."""
    spool = Spool(directory)
    return [e.request_id for path in spool.pending() for e in spool.read(path).entries]


async def wait_for_stats(llm: Any, condition: Any, timeout: float = 30.0) -> ml.WriterStats:
    """Poll ``llm.stats()`` until ``condition(stats)``; the last stats either way (the
    caller asserts on them, so a timeout fails with the figures in the message)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        stats: ml.WriterStats = llm.stats()
        if condition(stats) or asyncio.get_running_loop().time() > deadline:
            return stats
        await asyncio.sleep(0.05)
