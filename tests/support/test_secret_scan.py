"""The secret scan can fail (it finds planted keys wherever the suite stores or logs), and no
secret shows in a repr, a str or a failed connection's exception of the public objects."""

from __future__ import annotations

import gzip
import json
import logging
import os
import sqlite3
import subprocess
import sys
import traceback
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from s3server import S3Server, s3_server_with_identities  # noqa: F401
from secret_scan import (
    TEST_KEYS,
    Finding,
    LogCapture,
    Scanner,
    all_secrets,
    register_secret,
    scan_log_lines,
    scan_mysql_database,
    scan_postgres_schema,
)
from servers import isolated_db, mysql_admin, require

import majordomo_log as ml
from majordomo_log.delivery.writer import BatchWriter
from majordomo_log.testing import FakeProvider, fake_anthropic_client, fake_openai_client

# A key no other test uses and the session scan does not look for: the planted copies in
# these tests' folders must fail only the scanners these tests make.
PLANTED = "sk-planted-" + uuid.uuid4().hex


def scan_tree(root: Path) -> list[Finding]:
    scanner = Scanner([PLANTED])
    scanner.tree(root)
    return scanner.findings


def test_finds_a_key_in_a_sqlite_table_and_its_wal(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "log.db")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE llm_requests (request_id TEXT, tags TEXT)")
    # Long enough to spill over an overflow page: whole only when read through sqlite3.
    conn.execute("INSERT INTO llm_requests VALUES ('r1', ?)", ("x" * 5000 + PLANTED,))
    conn.commit()  # still in the -wal file: the connection is open, nothing checkpointed
    try:
        wheres = {f.where for f in scan_tree(tmp_path)}
    finally:
        conn.close()
    assert "log.db table llm_requests row 0 column tags" in wheres
    assert "log.db-wal" in wheres


def test_finds_a_key_in_one_gzip_member_of_a_segment(tmp_path: Path) -> None:
    members = [gzip.compress(json.dumps({"n": n}).encode()) for n in range(3)]
    members[1] = gzip.compress(json.dumps({"authorization": f"Bearer {PLANTED}"}).encode())
    (tmp_path / "segment.gz").write_bytes(b"".join(members))
    (findings,) = scan_tree(tmp_path)
    assert findings.where == f"segment.gz [gzip member at {len(members[0])}]"


def test_finds_a_key_in_a_gzip_stream_inside_another_file(tmp_path: Path) -> None:
    """As a body sits inside a SeaweedFS volume file."""
    body = gzip.compress(PLANTED.encode())
    (tmp_path / "1.dat").write_bytes(os.urandom(1000) + body + os.urandom(1000))
    assert [f.where for f in scan_tree(tmp_path)] == ["1.dat [gzip member at 1000]"]


def test_finds_a_key_in_a_spool_file(tmp_path: Path) -> None:
    spool = tmp_path / "spool" / "rejected"
    spool.mkdir(parents=True)
    header = {"format": "majordomo-log/spool@1", "reason": "rejected", "error": None}
    entry = {"row": ["r1"], "body": json.dumps({"api_key": PLANTED}), "body_ref": None}
    path = spool / "00000000000000000001-1-0.jsonl"
    path.write_text(json.dumps(header) + "\n" + json.dumps(entry) + "\n")
    assert [f.where for f in scan_tree(tmp_path)] == [
        "spool/rejected/00000000000000000001-1-0.jsonl"
    ]


def test_finds_a_key_in_a_log_line_and_a_logged_traceback() -> None:
    capture = LogCapture()
    logger = logging.getLogger("majordomo_log.test_secret_scan")
    logger.addHandler(capture)
    try:
        logger.warning("calling with %s", PLANTED)
        try:
            raise RuntimeError(f"bad key {PLANTED}")
        except RuntimeError:
            logger.exception("call failed")
        logger.warning("nothing to see")
    finally:
        logger.removeHandler(capture)
    scanner = Scanner([PLANTED])
    scan_log_lines(scanner, capture)
    assert [f.where.split(" (")[0] for f in scanner.findings] == [
        "log record majordomo_log.test_secret_scan WARNING",
        "log record majordomo_log.test_secret_scan ERROR",
    ]


def test_ignores_what_is_not_a_key_and_never_prints_a_whole_key(tmp_path: Path) -> None:
    (tmp_path / "near-misses.txt").write_text(
        f"{PLANTED[:-1]} {PLANTED[1:]} {PLANTED.upper()} sk-planted-"
    )
    (tmp_path / "empty.gz").write_bytes(gzip.compress(b""))
    (tmp_path / "torn.gz").write_bytes(gzip.compress(PLANTED.encode() * 100)[:20])
    assert scan_tree(tmp_path) == []
    finding = Finding("somewhere", PLANTED)
    assert PLANTED[:6] in str(finding) and PLANTED[6:] not in str(finding)


