"""Stores in a forked child (gunicorn or multiprocessing workers): the child calls
``reopen()`` and writes on connections of its own, while the parent goes on writing on
the connections it had, which must come through untouched: same server session
before and after, nothing lost on either side."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from s3server import S3Server, s3_server  # noqa: F401
from servers import isolated_db, require
from test_adapter_faults import WHEN, rows

import majordomo_log as ml
from majordomo_log.record.ids import uuid7

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")

CHILD_DEADLINE = 120.0  # a child that hangs fails the test instead of hanging the suite


def fork_child(tmp_path: Path, work: Callable[[], Awaitable[Any]]) -> tuple[int, Path]:
    """Run ``work`` in a forked child, in an event loop of its own (the parent's loop is
    not the child's to run). Its JSON result, or its traceback, goes to a file."""
    result = tmp_path / f"child-{uuid.uuid4().hex[:8]}.json"
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; reported through the result file
        code = 1
        try:
            value = asyncio.run(work())
            result.write_text(json.dumps({"ok": value}))
            code = 0
        except BaseException:
            result.write_text(json.dumps({"error": traceback.format_exc()}))
        finally:
            os._exit(code)  # no pytest teardown, atexit or finalizers in the child
    return pid, result


async def wait_child(pid: int, result: Path) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CHILD_DEADLINE
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if loop.time() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"the forked child did not finish within {CHILD_DEADLINE:.0f}s")
        await asyncio.sleep(0.05)
    report = json.loads(result.read_text()) if result.exists() else {}
    assert "error" not in report, "the child failed:\n" + report["error"]
    assert os.waitstatus_to_exitcode(status) == 0, report
    return report["ok"]


async def session_id(db: Any) -> Any:
    """The server session the store's (single, idle) pooled connection is on."""
    if db.dialect == "postgresql":
        (row,) = await db.fetch("SELECT pg_backend_pid() AS id")
    elif db.dialect == "mysql":
        (row,) = await db.fetch("SELECT CONNECTION_ID() AS id")
    else:
        return None
    return row["id"]


async def stored_ids(db: Any) -> set[str]:
    return {r["request_id"] for r in await db.fetch("SELECT request_id FROM llm_requests")}


def ids(batch: list[tuple[Any, ...]]) -> set[str]:
    return {row[0] for row in batch}


@pytest.mark.parametrize(
    "dialect",
    [
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.servers),
        pytest.param("mysql", marks=pytest.mark.servers),
    ],
)
async def test_child_reopens_metadata_store_and_parent_keeps_its_session(
    dialect: str, tmp_path: Path
) -> None:
    async with isolated_db(dialect, tmp_path) as db:
        before, in_child, alongside, after = rows(5), rows(5), rows(5), rows(5)
        await db.write_batch(before, [])
        parent_session = await session_id(db)

        async def child() -> Any:
            await db.reopen()
            await db.write_batch(in_child, [])
            own = await session_id(db)
            await db.close()
            return own

        pid, result = fork_child(tmp_path, child)
        await db.write_batch(alongside, [])  # at once, while the child works
        child_session = await wait_child(pid, result)
        await db.write_batch(after, [])
        if dialect != "sqlite":
            assert child_session != parent_session  # the child had a session of its own
            # and the parent's was not ended by anything the child did
            assert await session_id(db) == parent_session
        assert await stored_ids(db) == ids(before) | ids(in_child) | ids(alongside) | ids(after)


async def test_sqlite_child_survives_the_parent_closing_first(tmp_path: Path) -> None:
    """The parent closes its connection (the last one, as far as its locks say) while
    the child still writes. Had the child kept the inherited connection open instead
    of closing it, its new connection would hold no lock of its own: the parent's close
    would checkpoint and delete the WAL under the child, and the child's later rows
    would go to a deleted file."""
    path = tmp_path / "shared.db"
    db = await ml.SqliteAdapter.create(path)
    first, second, parent_rows = rows(3), rows(3), rows(3)
    await db.write_batch(rows(1), [])
    to_child_r, to_child_w = os.pipe()
    to_parent_r, to_parent_w = os.pipe()

    async def child() -> None:
        await db.reopen()
        await db.write_batch(first, [])
        os.write(to_parent_w, b"1")
        assert await asyncio.to_thread(os.read, to_child_r, 1) == b"2"  # parent closed
        await db.write_batch(second, [])
        await db.close()

    pid, result = fork_child(tmp_path, child)
    await db.write_batch(parent_rows, [])
    assert await asyncio.to_thread(os.read, to_parent_r, 1) == b"1"
    await db.close()
    os.write(to_child_w, b"2")
    await wait_child(pid, result)
    for fd in (to_child_r, to_child_w, to_parent_r, to_parent_w):
        os.close(fd)
    reader = await ml.SqliteAdapter.create(path)
    try:
        assert ids(first) | ids(second) | ids(parent_rows) <= await stored_ids(reader)
        (check,) = await reader.fetch("PRAGMA integrity_check")
        assert list(check.values()) == ["ok"]
    finally:
        await reader.close()


def bodies(n: int) -> list[tuple[str, Any, bytes]]:
    out = []
    for _ in range(n):
        rid = uuid7()
        out.append((rid, WHEN, json.dumps({"request_id": rid}).encode()))
    return out


