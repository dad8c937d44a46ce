"""How each store reports a fault, against the real thing: PostgreSQL and MariaDB
losing their connections mid-batch, a schema that no longer matches, an S3 server
stopped and started again on the same ports, a disk that is really full.

The rule under test (stores/base.py): a fault that may pass is ``StoreUnavailable``
(the writer retries, then spools), a refusal is a plain ``StoreError`` (not retried);
a body store refuses a body for good by returning None in its place.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import json
import logging
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiomysql
import asyncpg
import pymysql
import pytest
import s3server
from s3server import S3Server, s3_server  # noqa: F401
from servers import isolated_db, require
from test_sql_servers import _kill_connections

import majordomo_log as ml
from majordomo_log._log import reset_warnings
from majordomo_log.record.call import CallContext, CallRecord
from majordomo_log.record.ids import uuid7
from majordomo_log.record.pricing import PriceTable
from majordomo_log.record.rows import build_row
from majordomo_log.record.usage import Usage
from majordomo_log.stores.bodies import s3 as s3_adapter
from majordomo_log.stores.sql import mysql as mysql_adapter
from majordomo_log.stores.sql import postgres as postgres_adapter

SERVERS = ["postgresql", "mysql"]
PRICES = PriceTable.load()
WHEN = dt.datetime(2026, 3, 4, 12, 0, tzinfo=dt.timezone.utc)


def rows(count: int) -> list[tuple[Any, ...]]:
    """``count`` fresh, valid llm_requests rows."""
    ctx = CallContext(prices=PRICES, api_key_alias="faults", tags={}, secrets=())
    out = []
    for _ in range(count):
        record = CallRecord(
            uuid7(), WHEN.timestamp(), 1.0, "openai", "chat.completions", "gpt-4o", False, {},
            "ab" * 32, ctx,
        )  # fmt: skip
        record.t_end = 1.5
        record.served_model = "gpt-4o"
        record.usage = Usage.additive(100, 10)
        out.append(build_row(record, None))
    return out


async def count(db: Any) -> int:
    (row,) = await db.fetch("SELECT COUNT(*) AS n FROM llm_requests")
    return int(row["n"])


# -- metadata stores: connections killed mid-use -------------------------------------------


async def _active_session(db: Any) -> bool:
    """True once the server shows one of the store's sessions running a statement."""
    if db.dialect == "postgresql":
        conn = await asyncpg.connect(require("postgresql"))
        try:
            busy = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                "AND datname = current_database() AND state = 'active' "
                "AND query ILIKE '%llm_requests%'"
            )
        finally:
            await conn.close()
        return bool(busy)
    database = db.url.rsplit("/", 1)[1]
    parts = urlsplit(require("mysql"))
    conn = await aiomysql.connect(
        host=parts.hostname, port=parts.port or 3306, user=parts.username or "root",
        password=parts.password or "", autocommit=True,
    )  # fmt: skip
    try:
        async with conn.cursor() as cur:
            await cur.execute(
                "SELECT COUNT(*) FROM information_schema.processlist "
                "WHERE db = %s AND command = 'Query'",
                (database,),
            )
            (busy,) = await cur.fetchone()
    finally:
        conn.close()
    return bool(busy)


@pytest.mark.parametrize("dialect", SERVERS)
@pytest.mark.servers
async def test_connections_killed_mid_batch_are_unavailable_never_refused(
    dialect: str, tmp_path: Path
) -> None:
    async with isolated_db(dialect, tmp_path) as db:
        first = rows(10)
        await db.write_batch(first, [])
        # Killed while idle in the pool: the next batch finds a dead connection.
        assert await _kill_connections(db) >= 1
        second = rows(10)
        outcomes = await _write_until_done(db, second)
        # Killed while a large batch is on the wire.
        third = rows(20_000)
        task = asyncio.create_task(db.write_batch(third, []))
        for _ in range(2000):
            if task.done() or await _active_session(db):
                break
            await asyncio.sleep(0.005)
        killed = await _kill_connections(db)
        try:
            await task
            outcomes.append("ok")
        except ml.StoreUnavailable:
            outcomes.append("unavailable")
        # No other kind of error got out, and the store recovered by itself: the retry of
        # the same batch writes it once (a batch half-written before the kill included).
        outcomes += await _write_until_done(db, third)
        assert outcomes[-1] == "ok" and set(outcomes) <= {"ok", "unavailable"}
        assert killed >= 1 or task.done()
        assert await count(db) == 10 + 10 + 20_000