def test_the_session_scans_for_every_key_a_fake_client_was_given_or_sent() -> None:
    given, sent = f"sk-given-{uuid.uuid4().hex}", f"sk-sent-{uuid.uuid4().hex}"
    fake_openai_client(api_key=given)
    assert given in all_secrets()
    assert sent not in all_secrets()
    provider = FakeProvider()
    client = fake_anthropic_client(provider).with_options(api_key=sent)
    import asyncio

    asyncio.run(client.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=[]))
    assert sent in all_secrets()
    assert all_secrets() >= TEST_KEYS


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
@pytest.mark.servers
async def test_finds_a_key_in_a_server_table(dialect: str, tmp_path: Path) -> None:
    """What tests/support/servers.py runs on a test's schema or database before dropping it."""
    found: list[Finding] = []
    async with isolated_db(dialect, tmp_path) as db:
        url = require(dialect)
        if dialect == "postgresql":
            import asyncpg

            schema = db.schema  # type: ignore[attr-defined]
            conn = await asyncpg.connect(url)
            try:
                await conn.execute(f'CREATE TABLE "{schema}".planted (v text, j jsonb)')
                await conn.execute(
                    f'INSERT INTO "{schema}".planted VALUES ($1, NULL), (NULL, $2)',
                    "clean",
                    json.dumps({"key": PLANTED}),
                )
                await scan_postgres_schema(conn, schema, into=found, secrets=[PLANTED])
            finally:
                await conn.close()
            expected = f"postgresql {schema}.planted row 1 column j"
        else:
            database = db.url.rsplit("/", 1)[1]
            await mysql_admin(url, f"CREATE TABLE {database}.planted (v TEXT, b BLOB)")
            await mysql_admin(
                url, f"INSERT INTO {database}.planted VALUES ('clean', NULL), (NULL, '{PLANTED}')"
            )
            await scan_mysql_database(url, database, into=found, secrets=[PLANTED])
            expected = f"mysql {database}.planted row 1 column b"
    assert [f.where.split(": ", 1)[1] for f in found] == [expected]
    assert found[0].where.startswith("tests/support/test_secret_scan.py::")


