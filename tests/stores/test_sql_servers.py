"""PostgreSQL and MySQL/MariaDB stores against the real servers: recovery from lost
connections, passwords kept out of messages, and the CLI on a server URL."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from secret_scan import scan_postgres_schema
from servers import isolated_db, require

import majordomo_log as ml
from majordomo_log.cli import main
from majordomo_log.testing import FakeProvider, fake_openai_client

SERVERS = ["postgresql", "mysql"]


async def _kill_connections(db: Any) -> int:
    """Kill every server connection the store's pool holds, as a failover would."""
    if db.dialect == "postgresql":
        import asyncpg

        conn = await asyncpg.connect(require("postgresql"))
        try:
            killed = await conn.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid <> pg_backend_pid() AND datname = current_database() "
                "AND query NOT ILIKE '%pg_stat_activity%'"
            )
        finally:
            await conn.close()
        return len(killed)
    database = db.url.rsplit("/", 1)[1]
    url = require("mysql")
    import aiomysql

    parts = urlsplit(url)
    conn = await aiomysql.connect(
        host=parts.hostname,
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        autocommit=True,
    )
    try:
        async with conn.cursor() as cur:
            await cur.execute(
                "SELECT id FROM information_schema.processlist WHERE db = %s", (database,)
            )
            ids = [row[0] for row in await cur.fetchall()]
            for pid in ids:
                await cur.execute(f"KILL {int(pid)}")
    finally:
        conn.close()
    return len(ids)


@pytest.mark.parametrize("dialect", SERVERS)
@pytest.mark.servers
async def test_writer_recovers_after_the_server_drops_its_connections(
    dialect: str, tmp_path: Path
) -> None:
    async with isolated_db(dialect, tmp_path) as db:
        llm = ml.LoggingLLM(fake_openai_client(FakeProvider()), db, None, close_stores=False)
        for _ in range(10):
            await llm.chat.completions.create(model="gpt-4o", messages=[])
        await llm.flush()
        assert await _kill_connections(db) >= 1
        for _ in range(10):
            await llm.chat.completions.create(model="gpt-4o", messages=[])
        stats = await llm.close()
        assert (stats.written, stats.failed, stats.dropped) == (20, 0, 0)
        (count,) = await db.fetch("SELECT COUNT(*) AS n FROM llm_requests")
        assert count["n"] == 20


@pytest.mark.servers
async def test_postgres_password_stays_out_of_reprs_and_errors() -> None:
    url = require("postgresql")
    parts = urlsplit(url)
    with_password = parts._replace(
        netloc=f"{parts.username or 'postgres'}:s3cr3t-pw@{parts.hostname}:{parts.port or 5432}"
    ).geturl()
    db = await ml.PostgresAdapter.create(with_password)  # trust auth accepts any password
    try:
        assert "s3cr3t-pw" not in repr(db) and "s3cr3t-pw" not in db.url
    finally:
        await db.close()
        await db.close()
    unreachable = parts._replace(netloc=f"u:s3cr3t-pw@{parts.hostname}:1").geturl()
    with pytest.raises(ml.StoreUnavailable) as info:
        await ml.PostgresAdapter.create(unreachable)
    assert "s3cr3t-pw" not in str(info.value)


@pytest.mark.servers
async def test_mysql_password_stays_out_of_reprs_and_errors() -> None:
    url = require("mysql")
    parts = urlsplit(url)
    wrong = parts._replace(netloc=f"root:s3cr3t-pw@{parts.hostname}:{parts.port or 3306}").geturl()
    with pytest.raises(ml.StoreError) as info:
        await ml.MySQLAdapter.create(wrong)
    assert "s3cr3t-pw" not in str(info.value) and "Access denied" in str(info.value)
    db = await ml.MySQLAdapter.create(url)
    try:
        assert "s3cr3t" not in repr(db)
    finally:
        await db.close()