async def _write_until_done(db: Any, batch: list[tuple[Any, ...]]) -> list[str]:
    """Write the batch as the writer would: retrying StoreUnavailable, never StoreError."""
    outcomes = []
    for _ in range(5):
        try:
            await db.write_batch(batch, [])
        except ml.StoreUnavailable:
            outcomes.append("unavailable")
            continue
        outcomes.append("ok")
        return outcomes
    raise AssertionError(f"the store did not recover: {outcomes}")


@pytest.mark.parametrize(
    "dialect", ["sqlite", *(pytest.param(d, marks=pytest.mark.servers) for d in SERVERS)]
)
@pytest.mark.parametrize("change", ["column dropped", "table missing"])
async def test_schema_mismatch_is_a_permanent_error(
    dialect: str, change: str, tmp_path: Path
) -> None:
    async with isolated_db(dialect, tmp_path) as db:
        await db.write_batch(rows(2), [])
        if change == "column dropped":
            await db.fetch("ALTER TABLE llm_requests DROP COLUMN served_model")
        else:  # renamed away, and back afterwards: the report views stay valid
            await db.fetch("ALTER TABLE llm_requests RENAME TO llm_requests_away")
        with pytest.raises(ml.StoreError) as info:
            await db.write_batch(rows(2), [])
        assert not isinstance(info.value, ml.StoreUnavailable), info.value
        if change == "table missing":
            await db.fetch("ALTER TABLE llm_requests_away RENAME TO llm_requests")
            await db.write_batch(rows(2), [])  # the same store works again once it matches
            assert await count(db) == 4


@pytest.mark.parametrize("dialect", SERVERS)
@pytest.mark.servers
async def test_unreachable_server_is_unavailable_and_keeps_the_password_out(
    dialect: str,
) -> None:
    parts = urlsplit(require(dialect))
    secret = f"pw-{uuid.uuid4().hex}"
    url = parts._replace(netloc=f"someone:{secret}@127.0.0.1:1").geturl()
    cls: Any = ml.PostgresAdapter if dialect == "postgresql" else ml.MySQLAdapter
    with pytest.raises(ml.StoreUnavailable) as info:
        await cls.create(url)
    assert secret not in str(info.value) and secret not in repr(info.value)


@pytest.mark.servers
async def test_mysql_bad_credentials_are_permanent_and_secret() -> None:
    parts = urlsplit(require("mysql"))
    secret = f"pw-{uuid.uuid4().hex}"
    url = parts._replace(netloc=f"root:{secret}@{parts.hostname}:{parts.port or 3306}").geturl()
    with pytest.raises(ml.StoreError) as info:
        await ml.MySQLAdapter.create(url)
    assert not isinstance(info.value, ml.StoreUnavailable)
    assert "Access denied" in str(info.value) and secret not in str(info.value)


@pytest.mark.servers
async def test_a_closed_store_refuses_instead_of_retrying(tmp_path: Path) -> None:
    for dialect in ("sqlite", *SERVERS):
        async with isolated_db(dialect, tmp_path) as db:
            await db.close()
            with pytest.raises(ml.StoreError) as info:
                await db.write_batch(rows(1), [])
            assert not isinstance(info.value, ml.StoreUnavailable)
            assert "closed" in str(info.value)


