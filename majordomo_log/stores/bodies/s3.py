"""Bodies archived in S3 or an S3-compatible store (MinIO, R2, SeaweedFS, Ceph).

Same envelopes and key layout as the file store (see ``layout.py``), under
``{prefix}/``. One aioboto3 client, and so one connection pool, per adapter.
Credentials come from the standard AWS chain (environment, profile, instance role)
or explicit arguments; they are never logged, shown in a repr or put in an error.
The default mode is ``segment``: one PUT per batch instead of one per call.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aioboto3
import aiohttp
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    HTTPClientError,
    ParamValidationError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from ..._exceptions import BodyNotFound, ConfigError, StoreError, StoreUnavailable
from ..._log import warn_once
from ...schema import Body
from ..fork import ForkGuard, abandon
from ..urls import TRUE_WORDS, parse_compresslevel, redact_url
from . import layout

# Error codes that say "not now": throttling, timeouts, the service's own failures.
# Any 5xx or 429 status counts too. Refusals (AccessDenied, NoSuchBucket,
# InvalidAccessKeyId, ...) are the configuration's and stay until someone fixes it.
_TRANSIENT_CODES = frozenset(
    {
        "SlowDown", "Throttling", "ThrottlingException", "ThrottledException",
        "RequestThrottled", "RequestLimitExceeded", "TooManyRequestsException",
        "BandwidthLimitExceeded", "RequestTimeout", "RequestTimeoutException",
        "InternalError", "ServiceUnavailable", "Busy", "OperationAborted",
        "PriorRequestNotComplete",
    }
)  # fmt: skip
OpenClient = Callable[[], Awaitable[tuple[Any, contextlib.AsyncExitStack]]]


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
        open_client: OpenClient | None = None,
    ) -> None:
        self._client = client
        self._stack = stack
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.mode = mode
        self.compresslevel = compresslevel
        self._put_args = put_args
        self._concurrency = concurrency
        self._limit = asyncio.Semaphore(concurrency)
        shown = f" at {redact_url(endpoint_url)}" if endpoint_url else ""
        self.url = f"s3://{bucket}/{self.prefix}{shown}"
        self.closed = False
        # The session (credentials included) lives only in this closure.
        self._open_client = open_client
        self._fork = ForkGuard()

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
        layout.check_mode(mode)
        if not bucket:
            raise ConfigError("S3Adapter needs a bucket name")
        if endpoint_url is not None:
            check_endpoint(endpoint_url)
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
        where = f"s3://{bucket}" + (f" at {redact_url(endpoint_url)}" if endpoint_url else "")

        async def open_client() -> tuple[Any, contextlib.AsyncExitStack]:
            stack = contextlib.AsyncExitStack()
            try:
                client = await stack.enter_async_context(
                    session.client("s3", endpoint_url=endpoint_url, config=config)
                )
            except BaseException:
                await stack.aclose()
                raise
            return client, stack

        try:
            client, stack = await open_client()
        except (BotoCoreError, OSError) as exc:
            raise _failure(f"cannot reach {where}", exc) from None
        try:
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
            raise _failure(where, exc) from None
        except (BotoCoreError, OSError, asyncio.TimeoutError) as exc:
            await stack.aclose()
            kind = (
                StoreUnavailable
                if isinstance(exc, (EndpointConnectionError, OSError)) or _transient(exc)
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
            open_client=open_client,
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
                options.setdefault("path_style", value.lower() in TRUE_WORDS)
            elif name == "compresslevel":
                options.setdefault("compresslevel", parse_compresslevel(value))
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
        """See ``base.BodyStore.put_many``: raises ``StoreUnavailable`` if any body met a
        transient failure (the writer puts the whole batch again: a PUT to the same key
        is idempotent), None for a body refused for good, or one whose request id or
        time cannot make a key (a tampered spool): that body alone."""
        if not bodies:
            return []
        if self.closed:
            raise StoreError(f"{self.url}: the store is closed")
        return await layout.put_checked(
            bodies, self._put_valid, lambda problem: self._refused(f"({problem})", None)
        )

    async def _put_valid(self, bodies: Sequence[Body]) -> list[str | None]:
        if self.mode == "segment":
            key, data, suffixes = await asyncio.to_thread(
                layout.build_segment, bodies, self.compresslevel
            )
            full = self._key(key)
            try:
                await self._put(full, data, "application/x-ndjson")
            except Exception as exc:
                what = f"a segment of {len(bodies)} bodies"
                if _transient(exc):
                    raise _failure(f"could not store {what} in {self.url}", exc) from None
                self._refused(what, exc)
                return [None] * len(bodies)
            return [f"s3://{self.bucket}/{full}{suffix}" for suffix in suffixes]
        compressed = await asyncio.to_thread(
            lambda: [layout.compress(payload, self.compresslevel) for _, _, payload in bodies]
        )
        keys = [self._key(layout.body_key(rid, started)) for rid, started, _ in bodies]
        results = await asyncio.gather(
            *(self._put(k, d, "application/json") for k, d in zip(keys, compressed, strict=True)),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, Exception) and _transient(result):
                failed = sum(isinstance(r, BaseException) for r in results)
                raise _failure(
                    f"could not store {failed} of {len(bodies)} bodies in {self.url}", result
                ) from None
        refs: list[str | None] = []
        for key, result in zip(keys, results, strict=True):
            if isinstance(result, BaseException):
                self._refused(key, result)
                refs.append(None)
            else:
                refs.append(f"s3://{self.bucket}/{key}")
        return refs

    def _refused(self, what: str, exc: BaseException | None) -> None:
        code = "invalid body" if exc is None else _code(exc) or type(exc).__name__
        warn_once(
            "body-store-refused",
            f"{self.url}:{code}",
            "could not store body %s in %s: %s (bodies refused this way are not retried)",
            what,
            self.url,
            code,
        )

    def _key_for(self, ref: str) -> tuple[str, tuple[int, int] | None]:
        """The key (under this store's prefix) and byte range a reference names, or
        ``BodyNotFound``: a reference never leads to another bucket or prefix, nor to a
        key some servers would normalize elsewhere ('..'), whatever a row holds."""
        if ref.startswith("s3://"):
            home = f"s3://{self.bucket}/{self.prefix}/" if self.prefix else f"s3://{self.bucket}/"
            if not ref.startswith(home):
                raise BodyNotFound(
                    f"body reference {layout.shown_ref(ref)} points outside {self.url}"
                )
            ref = ref[len(home) :]
        else:
            ref = layout.request_id_key(ref, self.mode)
        key, span = layout.parse_ref(ref)
        return self._key(key), span

    async def get(self, ref: str) -> dict[str, Any]:
        """The envelope for a stored reference (``s3://bucket/prefix/key[#offset+length]``),
        a key under this prefix, or, in object mode, a bare request id. ``BodyNotFound``
        for any reference that names no body here."""
        if self.closed:
            raise StoreError(f"{self.url}: the store is closed")
        key, span = self._key_for(ref)
        where = f"s3://{self.bucket}/{key}"
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if span is not None:
            args["Range"] = f"bytes={span[0]}-{span[0] + span[1] - 1}"
        try:
            response = await self._client.get_object(**args)
            async with response["Body"] as stream:
                data = await stream.read()
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "InvalidRange", "KeyTooLongError"):
                raise BodyNotFound(f"no body at {layout.shown_ref(where)}") from None
            raise StoreError(f"reading {layout.shown_ref(where)} failed: {code}") from None
        except ParamValidationError:
            raise BodyNotFound(f"{layout.shown_ref(ref)} is not a body reference") from None
        except (BotoCoreError, OSError) as exc:
            raise StoreUnavailable(
                f"reading {layout.shown_ref(where)} failed: {type(exc).__name__}"
            ) from None
        if span is not None and len(data) != span[1]:  # the range reached past the end
            raise BodyNotFound(f"{layout.shown_ref(ref)} reaches past the end of its object")
        return layout.read_envelope(data, ref)

    async def reopen(self) -> None:
        """A fresh client (see ``base.Reopenable``). In a forked child the inherited
        client and its connection pool are abandoned (``fork.abandon``): closing them would
        unregister the parent's sockets from the parent's epoll."""
        if self._open_client is None:
            raise StoreError(f"{self.url}: this store cannot reopen itself")
        if self._fork.inherited():
            abandon((self._client, self._stack), lambda: _transports(self._client))
        elif not self.closed:
            await self._stack.aclose()
        try:
            self._client, self._stack = await self._open_client()
        except (BotoCoreError, OSError) as exc:
            raise _failure(f"cannot reach {self.url}", exc) from None
        self._limit = asyncio.Semaphore(self._concurrency)  # the old one may know another loop
        self._fork.reset()
        self.closed = False

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._fork.inherited():  # the parent's client: see reopen()
            abandon((self._client, self._stack), lambda: _transports(self._client))
            return
        await self._stack.aclose()


def check_endpoint(endpoint_url: str) -> None:
    """An endpoint is ``http(s)://host[:port][/path]``. A user or password in it would
    be shown wherever the endpoint is (this store's url, errors, log lines, spool
    headers, botocore's debug log): refused, and never repeated in the error. Any '@'
    counts: an unencoded '#', '?' or '/' in a password moves it out of the user part."""
    if "@" in endpoint_url:
        raise ConfigError(
            "the S3 endpoint_url must not contain a user or password: credentials come "
            "from the AWS chain (environment, profile, role) or aws_access_key_id / "
            "aws_secret_access_key"
        )
    try:
        parts = urlsplit(endpoint_url)
        parts.port  # noqa: B018 - raises ValueError on a garbled netloc
    except ValueError:
        raise ConfigError(
            "the S3 endpoint_url cannot be parsed: use http(s)://host[:port]"
        ) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigError("the S3 endpoint_url must be http(s)://host[:port]")


def _code(exc: BaseException) -> str | None:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "")) or None
    return None


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return _code(exc) in _TRANSIENT_CODES or status >= 500 or status == 429
    if isinstance(exc, (BotoConnectionError, HTTPClientError)):
        return True  # refused, reset, closed, timed out: botocore's own retries ran out
    if isinstance(exc, BotoCoreError):
        return False  # no credentials, invalid parameters: configuration
    return isinstance(exc, (OSError, TimeoutError, asyncio.TimeoutError, aiohttp.ClientError))


def _failure(context: str, exc: BaseException) -> StoreError:
    """The error to raise, named by code or type only: botocore's own messages may
    quote request details, and credentials must never reach a message."""
    kind = StoreUnavailable if _transient(exc) else StoreError
    return kind(f"{context}: {_code(exc) or type(exc).__name__}")


def _transports(client: Any) -> Iterator[Any]:
    """The transports of the client's pooled connections (aiobotocore and aiohttp
    internals; see ``stores/fork.py``)."""
    sessions = client._endpoint.http_session._sessions.values()
    for session in sessions:
        connector = session.connector
        if connector is None:
            continue
        for conns in connector._conns.values():
            for proto, _ in conns:
                yield proto.transport
        for proto in connector._acquired:
            yield proto.transport
