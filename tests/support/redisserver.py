"""Redis for the budget tests: keys of a test's own on the shared server
(``MAJORDOMO_TEST_REDIS_URL``, found by servers.py), and a private ``redis-server`` a
test may stop and start again (an outage, then recovery).

A private server keeps nothing on disk (``--save ""``, no AOF): stopped and started
again, it comes back empty, as a restarted cache server does.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from servers import REQUIRED

START_TIMEOUT = 5.0


def free_port() -> int:
    """A TCP port nothing listens on right now (and, closed at once, nothing will)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def redis_keys(url: str) -> Iterator[str]:
    """A key prefix no other test uses on the server at ``url``; its keys are deleted
    afterwards."""
    import redis

    prefix = f"majordomo-log-test:{uuid.uuid4().hex[:12]}:"
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(url)
        try:
            keys = list(client.scan_iter(match=prefix + "*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


class RedisServer:
    """A ``redis-server`` of the test's own on a free port, in ``directory``."""

    def __init__(
        self, directory: Path, port: int | None = None, *, password: str | None = None
    ) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            reason = "redis-server is not installed: the outage tests start one of their own"
            if REQUIRED:
                pytest.fail(reason + " (MAJORDOMO_TEST_REQUIRE_SERVERS=1: servers are required)")
            pytest.skip(reason)
        self.binary = binary
        self.directory = directory
        self.port = port or free_port()
        self.password = password  # ``requirepass``: AUTH with another one is refused
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--logfile",
                str(self.directory / "redis.log"),
                *(["--requirepass", self.password] if self.password else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not self.answers():
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                reply = sock.recv(64)  # +PONG, or -NOAUTH when a password is required
                return reply.startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()  # an outage, not a shutdown: nothing is saved anyway
            self.process.wait(10)
            self.process = None


@contextmanager
def private_redis(directory: Path, *, password: str | None = None) -> Iterator[RedisServer]:
    server = RedisServer(directory, password=password)
    try:
        yield server
    finally:
        server.stop()