# The driver errors the servers send, by code: the classification tables, checked one by
# one (these are the drivers' own exception classes, not stand-ins for our stores).
@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (asyncpg.exceptions.SerializationError("40001"), True),
        (asyncpg.exceptions.DeadlockDetectedError("40P01"), True),
        (asyncpg.exceptions.AdminShutdownError("57P01"), True),
        (asyncpg.exceptions.CrashShutdownError("57P02"), True),
        (asyncpg.exceptions.CannotConnectNowError("57P03"), True),
        (asyncpg.exceptions.TooManyConnectionsError("53300"), True),
        (asyncpg.exceptions.DiskFullError("53100"), True),
        (asyncpg.exceptions.ConnectionDoesNotExistError("08003"), True),
        (asyncpg.exceptions.ConnectionFailureError("08006"), True),
        (asyncpg.exceptions.LockNotAvailableError("55P03"), True),
        (asyncpg.exceptions.QueryCanceledError("57014"), True),
        (asyncpg.exceptions.InterfaceError("connection is closed"), True),
        (ConnectionResetError(errno.ECONNRESET, "reset"), True),
        (asyncio.TimeoutError(), True),
        (asyncpg.exceptions.InvalidPasswordError("28P01"), False),
        (asyncpg.exceptions.InvalidAuthorizationSpecificationError("28000"), False),
        (asyncpg.exceptions.UndefinedTableError("42P01"), False),
        (asyncpg.exceptions.UndefinedColumnError("42703"), False),
        (asyncpg.exceptions.InvalidCatalogNameError("3D000"), False),
        (asyncpg.exceptions.NumericValueOutOfRangeError("22003"), False),
        (asyncpg.exceptions.NotNullViolationError("23502"), False),
        (asyncpg.exceptions.InterfaceError("another operation is in progress"), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_postgres_classification(error: BaseException, transient: bool) -> None:
    assert postgres_adapter._transient(error) is transient
    kind = type(postgres_adapter._error("ctx", error))
    assert (kind is ml.StoreUnavailable) is transient and issubclass(kind, ml.StoreError)


@pytest.mark.parametrize(
    ("code", "transient"),
    [
        (2002, True), (2003, True), (2006, True), (2013, True), (2055, True), (1040, True),
        (1203, True), (1205, True), (1213, True), (1927, True), (1053, True), (1969, True),
        (3024, True), (1021, True), (1317, True), (1045, False), (1044, False), (1049, False),
        (1146, False), (1054, False), (1064, False), (1366, False), (1406, False),
        (1062, False), (1048, False),
    ],
)  # fmt: skip
def test_mysql_classification(code: int, transient: bool) -> None:
    error = pymysql.err.OperationalError(code, "message")
    assert mysql_adapter._transient(error) is transient
    assert mysql_adapter._transient(pymysql.err.InterfaceError(0, "Not connected"))


def _client_error(code: str, status: int) -> Any:
    from botocore.exceptions import ClientError

    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutObject",
    )


@pytest.mark.parametrize(
    ("code", "status", "transient"),
    [
        ("SlowDown", 503, True), ("ServiceUnavailable", 503, True), ("InternalError", 500, True),
        ("RequestTimeout", 400, True), ("Throttling", 400, True), ("Whatever", 502, True),
        ("TooManyRequests", 429, True), ("AccessDenied", 403, False),
        ("NoSuchBucket", 404, False), ("InvalidAccessKeyId", 403, False),
        ("SignatureDoesNotMatch", 403, False), ("EntityTooLarge", 400, False),
    ],
)  # fmt: skip
def test_s3_classification(code: str, status: int, transient: bool) -> None:
    assert s3_adapter._transient(_client_error(code, status)) is transient


# -- S3: the server stopped, and started again on the same ports ---------------------------


