"""Fault injection against the real servers, through tests/faultproxy.py: the database
unreachable mid-run, connections reset mid-batch, a stalled server, the S3 server
unreachable and really stopped and restarted, the local spool full or unwritable.

Every scenario ends the same way: the fault is undone, the spool replayed, the wrapper
closed, and the database must hold exactly the request ids the callers got back, once
each, every one with its body.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from faultlib import (
    Callers,
    assert_exactly_logged,
    fast_backoff,
    proxied_store,
    spooled_ids,
    target_of,
    wait_for_stats,
)
from faultproxy import FaultProxy
from s3server import S3Server, s3_server, s3_server_or_skip, stop  # noqa: F401
from servers import isolated_db, require

import majordomo_log as ml
from majordomo_log.stores.bodies.s3 import S3Adapter
from majordomo_log.testing import FakeProvider, fake_openai_client

SERVER_DIALECTS = ("postgresql", "mysql")


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    fast_backoff(monkeypatch)


# -- the proxy itself -------------------------------------------------------------------


@contextlib.contextmanager
def echo_server() -> Iterator[int]:
    """A threaded TCP echo server; yields its port."""
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    conns: list[socket.socket] = []

    def serve(conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            while data := conn.recv(4096):
                conn.sendall(data)

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                conns.append(conn)
                threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.close()


# How long a socket waits for what must come: only a safety net, so that a proxy that
# never answers fails instead of hanging. What must NOT come is waited for briefly.
HANG_SECONDS = 30.0


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=HANG_SECONDS)


def _echo(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(4096)
        if not chunk:
            break
        got += chunk
    return got


def test_proxy_forwards_refuses_resets_stalls_and_drops() -> None:
    with echo_server() as port, FaultProxy("127.0.0.1", port) as proxy:
        with _connect(proxy.port) as sock:
            assert _echo(sock, b"hello") == b"hello"
            # refuse: new connections are refused, the open one still works
            proxy.refuse()
            with pytest.raises(ConnectionRefusedError):
                _connect(proxy.port)
            assert _echo(sock, b"still") == b"still"
            # reset: the open connection gets an RST
            assert proxy.reset() == 1
            with pytest.raises(ConnectionResetError):
                sock.sendall(b"x")
                sock.recv(10)
        proxy.accept()  # the same port again
        with _connect(proxy.port) as sock:
            assert _echo(sock, b"back") == b"back"
            # stall: nothing comes back while stalled; held bytes arrive on resume
            proxy.stall()
            sock.sendall(b"held")
            sock.settimeout(0.3)
            with pytest.raises(TimeoutError):
                sock.recv(10)
            proxy.resume()
            sock.settimeout(HANG_SECONDS)
            assert sock.recv(10) == b"held"
            # drop: a blackhole; its connections are reset on resume (their bytes are gone)
            proxy.drop()
            sock.sendall(b"lost")
            sock.settimeout(0.3)
            with pytest.raises(TimeoutError):
                sock.recv(10)
            proxy.resume()
            sock.settimeout(HANG_SECONDS)
            with pytest.raises(ConnectionResetError):
                sock.recv(10)
        # a timed stall ends by itself
        with _connect(proxy.port) as sock:
            proxy.stall(0.2)
            assert _echo(sock, b"later") == b"later"
        assert proxy.counters.refused_windows == 1 and proxy.counters.bytes_dropped == 4


def test_proxy_periodic_resets_and_a_dead_target() -> None:
    with echo_server() as port, FaultProxy("127.0.0.1", port) as proxy:
        proxy.reset_every(0.05)
        # The reset may come before connect() has returned (a busy client thread) or any
        # time after: it is the same behaviour either way.
        with pytest.raises(ConnectionResetError), _connect(proxy.port) as sock:
            for _ in range(200):
                _echo(sock, b"ping")
                time.sleep(0.01)
        proxy.stop_resets()
        assert proxy.counters.resets >= 1
        with _connect(proxy.port) as sock:
            assert _echo(sock, b"calm") == b"calm"
    # a target that refuses: the proxy resets the client (before or after connect() returns)
    with (
        FaultProxy("127.0.0.1", _closed_port()) as proxy,
        pytest.raises((ConnectionResetError, ConnectionAbortedError)),
        _connect(proxy.port) as sock,
    ):
        sock.sendall(b"x")
        if not sock.recv(10):
            raise ConnectionResetError("closed")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- databases through the proxy ------------------------------------------------------


def _server_url(dialect: str) -> tuple[str, int]:
    return target_of(require(dialect), 5432 if dialect == "postgresql" else 3306)


@contextlib.asynccontextmanager
async def db_behind_proxy(
    dialect: str, tmp_path: Path, *, timeout: float = 3.0
) -> AsyncIterator[tuple[FaultProxy, ml.MetadataStore, ml.MetadataStore]]:
    """(proxy, store through the proxy, direct store on the same namespace)."""
    async with isolated_db(dialect, tmp_path) as direct:
        with FaultProxy(*_server_url(dialect)) as proxy:
            proxied = await proxied_store(direct, proxy.port, timeout=timeout)
            try:
                yield proxy, proxied, direct
            finally:
                proxy.restore()
                await proxied.close()


def _wrapper(
    db: ml.MetadataStore, storage: ml.BodyStore | None, spool: Path, **options: Any
) -> Any:
    options.setdefault("flush_interval", 0.2)
    return ml.LoggingLLM(fake_openai_client(FakeProvider()), db, storage, spool=spool, **options)


async def _finish(llm: Any, spool: Path) -> ml.WriterStats:
    """Fault undone: write what is queued, replay the spool, close; the spool must be empty."""
    await llm.flush()
    await llm.replay_spool()
    stats: ml.WriterStats = await llm.close()
    assert spooled_ids(spool) == [], "records left in the spool"
    assert stats.dropped == 0 and stats.failed == 0, stats
    assert stats.pending == 0, stats
    return stats


@pytest.mark.parametrize("dialect", SERVER_DIALECTS)
@pytest.mark.servers
async def test_database_unreachable_mid_run(dialect: str, tmp_path: Path) -> None:
    """(a) 200 callers keep calling while the database refuses connections and its open
    connections are reset, for a few seconds."""
    async with db_behind_proxy(dialect, tmp_path) as (proxy, db, direct):
        storage = await ml.FileStorageAdapter.create(tmp_path / "bodies")
        llm = _wrapper(db, storage, tmp_path / "spool", close_stores=False)
        callers = Callers(llm, 200)
        await asyncio.sleep(1.0)
        proxy.down()
        await asyncio.sleep(1.5)  # at least this long; longer until batches are spooled
        down_stats = await wait_for_stats(llm, lambda s: s.spilled > 0 and s.store_down)
        proxy.restore()
        await asyncio.sleep(0.5)
        ids = await callers.stop()
        stats = await _finish(llm, tmp_path / "spool")
        assert down_stats.store_down and down_stats.spilled > 0, down_stats
        assert stats.replayed == stats.spilled, stats
        await assert_exactly_logged(direct, storage, ids)
        await storage.close()


@pytest.mark.parametrize("dialect", SERVER_DIALECTS)
@pytest.mark.servers
async def test_connections_reset_mid_batch(dialect: str, tmp_path: Path) -> None:
    """(b) Every open connection is reset every 150 ms for two seconds: batches die
    mid-COPY / mid-INSERT, are retried on fresh connections or spooled."""
    async with db_behind_proxy(dialect, tmp_path) as (proxy, db, direct):
        storage = await ml.FileStorageAdapter.create(tmp_path / "bodies")
        llm = _wrapper(db, storage, tmp_path / "spool", close_stores=False, flush_interval=0.05)
        callers = Callers(llm, 200)
        await asyncio.sleep(1.0)
        proxy.reset_every(0.15)
        await asyncio.sleep(2.0)
        proxy.stop_resets()
        await asyncio.sleep(0.3)
        ids = await callers.stop()
        await _finish(llm, tmp_path / "spool")
        assert proxy.counters.resets > 0
        await assert_exactly_logged(direct, storage, ids)
        await storage.close()


@pytest.mark.parametrize("dialect", SERVER_DIALECTS)
@pytest.mark.servers
async def test_stalled_server_times_out_and_spools(dialect: str, tmp_path: Path) -> None:
    """(c) The open connections stop answering (held open, nothing flows: a stuck
    backend, a dead NAT entry); new connections work. The store's command timeout (1 s
    here) must fire, and the batch be retried on a fresh connection or spooled, instead
    of the writer hanging. (Stalling new connections too is not tested: the adapters'
    connection set-up has no timeout of its own; see the issue notes.)"""
    async with db_behind_proxy(dialect, tmp_path, timeout=1.0) as (proxy, db, direct):
        storage = await ml.FileStorageAdapter.create(tmp_path / "bodies")
        llm = _wrapper(db, storage, tmp_path / "spool", close_stores=False)
        callers = Callers(llm, 200)
        await asyncio.sleep(1.0)
        before = llm.stats()
        proxy.stall(new=False)  # every pooled connection hangs
        # The write in flight (or the next) times out; its retry on a fresh connection lands.
        during = await wait_for_stats(llm, lambda s: s.written > before.written + 50)
        proxy.resume()
        await asyncio.sleep(0.3)
        ids = await callers.stop()
        stats = await _finish(llm, tmp_path / "spool")
        assert during.written > before.written + 50, (before, during)
        assert stats.replayed == stats.spilled, stats
        await assert_exactly_logged(direct, storage, ids)
        await storage.close()


# -- the body store: S3 through the proxy, and a real restart ----------------------------


async def _s3_store(server: S3Server, bucket: str, endpoint: str | None = None) -> S3Adapter:
    kwargs = server.adapter_kwargs()
    if endpoint is not None:
        kwargs["endpoint_url"] = endpoint
    return await S3Adapter.create(bucket, connect_timeout=2.0, read_timeout=5.0, **kwargs)


async def test_s3_unreachable_mid_run(s3_server: S3Server, tmp_path: Path) -> None:  # noqa: F811
    """(d) The S3 endpoint refuses connections and resets open ones for a few seconds:
    batches (rows and bodies) are spooled, then replayed into S3 and the database."""
    bucket = s3_server.new_bucket_name()
    await s3_server.create_bucket(bucket)
    with FaultProxy(*target_of(s3_server.endpoint_url, 80)) as proxy:
        storage = await _s3_store(s3_server, bucket, f"http://127.0.0.1:{proxy.port}")
        direct = await _s3_store(s3_server, bucket)
        db = await ml.SqliteAdapter.create(tmp_path / "log.db")
        # botocore retries a refused PUT itself (about 1-3 s): no retries on top here.
        llm = _wrapper(db, storage, tmp_path / "spool", close_stores=False, max_retries=0)
        callers = Callers(llm, 200)
        await asyncio.sleep(1.0)
        proxy.down()
        await asyncio.sleep(1.5)
        down_stats = await wait_for_stats(llm, lambda s: s.spilled > 0 and s.store_down)
        proxy.restore()
        await asyncio.sleep(0.3)
        ids = await callers.stop()
        stats = await _finish(llm, tmp_path / "spool")
        assert down_stats.spilled > 0 and down_stats.store_down, down_stats
        assert stats.replayed == stats.spilled, stats
        await assert_exactly_logged(db, direct, ids)
        for store in (storage, direct, db):
            await store.close()


def _weed_ports(proc: subprocess.Popen[bytes]) -> list[int]:
    """The eight ports a ``start_seaweedfs`` server listens on, in ``_free_ports`` order."""
    flags = ("s3", "s3.port.grpc", "master", "master.port.grpc", "volume")
    flags += ("volume.port.grpc", "filer", "filer.port.grpc")
    args = dict(a.lstrip("-").split("=", 1) for a in map(str, proc.args) if "=" in a)
    return [int(args[f if "." in f else f + ".port"]) for f in flags]


@pytest.mark.servers
async def test_s3_server_crash_and_restart(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(d) A real SeaweedFS, killed (SIGKILL: a crash; a graceful stop takes weed ~15 s)
    mid-run and started again on the same ports and data directory: the client is
    pointed straight at it, no proxy. The only restart in the suite."""
    import s3server

    server, proc = s3_server_or_skip(tmp_path_factory)
    if proc is None:
        pytest.skip("a configured S3 server (MAJORDOMO_TEST_S3_ENDPOINT) is not ours to restart")
    workdir = Path(str(proc.args[5]).split("=", 1)[1]).parent  # -dir=<workdir>/data
    try:
        bucket = server.new_bucket_name()
        await server.create_bucket(bucket)
        storage = await _s3_store(server, bucket)
        db = await ml.SqliteAdapter.create(tmp_path / "log.db")
        llm = _wrapper(db, storage, tmp_path / "spool", close_stores=False, max_retries=0)
        callers = Callers(llm, 200)
        await asyncio.sleep(1.0)
        ports = _weed_ports(proc)
        proc.kill()
        proc.wait()
        stop(proc)  # forget it, remove its sockets
        # Its master's raft state goes: a master that recovers it sits out a 10 s+ election
        # before serving. The data (volumes, filer store) stays.
        shutil.rmtree(workdir / "data" / f"m{ports[2]}", ignore_errors=True)
        down_stats = await wait_for_stats(llm, lambda s: s.spilled > 0 and s.store_down)
        monkeypatch.setattr(s3server, "_free_ports", lambda count: ports)
        _, proc = await asyncio.to_thread(s3server.start_seaweedfs, workdir)
        await asyncio.sleep(0.3)
        ids = await callers.stop()
        stats = await _finish(llm, tmp_path / "spool")
        assert down_stats.spilled > 0 and down_stats.store_down, down_stats
        assert stats.replayed == stats.spilled, stats
        await assert_exactly_logged(db, storage, ids)
        await storage.close()
        await db.close()
    finally:
        s3server._terminate(proc)  # waited for at exit, with the session's servers


