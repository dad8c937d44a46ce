"""The S3 test server itself: a real SeaweedFS (or the configured server) that stores objects,
holds many buckets, and, when started with an identity, refuses other credentials."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
import s3server
from botocore.exceptions import ClientError
from s3server import S3Server, s3_server, s3_server_with_identities  # noqa: F401

aioboto3 = pytest.importorskip("aioboto3")

REFUSED = {"SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied", "InvalidClientTokenId"}


async def test_put_and_get_an_object(s3_server: S3Server) -> None:  # noqa: F811
    bucket = s3_server.new_bucket_name()
    await s3_server.create_bucket(bucket)
    body = bytes(range(256)) * 64
    async with aioboto3.Session().client("s3", **s3_server.client_kwargs()) as s3:
        await s3.put_object(Bucket=bucket, Key="dir/object.bin", Body=body)
        got = await s3.get_object(Bucket=bucket, Key="dir/object.bin")
        async with got["Body"] as stream:
            assert await stream.read() == body
        listed = await s3.list_objects_v2(Bucket=bucket)
        assert [o["Key"] for o in listed["Contents"]] == ["dir/object.bin"]
        with pytest.raises(ClientError) as missing:
            await s3.get_object(Bucket=bucket, Key="absent")
        assert missing.value.response["Error"]["Code"] in {"NoSuchKey", "404"}


async def test_bucket_names_are_unique_and_dns_style(s3_server: S3Server) -> None:  # noqa: F811
    names = {s3_server.new_bucket_name() for _ in range(100)}
    assert len(names) == 100
    for name in names:
        assert name.startswith("mdl-test-")
        assert 3 <= len(name) <= 63
        assert name == name.lower() and all(c.isalnum() or c == "-" for c in name)


async def test_many_buckets_can_be_created_and_written(s3_server: S3Server) -> None:  # noqa: F811
    buckets = [s3_server.new_bucket_name() for _ in range(25)]
    await asyncio.gather(*(s3_server.create_bucket(b) for b in buckets))
    async with aioboto3.Session().client("s3", **s3_server.client_kwargs()) as s3:
        await asyncio.gather(*(s3.put_object(Bucket=b, Key="k", Body=b.encode()) for b in buckets))
        for b in buckets:
            got = await s3.get_object(Bucket=b, Key="k")
            async with got["Body"] as stream:
                assert await stream.read() == b.encode()
            # head_bucket, not list_buckets: SeaweedFS without identities lists no buckets
            await s3.head_bucket(Bucket=b)


async def test_with_identities_wrong_credentials_are_refused(
    s3_server_with_identities: S3Server,  # noqa: F811
) -> None:
    server = s3_server_with_identities
    bucket = server.new_bucket_name()
    await server.create_bucket(bucket)  # the configured identity works
    async with aioboto3.Session().client("s3", **server.client_kwargs()) as s3:
        await s3.put_object(Bucket=bucket, Key="k", Body=b"v")

    wrong_secret = dataclasses.replace(server, secret_key=server.secret_key[::-1])
    unknown_key = dataclasses.replace(server, access_key="MDLNOSUCHKEY00000000")
    for wrong in (wrong_secret, unknown_key):
        async with aioboto3.Session().client("s3", **wrong.client_kwargs()) as s3:
            with pytest.raises(ClientError) as put:
                await s3.put_object(Bucket=bucket, Key="k2", Body=b"nope")
            assert put.value.response["Error"]["Code"] in REFUSED
            with pytest.raises(ClientError) as get:
                await s3.get_object(Bucket=bucket, Key="k")
            assert get.value.response["Error"]["Code"] in REFUSED
        with pytest.raises(ClientError) as create:
            await wrong.create_bucket(wrong.new_bucket_name())
        assert create.value.response["Error"]["Code"] in REFUSED

    async with aioboto3.Session().client("s3", **server.client_kwargs()) as s3:
        got = await s3.get_object(Bucket=bucket, Key="k")
        async with got["Body"] as stream:
            assert await stream.read() == b"v"
        with pytest.raises(ClientError):
            await s3.head_object(Bucket=bucket, Key="k2")  # the refused PUT wrote nothing


@pytest.mark.parametrize("required", [False, True])
def test_without_weed_or_endpoint_the_tests_skip_or_fail(
    required: bool, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    monkeypatch.setattr(s3server, "find_weed", lambda: None)
    monkeypatch.delenv(s3server.ENDPOINT_ENV, raising=False)
    monkeypatch.setenv(s3server.REQUIRE_ENV, "1" if required else "0")
    outcome = pytest.fail.Exception if required else pytest.skip.Exception
    with pytest.raises(outcome, match="no S3 server"):
        s3server.s3_server_or_skip(tmp_path_factory)


def test_a_configured_endpoint_starts_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    monkeypatch.setattr(s3server, "start_seaweedfs", None)  # would raise if called
    monkeypatch.setenv(s3server.ENDPOINT_ENV, "http://127.0.0.1:9/")
    monkeypatch.setenv(s3server.ACCESS_KEY_ENV, "AK")
    monkeypatch.setenv(s3server.SECRET_KEY_ENV, "SK")
    server, proc = s3server.s3_server_or_skip(tmp_path_factory, with_identities=True)
    assert proc is None
    assert server == S3Server("http://127.0.0.1:9", "AK", "SK")


def test_a_server_that_cannot_start_reports_its_log(tmp_path: Path) -> None:
    fake = tmp_path / "weed"
    fake.write_text("#!/bin/sh\necho 'fake weed: cannot start' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(RuntimeError, match=r"(?s)exited with code 3.*fake weed: cannot start"):
        s3server.start_seaweedfs(tmp_path / "run", weed=str(fake))