@pytest.mark.servers
def test_cli_on_a_server_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = require("postgresql")
    schema = f"mdl_cli_{tmp_path.name[-8:].replace('-', '_')}"
    db_url = f"{url}?schema={schema}"

    async def fill() -> None:
        db = await ml.open_db(db_url)
        llm = ml.LoggingLLM(fake_openai_client(FakeProvider()), db, None)
        with ml.tags(feature="cli"):
            for _ in range(3):
                await llm.chat.completions.create(model="gpt-4o", messages=[])
        await llm.close()

    async def drop() -> None:
        import asyncpg

        conn = await asyncpg.connect(url)
        await scan_postgres_schema(conn, schema)  # the secret scan, before it is gone
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()

    asyncio.run(fill())
    try:
        assert main(["migrate", "--db", db_url]) == 0
        assert "up to date" in capsys.readouterr().out
        assert main(["report", "--db", db_url, "--by", "feature", "--format", "json"]) == 0
        (row,) = json.loads(capsys.readouterr().out)
        assert (row["feature"], row["calls"]) == ("cli", 3)
        assert main(["tail", "--db", db_url, "-n", "1", "--format", "json"]) == 0
        (last,) = json.loads(capsys.readouterr().out)
        assert last["started_at"].endswith("Z")
    finally:
        asyncio.run(drop())


@pytest.mark.servers
async def test_mysql_database_must_exist_clear_error() -> None:
    url = require("mysql")
    missing = urlsplit(url)._replace(path="/mdl_no_such_database").geturl()
    with pytest.raises(ml.StoreError, match="Unknown database"):
        await ml.MySQLAdapter.create(missing)


def test_passwords_in_query_parameters_and_unencoded_ones_stay_hidden() -> None:
    from majordomo_log.stores.urls import check_url, redact_url

    assert "S3CRET" not in redact_url("postgresql://u@h/db?password=S3CRET&sslmode=require")
    assert "sslmode=require" in redact_url("postgresql://u@h/db?password=S3CRET&sslmode=require")
    assert "S3CRET" not in redact_url("mysql://root:S3CRET@h:3306/db")
    with pytest.raises(ml.ConfigError, match="percent-encode") as info:
        check_url("mysql://root:S3CRET#x@127.0.0.1/test")
    assert "S3CRET" not in str(info.value)


@pytest.mark.servers
async def test_mysql_writes_safely_when_the_server_defaults_to_no_backslash_escapes(
    tmp_path: Path,
) -> None:
    url = require("mysql")
    from servers import mysql_admin

    original = await mysql_scalar(url, "SELECT @@GLOBAL.sql_mode")
    await mysql_admin(url, f"SET GLOBAL sql_mode = '{original},NO_BACKSLASH_ESCAPES'")
    try:
        async with isolated_db("mysql", tmp_path) as db:
            from test_contract_metadata import record

            from majordomo_log.record.rows import build_row

            nasty = "X\\', NULL) -- '"
            rows = [build_row(record(1, model=nasty, tags={"q": "a\\'b"}), None)]
            await db.write_batch(rows, [])
            (row,) = await db.fetch("SELECT model, served_model, tags FROM llm_requests")
            assert row["model"] == nasty and row["served_model"] == nasty
    finally:
        await mysql_admin(url, f"SET GLOBAL sql_mode = '{original}'")


async def mysql_scalar(url: str, query: str) -> str:
    import aiomysql

    parts = urlsplit(url)
    conn = await aiomysql.connect(
        host=parts.hostname,
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
    )
    try:
        async with conn.cursor() as cur:
            await cur.execute(query)
            (value,) = await cur.fetchone()
    finally:
        conn.close()
    return str(value)


@pytest.mark.servers
async def test_mysql_batch_larger_than_a_packet_is_split(tmp_path: Path) -> None:
    from test_contract_metadata import record

    from majordomo_log.record.rows import build_row

    async with isolated_db("mysql", tmp_path) as db:
        big = {"blob": "x" * 40_000}
        rows = [build_row(record(i, tags=big), None) for i in range(500)]  # ~20 MB of text
        await db.write_batch(rows, [])
        (count,) = await db.fetch("SELECT COUNT(*) AS n FROM llm_requests")
        assert count["n"] == 500


@pytest.mark.servers
async def test_postgres_schema_names_and_concurrent_first_start(tmp_path: Path) -> None:
    import asyncpg

    url = require("postgresql")
    schema = "Mdl_Mixed_" + tmp_path.name[-6:].replace("-", "_")
    try:
        stores = await asyncio.gather(
            *(ml.PostgresAdapter.create(url, schema=schema) for _ in range(8))
        )
        for store in stores:
            assert await store.fetch("SELECT COUNT(*) AS n FROM llm_requests") == [{"n": 0}]
            await store.close()
    finally:
        conn = await asyncpg.connect(url)
        await scan_postgres_schema(conn, schema)  # the secret scan, before it is gone
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
    with pytest.raises(ml.ConfigError):
        await ml.PostgresAdapter.create(url, schema="bad\n")
