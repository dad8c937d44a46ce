"""What the stores accept at their edges: URLs that carry a password are refused or
shown redacted (never the password), and body references and request ids from rows or
spool files, which may have been tampered with, never lead a store outside its folder,
bucket or prefix. The S3 cases run against a real SeaweedFS server."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from s3server import S3Server, s3_server  # noqa: F401
from secret_scan import exclude_path, register_secret
from servers import require

import majordomo_log as ml
from majordomo_log.cli import main
from majordomo_log.delivery.replay import replay_spool
from majordomo_log.delivery.spool import Spool, SpoolEntry
from majordomo_log.record.ids import uuid7
from majordomo_log.schema import COLUMNS

PASSWORD = "pw-never-shown-7q"
register_secret(PASSWORD)
WHEN = dt.datetime(2026, 3, 4, 12, 0, 0, tzinfo=dt.timezone.utc)
STORES = [("file", "object"), ("file", "segment"), ("s3", "object"), ("s3", "segment")]


def _one_line_without_the_password(message: str) -> None:
    assert "\n" not in message.strip() and PASSWORD not in message


# -- URLs: a password is refused at the boundary or never shown ---------------------------


def _with_password(endpoint: str, form: str) -> str:
    host = urlsplit(endpoint).netloc
    return {
        "userinfo": f"http://mdl:{PASSWORD}@{host}",
        # an unencoded '#' moves the password out of the user part
        "garbled": f"http://mdl:12#{PASSWORD}@{host}",
        "no-scheme": f"mdl:{PASSWORD}@{host}",
    }[form]


@pytest.mark.parametrize("form", ["userinfo", "garbled", "no-scheme"])
@pytest.mark.parametrize("given_as", ["url", "argument"])
async def test_an_s3_endpoint_with_a_password_is_refused_in_one_line(
    given_as: str,
    form: str,
    s3_server: S3Server,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)  # botocore logs its endpoint at DEBUG
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    bucket = s3_server.new_bucket_name()
    await s3_server.create_bucket(bucket)
    endpoint = _with_password(s3_server.endpoint_url, form)
    with pytest.raises(ml.ConfigError) as info:
        if given_as == "url":
            await ml.open_storage(
                f"s3://{bucket}/p?endpoint_url={quote(endpoint, safe='')}"
                f"&path_style=1&region={s3_server.region}"
            )
        else:
            await ml.S3Adapter.create(
                bucket, endpoint_url=endpoint, path_style=True, region_name=s3_server.region
            )
    _one_line_without_the_password(str(info.value))
    assert "user or password" in str(info.value)
    assert PASSWORD not in caplog.text
    # The same server without the user part is fine, and shown as it was given.
    storage = await ml.open_storage(
        f"s3://{bucket}/p?endpoint_url={s3_server.endpoint_url}&path_style=1"
        f"&region={s3_server.region}"
    )
    assert storage.url == f"s3://{bucket}/p at {s3_server.endpoint_url}"
    await storage.close()


@pytest.mark.parametrize("kind", ["sqlite", "file"])
async def test_a_local_store_url_with_a_password_is_refused(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ml.ConfigError) as info:
        if kind == "sqlite":
            await ml.open_db(f"sqlite://mdl:{PASSWORD}@/log.db")
        else:
            await ml.open_storage(f"file://mdl:{PASSWORD}@host/bodies")
    _one_line_without_the_password(str(info.value))
    assert list(tmp_path.iterdir()) == []  # no folder named after the password either
    assert PASSWORD not in caplog.text


@pytest.mark.servers
async def test_server_urls_never_show_their_password(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for dialect in ("postgresql", "mysql"):
        await _server_url_never_shows_its_password(dialect)
    assert PASSWORD not in caplog.text


async def _server_url_never_shows_its_password(dialect: str) -> None:
    parts = urlsplit(require(dialect))
    user, host = parts.username or "root", f"{parts.hostname}:{parts.port}"
    # An unencoded '#' in a password: the parser finds host 'mdl', port 12, no password.
    with pytest.raises(ml.ConfigError) as garbled:
        await ml.open_db(f"{parts.scheme}://{user}:12#{PASSWORD}@{host}/test")
    _one_line_without_the_password(str(garbled.value))
    if dialect == "postgresql":  # trust authentication: any password is accepted
        db = await ml.open_db(f"{parts.scheme}://{user}:{PASSWORD}@{host}{parts.path}")
    else:
        db = await ml.open_db(require(dialect))
    try:
        assert PASSWORD not in db.url and PASSWORD not in repr(db)
    finally:
        await db.close()
    with pytest.raises(ml.StoreError) as closed:
        await db.fetch("SELECT 1")
    _one_line_without_the_password(str(closed.value))
    # A server that is not there, with the password in the user part and as a parameter.
    for url in (
        f"{parts.scheme}://{user}:{PASSWORD}@{parts.hostname}:1/test",
        f"{parts.scheme}://{user}@{parts.hostname}:1/test?password={PASSWORD}",
    ):
        with pytest.raises(ml.StoreError) as unreachable:
            await ml.open_db(url, connect_timeout=2)
        _one_line_without_the_password(str(unreachable.value))


def test_cli_output_never_shows_a_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate", "--db", f"postgresql://mdl:12#{PASSWORD}@127.0.0.1:1/db"]) == 2
    out, err = capsys.readouterr()
    assert PASSWORD not in out + err and err.count("\n") == 1
    # Spool headers name the stores; one written by another version or store may hold a
    # password, and `spool status` shows them.
    spool = Spool(tmp_path / "spool")
    written = spool.append(
        [SpoolEntry(_row(uuid7()))],
        reason="store_unavailable",
        db=f"postgresql://mdl:{PASSWORD}@db.internal/llm?sslpassword={PASSWORD}",
        storage=f"s3://b/p at http://mdl:{PASSWORD}@minio:9000",
    )
    exclude_path(written, "a header with a password in it is this test's input")
    assert (
        main(["spool", "status", "--spool-dir", str(tmp_path / "spool"), "--format", "json"]) == 0
    )
    out, err = capsys.readouterr()
    (status,) = json.loads(out)
    assert PASSWORD not in out + err
    assert status["db"] == "postgresql://mdl:***@db.internal/llm?sslpassword=***"
    assert status["storage"] == "s3://b/p at http://mdl:***@minio:9000"


def test_redact_url_keeps_urls_as_given_and_hides_every_secret() -> None:
    from majordomo_log.stores.urls import redact_url

    for plain in ("sqlite:///rel.db", "sqlite:////abs/x.db", "file://request_logs"):
        assert redact_url(plain) == plain  # unchanged, not re-spelled
    hidden = {
        f"postgresql://u:{PASSWORD}@h/db": "postgresql://u:***@h/db",
        f"postgresql://h/db?aws_secret_access_key={PASSWORD}&sslmode=require": (
            "postgresql://h/db?aws_secret_access_key=***&sslmode=require"
        ),
        f"s3://b/p?endpoint_url=http%3A%2F%2Fu%3A{PASSWORD}%40h%3A9000": (
            "s3://b/p?endpoint_url=http://u:***@h:9000"
        ),
        f"mysql://root:12/{PASSWORD}@h/db": "<unparsable URL>",
    }
    for url, shown in hidden.items():
        assert redact_url(url) == shown


# -- bodies: references and request ids at the store boundary ----------------------------


def _envelope(request_id: str) -> bytes:
    return json.dumps({"request_id": request_id, "request": {"messages": []}}).encode()


@pytest.fixture(
    params=[pytest.param(s, marks=pytest.mark.servers) if s[0] == "s3" else s for s in STORES],
    ids=[f"{k}-{m}" for k, m in STORES],
)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    kind, mode = request.param
    if kind == "file":
        adapter: Any = await ml.FileStorageAdapter.create(tmp_path / "bodies", mode=mode)
    else:
        server: S3Server = request.getfixturevalue("s3_server")
        bucket = server.new_bucket_name()
        await server.create_bucket(bucket)
        adapter = await ml.S3Adapter.create(
            bucket, prefix="llm-logs", mode=mode, **server.adapter_kwargs()
        )
    yield adapter
    await adapter.close()


async def _raw_put(store: Any, bucket: str, key: str, data: bytes) -> None:
    await store._client.put_object(Bucket=bucket, Key=key, Body=data)


async def _all_keys(store: Any) -> list[str]:
    listed = await store._client.list_objects_v2(Bucket=store.bucket)
    return [o["Key"] for o in listed.get("Contents", [])]


async def test_a_reference_that_names_no_body_is_body_not_found(store: Any) -> None:
    rid = uuid7(int(WHEN.timestamp() * 1000))
    (ref,) = await store.put_many([(rid, WHEN, _envelope(rid))])
    assert (await store.get(ref))["request_id"] == rid
    key = ref.split("#")[0]
    day = key.rsplit("/", 2 if store.mode == "segment" else 1)[0]  # a folder / a prefix
    bad = [
        "",
        ".",
        "..",
        "../x.json.gz",
        "2026/../../x.json.gz",
        "/etc/passwd",
        "file:///etc/passwd",
        "2026//03",
        "2026/./03",
        "a\\b",
        "\x00",
        "x" * 5000,
        "garbage#x",
        day,
        f"{key}#0+0",  # an empty range
        f"{key}#0+99999999",  # past the end of the object
        f"{key}#99999999999999999999+1",  # past any file
        f"{key}#{'9' * 5000}+1",
    ]
    if isinstance(store, ml.FileStorageAdapter):  # a link out of the folder
        (store.root.parent / "secret.json.gz").write_bytes(gzip.compress(_envelope(rid)))
        (store.root / "link.json.gz").symlink_to(store.root.parent / "secret.json.gz")
        bad += ["link.json.gz", f"file://{store.root.parent}/secret.json.gz"]
    for reference in bad:
        with pytest.raises(ml.BodyNotFound):
            await store.get(reference)


async def test_a_reference_never_leads_outside_the_prefix(
    s3_server: S3Server,  # noqa: F811
) -> None:
    bucket, other = s3_server.new_bucket_name(), s3_server.new_bucket_name()
    await s3_server.create_bucket(bucket)
    await s3_server.create_bucket(other)
    store = await ml.S3Adapter.create(bucket, prefix="llm-logs", **s3_server.adapter_kwargs())
    outside = gzip.compress(_envelope(uuid7()))
    try:
        await _raw_put(store, bucket, "elsewhere/secret.json.gz", outside)
        await _raw_put(store, bucket, "llm-logs-old/secret.json.gz", outside)
        await _raw_put(store, other, "llm-logs/secret.json.gz", outside)
        for reference in [
            f"s3://{bucket}/elsewhere/secret.json.gz",  # the bucket, not the prefix
            f"s3://{bucket}/llm-logs-old/secret.json.gz",
            f"s3://{bucket}/llm-logs/../elsewhere/secret.json.gz",
            "../elsewhere/secret.json.gz",
            f"s3://{other}/llm-logs/secret.json.gz",  # another bucket
        ]:
            with pytest.raises(ml.BodyNotFound, match=r"outside|not a body reference"):
                await store.get(reference)
    finally:
        await store.close()


def _tampered_batch(good: list[str]) -> list[Any]:
    return [
        ("../../../../escaped", WHEN, _envelope("x")),  # first: a segment is named after it
        (good[0], WHEN, _envelope(good[0])),
        ("not-a-request-id", WHEN, b"{}"),
        (good[1], "2026-03-04", b"{}"),  # a started_at that is no datetime
        (good[1], WHEN, _envelope(good[1])),
        (good[0].upper(), WHEN, b"{}"),  # not how the log spells ids
        (uuid7(), dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))), b"{}"),
    ]


async def test_put_many_refuses_a_tampered_body_alone(store: Any, tmp_path: Path) -> None:
    good = [uuid7(int(WHEN.timestamp() * 1000)) for _ in range(2)]
    refs = await store.put_many(_tampered_batch(good))
    assert [ref is not None for ref in refs] == [False, True, False, False, True, False, False]
    assert (await store.get(refs[1]))["request_id"] == good[0]
    assert (await store.get(refs[4]))["request_id"] == good[1]
    if isinstance(store, ml.FileStorageAdapter):
        written = [p for p in tmp_path.rglob("*") if p.is_file()]
        assert all(p.is_relative_to(store.root) for p in written), written
        assert not any("escaped" in str(p) for p in written)
    else:
        keys = await _all_keys(store)
        assert keys and all(k.startswith("llm-logs/2026/03/04/") for k in keys), keys
        assert not any(".." in k or "escaped" in k for k in keys)


def _row(request_id: str) -> tuple[Any, ...]:
    values: dict[str, Any] = {c: None for c in COLUMNS}
    values.update(
        request_id=request_id,
        started_at=WHEN,
        ended_at=WHEN,
        latency_ms=1.0,
        provider="openai",
        model="gpt-4o",
        operation="chat.completions",
        stream=False,
        status="ok",
        currency="USD",
        cost_status="missing_usage",
        tags="{}",
    )
    return tuple(values[c] for c in COLUMNS)


async def test_a_tampered_spool_cannot_write_outside_the_body_folder(tmp_path: Path) -> None:
    good = uuid7(int(WHEN.timestamp() * 1000))
    spool = Spool(tmp_path / "spool")
    spool.append(
        [
            SpoolEntry(_row("../../escaped"), _envelope("x")),
            SpoolEntry(_row(good), _envelope(good)),
        ],
        reason="store_unavailable",
        db=None,
        storage=None,
    )
    db = await ml.SqliteAdapter.create(tmp_path / "log.db")
    storage = await ml.FileStorageAdapter.create(tmp_path / "bodies")
    try:
        result = await replay_spool(spool, db, storage, any_store=True)
        rows = {
            r["request_id"]: r["body_ref"] for r in await db.fetch("SELECT * FROM llm_requests")
        }
    finally:
        await db.close()
        await storage.close()
    assert result.records == 2
    assert rows["../../escaped"] is None  # the row is kept, without a body
    assert rows[good].startswith(f"2026/03/04/segments/{good}.seg.gz#")
    outside = [p for p in tmp_path.rglob("*escaped*")]
    assert outside == []
    assert os.listdir(tmp_path / "bodies") == ["2026"]