def test_a_session_that_stored_a_key_fails_and_names_it_by_its_first_characters(
    tmp_path: Path,
) -> None:
    """End to end: a pytest run whose test writes and logs a key exits 1."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "conftest.py").write_text(
        "from secret_scan import (  # noqa: F401\n"
        "    _secret_scan_basetemp, pytest_sessionfinish, pytest_sessionstart,\n"
        "    pytest_terminal_summary,\n"
        ")\n"
    )
    inner = "sk-inner-" + uuid.uuid4().hex  # a secret of the inner session only
    (project / "test_leak.py").write_text(
        "import logging\n"
        "from secret_scan import register_secret\n"
        "def test_leak(tmp_path):\n"
        f"    register_secret({inner!r})\n"
        f"    (tmp_path / 'out.txt').write_text('key={inner}')\n"
        f"    logging.getLogger('majordomo_log').warning('key %s', {inner!r})\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(project)),
            *("--basetemp", str(tmp_path / "basetemp"), "--rootdir", str(project)),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 passed" in done.stdout and "SECRETS FOUND" in done.stdout
    assert "out.txt: secret starting 'sk-inn'" in done.stdout
    assert "log record majordomo_log WARNING" in done.stdout
    assert inner not in done.stdout + done.stderr


# -- no secret in a repr, a str or an exception ----------------------------------------------


def assert_hidden(secrets: list[str], *objects: object) -> None:
    """Neither repr() nor str() of each object shows a secret; for an exception, neither does
    its whole traceback with the exceptions it was raised from or during."""
    for obj in objects:
        text = repr(obj) + str(obj)
        if isinstance(obj, BaseException):
            text += "".join(traceback.format_exception(obj))
        for secret in secrets:
            assert secret not in text, f"{type(obj).__name__} shows {secret[:6]}...: {text}"


def new_secret(prefix: str) -> str:
    secret = f"{prefix}-{uuid.uuid4().hex}"
    register_secret(secret)  # and the session scan checks no store or log line has it
    return secret


async def test_wrapper_writer_stats_and_local_stores_show_no_key(tmp_path: Path) -> None:
    key, hash_secret = new_secret("sk-repr"), new_secret("hash-secret")
    db = await ml.SqliteAdapter.create(tmp_path / "log.db")
    storage = await ml.FileStorageAdapter.create(tmp_path / "bodies")
    provider = FakeProvider()
    try:
        for client in (
            fake_openai_client(provider, api_key=key),
            fake_anthropic_client(provider, api_key=key),
        ):
            llm = ml.LoggingLLM(
                client, db, storage, key_hash_secret=hash_secret, close_stores=False
            )
            if llm.client is client and hasattr(client, "chat"):
                await llm.chat.completions.create(model="gpt-4o-mini", messages=[])
            else:
                await llm.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=[])
            stats = await llm.flush()
            assert stats.written >= 1
            assert_hidden([key, hash_secret], llm, stats, llm.stats(), db, storage)
            await llm.close()
        writer = BatchWriter(db, storage)
        assert_hidden([key, hash_secret], writer)
        await writer.close()
    finally:
        await db.close()
        await storage.close()


@pytest.mark.servers
async def test_postgres_password_in_no_repr_and_no_connection_error() -> None:
    url = require("postgresql")
    parts = urlsplit(url)
    password = new_secret("pg-pw")
    host, port, user = parts.hostname, parts.port or 5432, parts.username or "postgres"
    good = parts._replace(netloc=f"{user}:{quote(password)}@{host}:{port}").geturl()
    db = await ml.PostgresAdapter.create(good)  # 127.0.0.1 is `trust`: any password passes
    try:
        assert_hidden([password], db, db.url)
    finally:
        await db.close()
    in_query = f"postgresql://{user}@{host}:{port}{parts.path}?password={quote(password)}"
    db = await ml.open_db(in_query)
    try:
        assert_hidden([password], db, db.url)
    finally:
        await db.close()
    # Trust authentication never asks for the password, so the failures here are the ones a
    # client sees before or around authentication: unknown role, unknown database, no server.
    failing = [
        parts._replace(netloc=f"mdl_nobody_{uuid.uuid4().hex[:8]}:{password}@{host}:{port}"),
        parts._replace(netloc=f"{user}:{password}@{host}:{port}", path="/mdl_no_such_db"),
        parts._replace(netloc=f"{user}:{password}@{host}:1"),
    ]
    for bad in (p.geturl() for p in failing):
        for opener in (ml.PostgresAdapter.create, ml.open_db):
            with pytest.raises(ml.StoreError) as info:
                await opener(bad)
            assert_hidden([password], info.value)


@pytest.mark.servers
async def test_mysql_password_in_no_repr_and_no_failed_login(tmp_path: Path) -> None:
    url = require("mysql")
    parts = urlsplit(url)
    password, wrong = new_secret("my-pw"), new_secret("my-wrong-pw")
    user = f"mdl_pw_{uuid.uuid4().hex[:8]}"
    host, port = parts.hostname, parts.port or 3306
    async with isolated_db("mysql", tmp_path) as admin_db:
        database = admin_db.url.rsplit("/", 1)[1]
        accounts = [f"'{user}'@'%'", f"'{user}'@'localhost'"]
        for account in accounts:
            await mysql_admin(url, f"CREATE USER {account} IDENTIFIED BY '{password}'")
            await mysql_admin(url, f"GRANT ALL ON `{database}`.* TO {account}")
        try:
            good = f"mysql://{user}:{quote(password)}@{host}:{port}/{database}"
            db = await ml.MySQLAdapter.create(good)
            try:
                assert_hidden([password], db, db.url)
            finally:
                await db.close()
            failing = [
                f"mysql://{user}:{quote(wrong)}@{host}:{port}/{database}",  # wrong password
                f"mysql://{user}:{quote(password)}@{host}:{port}/mysql",  # no grant there
                f"mysql://{user}:{quote(password)}@{host}:1/{database}",  # no server
            ]
            for bad in failing:
                for opener in (ml.MySQLAdapter.create, ml.open_db):
                    with pytest.raises(ml.StoreError) as info:
                        await opener(bad)
                    assert_hidden([password, wrong], info.value)
        finally:
            for account in accounts:
                await mysql_admin(url, f"DROP USER IF EXISTS {account}")


async def test_s3_secret_key_in_no_repr_and_no_refused_login(
    s3_server_with_identities: S3Server,  # noqa: F811
) -> None:
    server = s3_server_with_identities
    bucket = server.new_bucket_name()
    await server.create_bucket(bucket)
    good = await ml.S3Adapter.create(bucket, **server.adapter_kwargs())
    try:
        assert_hidden([server.secret_key], good, good.url)
    finally:
        await good.close()
    wrong = new_secret("s3-wrong")
    refused = {**server.adapter_kwargs(), "aws_secret_access_key": wrong}
    with pytest.raises(ml.StoreError) as info:
        await ml.S3Adapter.create(bucket, **refused)
    assert_hidden([server.secret_key, wrong], info.value)
    unreachable = {**refused, "endpoint_url": "http://127.0.0.1:1"}
    with pytest.raises(ml.StoreError) as info:
        await ml.S3Adapter.create(bucket, **unreachable)
    assert_hidden([server.secret_key, wrong], info.value)