# -- the local spool full or unwritable -------------------------------------------------


async def _calls(llm: Any, count: int) -> list[str]:
    async def one(k: int) -> str:
        resp = await llm.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"call {k}"}]
        )
        return ml.call_info(resp).request_id

    return list(await asyncio.gather(*(one(k) for k in range(count))))


@pytest.mark.servers
async def test_spool_full_keeps_records_in_memory_then_counts_drops(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """(e) Database down, spool capped at 40 kB: what the spool takes is replayed later;
    what it cannot take waits in memory up to the budget (100 records) and is written when
    the database is back; only what fits neither is dropped, counted under "spool_full"."""
    async with db_behind_proxy("postgresql", tmp_path) as (proxy, db, direct):
        storage = await ml.FileStorageAdapter.create(tmp_path / "bodies")
        proxy.down()
        llm = _wrapper(
            db, storage, tmp_path / "spool", close_stores=False, spool_max_bytes=40_000,
            flush_interval=0.01, batch_size=20, max_retries=1, max_queue_records=100,
        )  # fmt: skip
        ids: list[str] = []
        for _ in range(15):  # many small batches: some fit, then the cap is reached
            ids += await _calls(llm, 20)
            await llm.flush(timeout=0.2)
        during = llm.stats()
        in_spool = spooled_ids(tmp_path / "spool")
        dropped = during.dropped_by_reason.get("spool_full", 0)
        assert 0 < len(in_spool) < len(ids), during
        assert during.pending > 0 and dropped > 0, during
        assert during.queue_records <= 100, during
        assert len(in_spool) + during.pending + dropped == len(ids), during
        proxy.restore()
        stats = await _finish_allowing_drops(llm, tmp_path / "spool")
        assert stats.dropped == dropped and stats.dropped_by_reason == {"spool_full": dropped}
        assert "records dropped" in caplog.text
        rows = [
            str(r["request_id"]) for r in await direct.fetch("SELECT request_id FROM llm_requests")
        ]
        assert len(rows) == len(set(rows)) == len(ids) - dropped
        assert set(in_spool) <= set(rows) <= set(ids)
        await storage.close()


async def _finish_allowing_drops(llm: Any, spool: Path) -> ml.WriterStats:
    await llm.flush()
    await llm.replay_spool()
    stats: ml.WriterStats = await llm.close()
    assert spooled_ids(spool) == [] and stats.pending == 0, stats
    return stats


@pytest.mark.servers
async def test_unwritable_spool_keeps_records_in_memory(tmp_path: Path) -> None:
    """(e) The spool directory cannot be created (its parent is a regular file; we may be
    root, who ignores permissions): with the database down the records wait in memory
    (nothing dropped, callers unaffected, no hang), and are written when it is back."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file")
    async with db_behind_proxy("postgresql", tmp_path) as (proxy, db, direct):
        proxy.down()
        llm = _wrapper(db, None, blocker / "spool", close_stores=False, max_retries=1)
        ids = await _calls(llm, 150)
        stats = await llm.flush(timeout=1.0)
        assert (stats.pending, stats.dropped, stats.spilled, stats.written) == (150, 0, 0, 0)
        proxy.restore()
        stats = await llm.flush(timeout=60)  # the next probe finds the database back
        assert (stats.pending, stats.dropped, stats.written) == (0, 0, 150), stats
        await llm.close()
        await assert_exactly_logged(direct, None, ids)
