"""Bodies archived in S3 or an S3-compatible store (MinIO, R2, SeaweedFS, Ceph).

Same envelopes and key layout as the file store (see ``_bodies``), under
``{prefix}/``. One aioboto3 client, and so one connection pool, per adapter.
Credentials come from the standard AWS chain (environment, profile, instance role)
or explicit arguments; they are never logged, shown in a repr or put in an error.
The default mode is ``segment``: one PUT per batch instead of one per call.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aioboto3
import orjson
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from .._exceptions import BodyNotFound, ConfigError, StoreError, StoreUnavailable
from .._log import logger
from ._bodies import (
    body_key,
    build_segment,
    check_mode,
    compress,
    decompress,
    is_request_id,
    key_for_request_id,
    split_ref,
)
from .base import Body

_TRUE = ("1", "true", "yes", "on")


class S3Adapter:
    """``await S3Adapter.create("my-bucket", prefix="llm-logs", endpoint_url=None, ...)``."""

    def __init__(
        self,
        client: Any,
        stack: contextlib.AsyncExitStack,
        bucket: str,
        prefix: str,
        *,
        mode: str,
        compresslevel: int,
        put_args: dict[str, str],
        concurrency: int,
        endpoint_url: str | None,
    ) -> None:
        self._client = client
        self._stack = stack
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.mode = mode
        self.compresslevel = compresslevel
        self._put_args = put_args
        self._limit = asyncio.Semaphore(concurrency)
        self.url = f"s3://{bucket}/{self.prefix}" + (f" at {endpoint_url}" if endpoint_url else "")
        self.closed = False

    @classmethod
    async def create(
        cls,
        bucket: str,
        prefix: str = "llm-logs",
        *,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        profile_name: str | None = None,
        mode: str = "segment",
        compresslevel: int = 1,
        server_side_encryption: str | None = None,
        sse_kms_key_id: str | None = None,
        storage_class: str | None = None,
        path_style: bool = False,
        max_pool_connections: int = 32,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
    ) -> S3Adapter:
        check_mode(mode)
        if not bucket:
            raise ConfigError("S3Adapter needs a bucket name")
        put_args = {}
        if server_side_encryption:
            put_args["ServerSideEncryption"] = server_side_encryption
        if sse_kms_key_id:
            put_args["ServerSideEncryption"] = server_side_encryption or "aws:kms"
            put_args["SSEKMSKeyId"] = sse_kms_key_id
        if storage_class:
            put_args["StorageClass"] = storage_class
        session = aioboto3.Session(
            aws_access_key_id=aws_access_key_id,
            aws_secret_access_key=aws_secret_access_key,
            aws_session_token=aws_session_token,
            region_name=region_name,
            profile_name=profile_name,
        )
        config = Config(
            s3={"addressing_style": "path" if path_style else "auto"},
            max_pool_connections=max_pool_connections,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": 3, "mode": "standard"},
        )
        stack = contextlib.AsyncExitStack()
        where = f"s3://{bucket}" + (f" at {endpoint_url}" if endpoint_url else "")
        try:
            client = await stack.enter_async_context(
                session.client("s3", endpoint_url=endpoint_url, config=config)
            )
            await client.head_bucket(Bucket=bucket)
        except ClientError as exc:
            await stack.aclose()
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise StoreError(f"bucket {bucket!r} does not exist ({where})") from None
            if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise StoreError(
                    f"access to {where} denied ({code}): check the credentials and the "
                    "bucket policy"
                ) from None
            raise StoreError(f"{where}: {code or type(exc).__name__}") from None
        except (BotoCoreError, OSError) as exc:
            await stack.aclose()
            kind = (
                StoreUnavailable
                if isinstance(exc, (EndpointConnectionError, OSError))
                else StoreError
            )
            raise kind(f"cannot reach {where}: {type(exc).__name__}") from None
        return cls(
            client,
            stack,
            bucket,
            prefix,
            mode=mode,
            compresslevel=compresslevel,
            put_args=put_args,
            concurrency=max_pool_connections,
            endpoint_url=endpoint_url,
        )

    @classmethod
    async def from_url(cls, url: str, **options: Any) -> S3Adapter:
        """``s3://bucket/prefix?endpoint_url=http://...&region=...&path_style=1&mode=object
        &sse=aws:kms&kms_key_id=...&storage_class=STANDARD_IA``. Credentials are not taken
        from URLs: use the AWS chain or keyword arguments."""
        parts = urlsplit(url)
        if parts.username or parts.password:
            raise ConfigError("put S3 credentials in the AWS chain, not in the URL")
        query = dict(parse_qsl(parts.query))
        known = {
            "endpoint_url": "endpoint_url",
            "region": "region_name",
            "region_name": "region_name",
            "mode": "mode",
            "sse": "server_side_encryption",
            "kms_key_id": "sse_kms_key_id",
            "storage_class": "storage_class",
            "profile": "profile_name",
        }
        for name, value in query.items():
            if name == "path_style":
                options.setdefault("path_style", value.lower() in _TRUE)
            elif name == "compresslevel":
                options.setdefault("compresslevel", int(value))
            elif name in known:
                options.setdefault(known[name], value)
            else:
                raise ConfigError(f"unknown S3 URL option {name!r}")
        return await cls.create(parts.netloc, parts.path.strip("/") or "llm-logs", **options)

    def __repr__(self) -> str:
        return f"<S3Adapter {self.url!r} {self.mode}>"

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    async def _put(self, key: str, data: bytes, content_type: str) -> None:
        async with self._limit:
            await self._client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentType=content_type,
                ContentEncoding="gzip",
                **self._put_args,
            )

    async def put_many(self, bodies: Sequence[Body]) -> list[str | None]:
        if not bodies:
            return []
        if self.mode == "segment":
            key, data, suffixes = await asyncio.to_thread(build_segment, bodies, self.compresslevel)
            full = self._key(key)
            try:
                await self._put(full, data, "application/x-ndjson")
            except Exception as exc:
                _warn(f"a segment of {len(bodies)} bodies", exc)
                return [None] * len(bodies)
            return [f"s3://{self.bucket}/{full}{suffix}" for suffix in suffixes]
        compressed = await asyncio.to_thread(
            lambda: [compress(payload, self.compresslevel) for _, _, payload in bodies]
        )
        keys = [self._key(body_key(rid, started)) for rid, started, _ in bodies]
        results = await asyncio.gather(
            *(self._put(k, d, "application/json") for k, d in zip(keys, compressed, strict=True)),
            return_exceptions=True,
        )
        refs: list[str | None] = []
        for key, result in zip(keys, results, strict=True):
            if isinstance(result, BaseException):
                _warn(key, result)
                refs.append(None)
            else:
                refs.append(f"s3://{self.bucket}/{key}")
        return refs

    async def get(self, ref: str) -> dict[str, Any]:
        """The envelope for a stored reference (``s3://bucket/key[#offset+length]``), a
        key under this prefix, or, in object mode, a bare request id."""
        bucket = self.bucket
        if ref.startswith("s3://"):
            bucket, _, rest = ref[len("s3://") :].partition("/")
        elif is_request_id(ref):
            if self.mode == "segment":
                raise BodyNotFound(
                    "in segment mode a body is found by the reference on its row (body_ref)"
                )
            rest = self._key(key_for_request_id(ref))
        else:
            rest = self._key(ref)
        key, span = split_ref(rest)
        args: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if span is not None:
            args["Range"] = f"bytes={span[0]}-{span[0] + span[1] - 1}"
        try:
            response = await self._client.get_object(**args)
            async with response["Body"] as stream:
                data = await stream.read()
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "InvalidRange"):
                raise BodyNotFound(f"no body at s3://{bucket}/{key}") from None
            raise StoreError(f"reading s3://{bucket}/{key} failed: {code}") from None
        except (BotoCoreError, OSError) as exc:
            raise StoreUnavailable(
                f"reading s3://{bucket}/{key} failed: {type(exc).__name__}"
            ) from None
        try:
            result: dict[str, Any] = orjson.loads(decompress(data, ref))
        except orjson.JSONDecodeError as exc:  # e.g. a range spanning two members
            raise BodyNotFound(f"the body at {ref!r} is not one JSON envelope") from exc
        return result

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        await self._stack.aclose()


def _warn(what: str, exc: BaseException) -> None:
    code = exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else None
    logger.warning("could not store body %s in S3: %s", what, code or type(exc).__name__)
