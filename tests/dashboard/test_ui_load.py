"""The dashboard under load: a bounded number of pages at once (the rest a 503 "busy" at
once, not a wait behind abandoned ones), and silent connections closed."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from dashboard_log import seeded_log

from majordomo_log.dashboard import Dashboard, queries


@pytest.fixture(scope="module")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with seeded_log("sqlite", tmp_path_factory.mktemp("load"), calls=30) as seeded:
        yield seeded.db_url


def status(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_pages_beyond_the_bound_are_busy_at_once(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = queries.overview
    release = threading.Event()

    async def slow(db: Any, params: Any) -> Any:
        while not release.is_set():
            await asyncio.sleep(0.01)
        return await real(db, params)

    monkeypatch.setattr(queries, "overview", slow)
    with Dashboard(db_url, port=0, max_pages=2) as dashboard:
        held = [
            threading.Thread(target=status, args=(dashboard.url,), daemon=True) for _ in range(2)
        ]
        for thread in held:
            thread.start()
        time.sleep(0.5)
        started = time.monotonic()
        code, body = status(dashboard.url + "budgets")
        assert code == 503 and "busy" in body and time.monotonic() - started < 5
        assert status(dashboard.url + "static/dashboard.css")[0] == 200  # needs no slot
        release.set()
        for thread in held:
            thread.join(30)
        assert status(dashboard.url + "budgets")[0] == 200


def test_a_silent_connection_is_closed(db_url: str) -> None:
    with Dashboard(db_url, port=0, idle_timeout=0.5) as dashboard:
        parts = urlsplit(dashboard.url)
        with socket.create_connection((parts.hostname or "", parts.port or 0), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
            started = time.monotonic()
            while s.recv(4096):  # the server may answer 408 or just close
                pass
            assert time.monotonic() - started < 5
