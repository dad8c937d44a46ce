"""The body-store contract: the file store and the S3 store, each in object and segment
mode, against a real S3-compatible server (SeaweedFS) on loopback."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from s3server import S3Server, s3_server, s3_server_with_identities  # noqa: F401

import majordomo_log as ml
from majordomo_log.record.ids import uuid7
from majordomo_log.stores.base import Reopenable

WHEN = dt.datetime(2026, 3, 4, 23, 59, 59, tzinfo=dt.timezone.utc)
STORES = [("file", "object"), ("file", "segment"), ("s3", "object"), ("s3", "segment")]


async def open_store(kind: str, mode: str, tmp_path: Path, server: S3Server | None) -> Any:
    if kind == "file":
        return await ml.FileStorageAdapter.create(tmp_path / "bodies", mode=mode)
    assert server is not None
    bucket = server.new_bucket_name()
    await server.create_bucket(bucket)
    return await ml.S3Adapter.create(
        bucket, prefix="llm-logs", mode=mode, **server.adapter_kwargs()
    )


@pytest.fixture(
    params=[pytest.param(s, marks=pytest.mark.servers) if s[0] == "s3" else s for s in STORES],
    ids=[f"{k}-{m}" for k, m in STORES],
)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    kind, mode = request.param
    server = request.getfixturevalue("s3_server") if kind == "s3" else None
    adapter = await open_store(kind, mode, tmp_path, server)
    yield adapter
    await adapter.close()
    await adapter.close()  # idempotent


def envelope(request_id: str, **extra: Any) -> bytes:
    return json.dumps({"request_id": request_id, **extra}, ensure_ascii=False).encode()


async def test_is_a_body_store_that_reopens(store: Any) -> None:
    assert isinstance(store, ml.BodyStore) and isinstance(store, Reopenable)
    rid = uuid7(int(WHEN.timestamp() * 1000))
    await store.reopen()
    (ref,) = await store.put_many([(rid, WHEN, envelope(rid))])
    assert (await store.get(ref))["request_id"] == rid


async def test_round_trip_of_every_kind_of_body(store: Any) -> None:
    ids = [uuid7(int(WHEN.timestamp() * 1000)) for _ in range(4)]
    bodies = [
        (ids[0], WHEN, envelope(ids[0], text="héllo 😀 \u4e16\u754c")),
        (ids[1], WHEN, envelope(ids[1], text="x" * 10_000_000)),  # 10 MB
        (ids[2], WHEN, envelope(ids[2], blob={"$bytes_base64": "AP8="})),
        (ids[3], WHEN, envelope(ids[3], response=None)),
    ]
    refs = await store.put_many(bodies)
    assert all(refs) and len(set(refs)) == 4
    for (_, _, payload), ref in zip(bodies, refs, strict=True):
        assert await store.get(ref) == json.loads(payload)
    if store.mode == "object":  # a bare request id finds its body where the layout allows
        assert (await store.get(ids[0]))["text"] == "héllo 😀 \u4e16\u754c"
    else:
        with pytest.raises(ml.BodyNotFound, match="body_ref"):
            await store.get(ids[0])


async def test_layout_and_segments_readable_with_standard_tools(store: Any) -> None:
    ids = [uuid7(int(WHEN.timestamp() * 1000)) for _ in range(3)]
    refs = await store.put_many([(rid, WHEN, envelope(rid)) for rid in ids])
    if store.mode == "object":
        for rid, ref in zip(ids, refs, strict=True):
            assert ref.endswith(f"2026/03/04/{rid}.json.gz") and "#" not in ref
    else:
        keys = {ref.split("#")[0] for ref in refs}
        assert len(keys) == 1 and keys.pop().endswith(f"2026/03/04/segments/{ids[0]}.seg.gz")
    raw = await _raw(store, refs[0].split("#")[0])
    lines = gzip.decompress(raw).decode().splitlines()  # `zcat` of the object or segment
    expected = 1 if store.mode == "object" else 3
    assert [json.loads(line)["request_id"] for line in lines] == ids[:expected]


async def _raw(store: Any, ref: str) -> bytes:
    if isinstance(store, ml.FileStorageAdapter):
        return (store.root / ref).read_bytes()
    bucket, _, key = ref[len("s3://") :].partition("/")
    response = await store._client.get_object(Bucket=bucket, Key=key)
    assert response["ContentEncoding"] == "gzip"
    assert response["ContentType"] in ("application/json", "application/x-ndjson")
    async with response["Body"] as stream:
        return bytes(await stream.read())


async def test_concurrent_writers(store: Any) -> None:
    async def writer(n: int) -> list[tuple[str, str]]:
        out = []
        for _ in range(10):
            ids = [uuid7() for _ in range(20)]
            refs = await store.put_many([(rid, WHEN, envelope(rid, writer=n)) for rid in ids])
            out += list(zip(ids, refs, strict=True))
        return out

    written = [
        pair for batch in await asyncio.gather(*(writer(n) for n in range(4))) for pair in batch
    ]
    assert len(written) == 800
    sample = written[::37]
    bodies = await asyncio.gather(*(store.get(ref) for _, ref in sample))
    assert [b["request_id"] for b in bodies] == [rid for rid, _ in sample]


async def test_missing_body_is_body_not_found(store: Any) -> None:
    ref = uuid7() if store.mode == "object" else "2026/01/01/segments/nope.seg.gz#0+10"
    with pytest.raises(ml.BodyNotFound):
        await store.get(ref)


async def test_missing_bucket_is_a_clear_error(s3_server: S3Server) -> None:  # noqa: F811
    with pytest.raises(ml.StoreError, match="does not exist"):
        await ml.S3Adapter.create("mdl-no-such-bucket", **s3_server.adapter_kwargs())


async def test_wrong_credentials_are_refused_without_leaking_the_secret(
    s3_server_with_identities: S3Server,  # noqa: F811
) -> None:
    server = s3_server_with_identities
    bucket = server.new_bucket_name()
    await server.create_bucket(bucket)
    with pytest.raises(ml.StoreError) as info:
        await ml.S3Adapter.create(
            bucket,
            endpoint_url=server.endpoint_url,
            aws_access_key_id=server.access_key,
            aws_secret_access_key="wrong-secret-do-not-print",
            region_name=server.region,
            path_style=True,
        )
    assert "denied" in str(info.value) and "wrong-secret-do-not-print" not in str(info.value)
    good = await ml.S3Adapter.create(bucket, **server.adapter_kwargs())
    assert server.secret_key not in repr(good) and server.access_key not in repr(good)
    await good.close()


@pytest.mark.parametrize("mode", ["object", "segment"])
async def test_wrapped_calls_with_s3_bodies_and_cli_show(
    mode: str,
    tmp_path: Path,
    s3_server: S3Server,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from majordomo_log.testing import FakeProvider, fake_openai_client

    bucket = s3_server.new_bucket_name()
    await s3_server.create_bucket(bucket)
    url = (
        f"s3://{bucket}/archive?endpoint_url={s3_server.endpoint_url}"
        f"&path_style=1&mode={mode}&region={s3_server.region}"
    )
    # credentials from the standard AWS chain, as the CLI would find them
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    db = await ml.SqliteAdapter.create(tmp_path / "log.db")
    storage = await ml.open_storage(url)
    llm = ml.LoggingLLM(fake_openai_client(FakeProvider()), db, storage)
    infos = [
        ml.call_info(
            await llm.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": f"q{i}"}]
            )
        )
        for i in range(5)
    ]
    stats = await llm.close()
    assert (stats.written, stats.bodies_written, stats.bodies_failed) == (5, 5, 0)
    from majordomo_log.cli import main

    code = await asyncio.to_thread(
        main, ["show", infos[2].request_id, "--db", str(tmp_path / "log.db"), "--storage", url]
    )
    assert code == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["row"]["body_ref"].startswith(f"s3://{bucket}/archive/")
    assert shown["body"]["request"]["messages"] == [{"role": "user", "content": "q2"}]


# A server stopped mid-run (StoreUnavailable, the batch waits whole, nothing lost) and
# restarted: tests/test_adapter_faults.py::test_s3_server_stopped_then_restarted.