@pytest.fixture
def same_ports(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Make start_seaweedfs reuse the ports it picked first (a restart on the same
    endpoint, as a real outage ends)."""
    chosen: list[int] = []
    pick = s3server._free_ports

    def ports(count: int) -> list[int]:
        if not chosen:
            chosen.extend(pick(count))
        return list(chosen)

    monkeypatch.setattr(s3server, "_free_ports", ports)
    yield chosen


@pytest.mark.servers
async def test_s3_server_stopped_then_restarted(tmp_path: Path, same_ports: list[int]) -> None:
    from majordomo_log.testing import FakeProvider, fake_openai_client

    workdir = tmp_path / "weed"
    server, proc = await asyncio.to_thread(s3server.start_seaweedfs, workdir)
    try:
        bucket = server.new_bucket_name()
        await server.create_bucket(bucket)
        options = dict(connect_timeout=1, read_timeout=3, **server.adapter_kwargs())
        stores = {
            mode: await ml.S3Adapter.create(bucket, mode=mode, **options)
            for mode in ("object", "segment")
        }
        db = await ml.SqliteAdapter.create(tmp_path / "log.db")
        llm = ml.LoggingLLM(
            fake_openai_client(FakeProvider()),
            db,
            stores["object"],
            close_stores=False,
            max_retries=1,  # the outage is long: spool at once rather than retry through it
        )
        before = {mode: _bodies(3) for mode in stores}
        refs = {mode: await stores[mode].put_many(before[mode]) for mode in stores}
        assert all(all(r) for r in refs.values())
        calls = [await _call(llm) for _ in range(3)]
        await llm.flush()
    finally:
        await asyncio.to_thread(s3server.stop, proc)

    try:
        during = {mode: _bodies(3) for mode in stores}
        calls += [await _call(llm) for _ in range(3)]
        # All at once: each waits out botocore's own retries first.
        *failures, stats = await asyncio.gather(
            *(store.put_many(during[mode]) for mode, store in stores.items()),
            ml.S3Adapter.create(bucket, mode="object", **options),
            llm.flush(),
            return_exceptions=True,
        )
        for failure in failures:
            assert isinstance(failure, ml.StoreUnavailable), failure
            assert server.secret_key not in str(failure)
        assert not isinstance(stats, BaseException), stats
        assert stats.written == 3  # the batch whose bodies could not go waits, whole
    finally:
        server2, proc = await asyncio.to_thread(s3server.start_seaweedfs, workdir)
    try:
        assert server2.endpoint_url == server.endpoint_url
        for mode, store in stores.items():  # the same adapters, no reopen: they reconnect
            again = await store.put_many(during[mode])
            assert all(again)
            for (rid, _, _), ref in zip(
                before[mode] + during[mode], refs[mode] + again, strict=True
            ):
                assert (await store.get(ref))["request_id"] == rid
        await llm.replay_spool()
        stats = await llm.close()
        assert stats.written + stats.replayed == 6 and stats.dropped == 0
        got = await db.fetch("SELECT request_id, body_ref FROM llm_requests")
        assert sorted(r["request_id"] for r in got) == sorted(calls)
        for row in got:
            assert row["body_ref"], row
            assert (await stores["object"].get(row["body_ref"]))["request_id"] == row["request_id"]
    finally:
        for store in stores.values():
            await store.close()
        await db.close()
        # SIGTERM only: the ~15 s shutdown is waited for at exit, with the other servers'.
        s3server._terminate(proc)


def _bodies(n: int) -> list[tuple[str, dt.datetime, bytes]]:
    out = []
    for _ in range(n):
        rid = uuid7()
        out.append((rid, WHEN, f'{{"request_id": "{rid}"}}'.encode()))
    return out


async def _call(llm: Any) -> str:
    response = await llm.chat.completions.create(model="gpt-4o", messages=[])
    return str(ml.call_info(response).request_id)


async def test_s3_missing_bucket_refuses_bodies_without_raising(
    s3_server: S3Server,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    from botocore.exceptions import ClientError

    bucket = s3_server.new_bucket_name()
    await s3_server.create_bucket(bucket)
    stores = [
        await ml.S3Adapter.create(bucket, mode=mode, **s3_server.adapter_kwargs())
        for mode in ("object", "segment")
    ]
    await stores[0]._client.delete_bucket(Bucket=bucket)
    with pytest.raises(ClientError):  # the bucket is really gone
        await stores[0]._client.head_bucket(Bucket=bucket)
    reset_warnings()
    caplog.set_level(logging.WARNING, logger="majordomo_log")
    for store in stores:
        assert await store.put_many(_bodies(4)) == [None] * 4
        assert await store.put_many(_bodies(4)) == [None] * 4
        await store.close()
    refused = [r for r in caplog.records if "not retried" in r.getMessage()]
    # once per bucket and kind, not once per body, batch or adapter (SeaweedFS answers a
    # deleted bucket with AccessDenied, AWS with NoSuchBucket: both are configuration)
    assert len(refused) == 1, [r.getMessage() for r in refused]
    message = refused[0].getMessage()
    assert "NoSuchBucket" in message or "AccessDenied" in message


# -- files: a full disk --------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs, mounted for the test: a disk that really fills (ENOSPC from the
    kernel). Mounting needs root (CI runs as root); elsewhere the test skips."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(directory: Path) -> Path:
    """Write incompressible bytes until the file system is full; the filler's path."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(os.urandom(16384))
                f.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


@pytest.mark.parametrize("mode", ["object", "segment"])
async def test_files_on_a_full_disk_are_unavailable_then_recover(
    mode: str, small_disk: Path
) -> None:
    store = await ml.FileStorageAdapter.create(small_disk / "bodies", mode=mode)
    first = _bodies(3)
    first_refs = await store.put_many(first)
    assert all(first_refs)
    filler = await asyncio.to_thread(_fill, small_disk)
    batch = [
        (rid, WHEN, json.dumps({"request_id": rid, "noise": os.urandom(20_000).hex()}).encode())
        for rid, _, _ in _bodies(5)
    ]
    with pytest.raises(ml.StoreUnavailable, match="No space left"):
        await store.put_many(batch)
    assert not list(small_disk.rglob("*.tmp")), "a half-written file holds the space"
    filler.unlink()
    refs = await store.put_many(batch)  # the same batch again, as the writer retries
    assert all(refs)
    for (_, _, payload), ref in zip(batch, refs, strict=True):
        assert await store.get(str(ref)) == json.loads(payload)
    for (rid, _, _), ref in zip(first, first_refs, strict=True):  # stored before: intact
        assert (await store.get(str(ref)))["request_id"] == rid


async def test_sqlite_on_a_full_disk_is_unavailable_then_recovers(small_disk: Path) -> None:
    db = await ml.SqliteAdapter.create(small_disk / "log.db")
    try:
        await db.write_batch(rows(5), [])
        filler = await asyncio.to_thread(_fill, small_disk)
        batch = rows(500)
        with pytest.raises(ml.StoreUnavailable):
            await db.write_batch(batch, [])
        filler.unlink()
        await db.write_batch(batch, [])
        assert await count(db) == 505
    finally:
        await db.close()


async def test_files_permanent_refusal_returns_none_and_logs_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A body folder that cannot hold the day's directory (a file is in the way: as root
    no permission bit refuses) is a refusal: None per body, one warning, no exception."""
    store = await ml.FileStorageAdapter.create(tmp_path / "bodies")
    (store.root / "2026").write_text("in the way")
    reset_warnings()
    caplog.set_level(logging.WARNING, logger="majordomo_log")
    assert await store.put_many(_bodies(3)) == [None] * 3
    assert await store.put_many(_bodies(2)) == [None] * 2
    assert len([r for r in caplog.records if "not retried" in r.getMessage()]) == 1