@pytest.fixture(
    params=[
        "files-object",
        "files-segment",
        pytest.param("s3-object", marks=pytest.mark.servers),
        pytest.param("s3-segment", marks=pytest.mark.servers),
    ]
)
async def body_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    kind, mode = request.param.split("-")
    if kind == "files":
        store: Any = await ml.FileStorageAdapter.create(tmp_path / "bodies", mode=mode)
    else:
        server: S3Server = request.getfixturevalue("s3_server")
        bucket = server.new_bucket_name()
        await server.create_bucket(bucket)
        store = await ml.S3Adapter.create(bucket, mode=mode, **server.adapter_kwargs())
    yield store
    await store.close()


async def test_child_reopens_body_store_and_parent_keeps_writing(
    body_store: Any, tmp_path: Path
) -> None:
    store = body_store
    before, in_child, alongside, after = bodies(4), bodies(4), bodies(4), bodies(4)
    refs = await store.put_many(before)

    async def child() -> list[str | None]:
        await store.reopen()
        got: list[str | None] = await store.put_many(in_child)
        for (rid, _, _), ref in zip(in_child, got, strict=True):
            assert (await store.get(str(ref)))["request_id"] == rid
        await store.close()
        return got

    pid, result = fork_child(tmp_path, child)
    refs_alongside = await store.put_many(alongside)  # the parent's client, while the child works
    refs_child = await wait_child(pid, result)
    refs_after = await store.put_many(after)
    every = before + in_child + alongside + after
    all_refs = refs + refs_child + refs_alongside + refs_after
    assert all(all_refs)
    for (rid, _, _), ref in zip(every, all_refs, strict=True):  # all read by the parent
        assert (await store.get(ref))["request_id"] == rid


# -- reopen in the process that opened the store: a reconnect ----------------------------


@pytest.mark.parametrize(
    "dialect",
    [
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.servers),
        pytest.param("mysql", marks=pytest.mark.servers),
    ],
)
async def test_reopen_in_the_same_process_reconnects(dialect: str, tmp_path: Path) -> None:
    async with isolated_db(dialect, tmp_path) as db:
        first, second, third = rows(3), rows(3), rows(3)
        await db.write_batch(first, [])
        old = await session_id(db)
        await db.reopen()
        await db.write_batch(second, [])
        if dialect != "sqlite":
            assert await session_id(db) != old
        await db.close()
        await db.reopen()  # a closed store opens again
        await db.write_batch(third, [])
        assert await stored_ids(db) == ids(first) | ids(second) | ids(third)


async def test_reopen_same_process_body_store(body_store: Any) -> None:
    first = bodies(2)
    refs = await body_store.put_many(first)
    await body_store.reopen()
    refs += await body_store.put_many(bodies(2))
    await body_store.close()
    await body_store.reopen()
    for (rid, _, _), ref in zip(first, refs, strict=False):
        assert (await body_store.get(ref))["request_id"] == rid
    assert all(await body_store.put_many(bodies(2)))


@pytest.mark.servers
async def test_reopen_keeps_the_password_private() -> None:
    url = require("postgresql")
    parts = urlsplit(url)
    secret = f"pw-{uuid.uuid4().hex}"
    with_password = parts._replace(
        netloc=f"{parts.username or 'postgres'}:{secret}@{parts.hostname}:{parts.port or 5432}"
    ).geturl()
    db = await ml.PostgresAdapter.create(with_password)  # trust auth accepts any password
    try:
        await db.reopen()
        await db.fetch("SELECT 1 AS one")
        shown = [repr(db), db.url, repr(vars(db)), str(vars(db))]
        assert not any(secret in text for text in shown)
    finally:
        await db.close()


def _inherited_sockets(store: Any) -> list[Any]:
    """The socket objects under a store's pooled connections, found the way reopen()
    finds them (the drivers' internals: an upgrade that moves them shows up here)."""
    from majordomo_log.stores.bodies import s3
    from majordomo_log.stores.sql import mysql, postgres

    if isinstance(store, ml.PostgresAdapter):
        transports = list(postgres._transports(store._pool))
    elif isinstance(store, ml.MySQLAdapter):
        transports = list(mysql._transports(store._pool))
    else:
        transports = list(s3._transports(store._client))
    return [getattr(t.get_extra_info("socket"), "_sock", None) for t in transports]


@pytest.mark.parametrize("kind", ["postgresql", "mysql", "s3"])
@pytest.mark.servers
async def test_child_closes_its_copies_of_the_inherited_sockets(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        if kind == "s3":
            server: S3Server = request.getfixturevalue("s3_server")
            bucket = server.new_bucket_name()
            await server.create_bucket(bucket)
            store: Any = await ml.S3Adapter.create(bucket, **server.adapter_kwargs())
            stack.push_async_callback(store.close)
            assert all(await store.put_many(bodies(2)))  # a pooled keep-alive connection
        else:
            store = await stack.enter_async_context(isolated_db(kind, tmp_path))

        async def child() -> list[int]:
            inherited = _inherited_sockets(store)
            assert inherited and all(s is not None and s.fileno() >= 0 for s in inherited)
            await store.reopen()
            return [s.fileno() for s in inherited]  # -1: closed in the child

        pid, result = fork_child(tmp_path, child)
        assert set(await wait_child(pid, result)) == {-1}
        # The parent's own sockets are open and in use.
        assert all(s.fileno() >= 0 for s in _inherited_sockets(store))
        if kind == "s3":
            assert all(await store.put_many(bodies(2)))
        else:
            await store.write_batch(rows(2), [])
