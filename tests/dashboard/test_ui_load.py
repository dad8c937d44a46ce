"""The dashboard under load: a bounded number of pages at once (the rest a 503 "busy" at
once, not a wait behind abandoned ones), and silent connections closed."""

from __future__ import annotations

import asyncio
import http.client
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


def named(url: str, host: str) -> int:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        conn.putrequest("GET", "/budgets", skip_host=True)
        conn.putheader("Host", host)
        conn.endheaders()
        answer = conn.getresponse()
        answer.read()
        return answer.status
    finally:
        conn.close()


def test_a_wildcard_address_still_refuses_other_host_names(db_url: str) -> None:
    """DNS rebinding: bound to 0.0.0.0, a name that is not this machine's is refused."""
    with Dashboard(db_url, host="0.0.0.0", port=0, allow_hosts=["dash.internal"]) as dashboard:
        url = f"http://127.0.0.1:{urlsplit(dashboard.url).port}/"
        port = urlsplit(url).port
        assert named(url, f"attacker.example:{port}") == 400
        assert named(url, "attacker.example") == 400
        for ok in ("localhost", "127.0.0.1", "127.0.0.2", "[::1]", "dash.internal"):
            assert named(url, f"{ok}:{port}") == 200, ok
        assert named(url, f"{socket.gethostname()}:{port}") == 200


def test_the_command_takes_allow_host() -> None:
    from majordomo_log.cli.main import build_parser

    args = build_parser().parse_args(
        ["ui", "--host", "0.0.0.0", "--allow-host", "a.example", "--allow-host", "b.example"]
    )
    assert args.allow_host == ["a.example", "b.example"]


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6 here")
def test_an_ipv6_address_is_served(db_url: str) -> None:
    with Dashboard(db_url, host="::1", port=0) as dashboard:
        assert dashboard.url.startswith("http://[::1]:")
        assert status(dashboard.url + "budgets")[0] == 200
