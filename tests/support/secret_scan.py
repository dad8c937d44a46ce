"""Scan everything the test suite stored and logged for the secrets it used.

The suite's own outputs are the best sample of where a secret could leak: every SQLite
database and body file under pytest's basetemp (gzip members decompressed, gzip streams
embedded in other files too, such as SeaweedFS volumes), every spool file, every log
record emitted during the session, the rows of every PostgreSQL schema and MySQL database
a test used (scanned by tests/support/servers.py right before it drops them) and every
object in the SeaweedFS buckets (scanned by tests/support/s3server.py right before it
stops the server).

The secrets: :data:`TEST_KEYS` (every API key literal the tests use), :data:`PASSWORDS`,
every key a fake client was made with or a fake provider was sent
(``majordomo_log.testing.used_api_keys()``), and secrets registered at run time with
:func:`register_secret` (S3 secret keys). A finding names where the secret was and the
first six characters of the secret, never the whole secret.

tests/conftest.py runs :func:`session_scan` from ``pytest_sessionfinish`` and fails the
session on any finding; tests/support/test_secret_scan.py shows the scanner can fail.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase as fnmatch
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from majordomo_log.testing import DEFAULT_ANTHROPIC_KEY, DEFAULT_OPENAI_KEY, used_api_keys

if TYPE_CHECKING:
    from s3server import S3Server

# Every API key literal in the tests and in the demo (which the tests run). Keys given to a
# fake client or sent to a fake provider are found at run time as well (used_api_keys());
# this list also covers keys that never reach either, such as a hand-made client's.
TEST_KEYS: frozenset[str] = frozenset(
    {
        DEFAULT_OPENAI_KEY,
        DEFAULT_ANTHROPIC_KEY,
        "sk-demo-openai-not-a-real-key",  # majordomo_log/cli/demo.py
        "sk-ant-demo-not-a-real-key",
        "sk-test-123",
        "sk-ant-test-123",
        "azure-key-123",
        "sk-ant-api03-VERYSECRET-xyz",
        "sk-proj-TOPSECRET-0123456789abcdef",
        "sk-key-one",
        "sk-key-two",
        "sk-secret",
        "sk-instant",
        "sk-parent",
        "sk-child",
        "sk-SECRETKEY-1234567890",
        "sk-ROTATED-0987654321",
    }
)

# Passwords, HMAC secrets and S3 secret keys the tests put in URLs and options.
PASSWORDS: frozenset[str] = frozenset(
    {
        "s3cr3t-pw",
        "hunter2",
        "tiger",
        "S3CRET",
        "other-secret",  # key_hash_secret=
        "wrong-secret-do-not-print",
        "mdl-any-secret-key",  # tests/support/s3server.py ANONYMOUS_SECRET_KEY
    }
)

# Shorter strings would match by chance.
MIN_SECRET_LENGTH = 5

# Files under basetemp that hold a secret on purpose and are not an output of
# majordomo_log: (fnmatch pattern of the path relative to basetemp, why).
EXCLUDED: tuple[tuple[str, str], ...] = (
    (
        "seaweedfs-identities*/s3-identities.json",
        "SeaweedFS's identity config: the server has to be told the secret",
    ),
)

_registered: set[str] = set()
_excluded_paths: dict[Path, str] = {}
# Findings of scans that ran during the session (server namespaces, buckets).
_findings: list[Finding] = []
_notes: list[str] = []
_server_seconds = [0.0]  # spent scanning server namespaces and buckets during the session


def register_secret(secret: str) -> None:
    """Add a secret known only at run time (a generated password or S3 secret key)."""
    _registered.add(secret)


def exclude_path(path: Path, why: str) -> None:
    """Leave one file a test wrote a secret into on purpose (a test input) out of the scan."""
    _excluded_paths[Path(path).resolve()] = why


def all_secrets() -> frozenset[str]:
    return frozenset(
        s
        for s in TEST_KEYS | PASSWORDS | _registered | used_api_keys()
        if len(s) >= MIN_SECRET_LENGTH
    )


@dataclass(frozen=True)
class Finding:
    where: str
    secret: str  # "" when a scan could not run: that must not pass as clean either

    def __str__(self) -> str:
        if not self.secret:
            return self.where
        # Never the whole secret: the report itself is a log line.
        return f"{self.where}: secret starting {self.secret[:6]!r} ({len(self.secret)} chars)"


_GZIP_MAGIC = b"\x1f\x8b\x08"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_MAX_EMBEDDED_GZIP = 10_000  # gzip magic numbers tried per file (random data has few)


def gzip_members(data: bytes, start: int = 0) -> Iterator[tuple[int, bytes, int]]:
    """(offset, decompressed bytes, end offset) of each gzip member from ``start`` on, until
    the data ends or stops being gzip (a torn last member yields what did decompress)."""
    offset = start
    while data.startswith(_GZIP_MAGIC, offset):
        inflater = zlib.decompressobj(wbits=31)
        try:
            out = inflater.decompress(memoryview(data)[offset:])
        except zlib.error:
            return
        end = len(data) - len(inflater.unused_data)
        yield offset, out, end
        if not inflater.eof or end <= offset:
            return
        offset = end


@dataclass
class Scanner:
    """Looks for secrets in bytes, text, files, trees and SQLite databases."""

    secrets: Iterable[str]
    findings: list[Finding] = field(default_factory=list)
    files: int = 0
    scanned_bytes: int = 0

    def __post_init__(self) -> None:
        ordered = sorted({s for s in self.secrets if len(s) >= MIN_SECRET_LENGTH})
        self._needles = [(s, s.encode("utf-8", "surrogatepass")) for s in ordered]
        self._seen: set[tuple[str, str]] = set()

    def _found(self, where: str, secret: str) -> None:
        if (where, secret) not in self._seen:
            self._seen.add((where, secret))
            self.findings.append(Finding(where, secret))

    def text(self, where: str, text: str) -> None:
        self.scanned_bytes += len(text)
        for secret, _ in self._needles:
            if secret in text:
                self._found(where, secret)

    def data(self, where: str, data: bytes | memoryview, *, embedded_gzip: bool = True) -> None:
        """Raw bytes, and every gzip stream in them decompressed (a body file, each member of
        a segment, a body inside a SeaweedFS volume)."""
        raw = bytes(data)
        self.scanned_bytes += len(raw)
        for secret, needle in self._needles:
            if needle in raw:
                self._found(where, secret)
        if not embedded_gzip:
            return
        position, tried = raw.find(_GZIP_MAGIC), 0
        while position >= 0 and tried < _MAX_EMBEDDED_GZIP:
            tried += 1
            next_from = position + 1
            for index, (offset, out, end) in enumerate(gzip_members(raw, position)):
                member = "gzip" if position == 0 and index == 0 else f"gzip member at {offset}"
                self.data(f"{where} [{member}]", out, embedded_gzip=False)
                next_from = max(next_from, end)
            position = raw.find(_GZIP_MAGIC, next_from)

    def value(self, where: str, value: object) -> None:
        if isinstance(value, str):
            self.text(where, value)
        elif isinstance(value, bytes | bytearray | memoryview):
            self.data(where, value)
        elif value is not None and not isinstance(value, int | float):
            self.text(where, str(value))

    def rows(self, where: str, columns: list[str], rows: Iterable[Iterable[Any]]) -> None:
        """Every value of every row; a finding names the table, column and row number."""
        texts: list[tuple[int, str, str]] = []
        for number, row in enumerate(rows):
            for column, value in zip(columns, row, strict=False):
                if isinstance(value, str):
                    texts.append((number, column, value))
                elif value is not None and not isinstance(value, int | float):
                    self.value(f"{where} row {number} column {column}", value)
        # One pass over the table's text; only a table with a hit is searched value by value.
        joined = "\0".join(text for _, _, text in texts)
        self.scanned_bytes += len(joined)
        if any(secret in joined for secret, _ in self._needles):
            for number, column, text in texts:
                for secret, _ in self._needles:
                    if secret in text:
                        self._found(f"{where} row {number} column {column}", secret)

    def sqlite(self, path: Path, where: str) -> None:
        """Every text and blob of every table, read with sqlite3 (a value split over
        overflow pages is whole here, not in the raw bytes)."""
        try:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=1)
        except sqlite3.Error as exc:
            _notes.append(f"{where}: not opened as SQLite ({exc}); scanned as bytes only")
            return
        try:
            conn.text_factory = lambda b: b.decode("utf-8", "replace")
            tables = [
                name
                for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            ]
            for table in tables:
                quoted = '"' + table.replace('"', '""') + '"'
                columns = [
                    d[0] for d in conn.execute(f"SELECT * FROM {quoted} LIMIT 0").description
                ]
                # The whole table as one string, joined inside SQLite: only a table with a
                # hit is read again row by row to say where.
                joined = " || char(0) || ".join(
                    "ifnull(CAST(\"{}\" AS TEXT), '')".format(c.replace('"', '""')) for c in columns
                )
                (text,) = conn.execute(
                    f"SELECT group_concat({joined}, char(0)) FROM {quoted}"
                ).fetchone()
                self.scanned_bytes += len(text or "")
                if text and any(secret in text for secret, _ in self._needles):
                    cursor = conn.execute(f"SELECT * FROM {quoted}")
                    self.rows(f"{where} table {table}", columns, cursor)
        except sqlite3.Error as exc:
            _notes.append(f"{where}: SQLite read failed ({exc}); scanned as bytes only")
        finally:
            conn.close()

    def file(self, path: str, where: str) -> None:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:  # a server still shutting down removed it
            return
        except PermissionError:  # a test made it unreadable: it is ours to read anyway
            os.chmod(path, stat.S_IMODE(os.stat(path).st_mode) | stat.S_IRUSR)
            with open(path, "rb") as f:
                data = f.read()
        self.files += 1
        self.data(where, data)  # includes -wal and -journal files, whose pages are raw
        if data.startswith(_SQLITE_MAGIC):
            self.sqlite(Path(path), where)

    def tree(self, root: Path) -> None:
        """Every regular file under ``root`` except the excluded ones."""
        top = str(root.resolve())
        excluded = {str(p) for p in _excluded_paths}

        def unreadable(error: OSError) -> None:
            _notes.append(f"not scanned: {error}")

        for dirpath, dirnames, filenames in os.walk(top, onerror=unreadable):
            for name in dirnames:  # a test that made a folder unreadable still gets scanned
                folder = os.path.join(dirpath, name)
                mode = os.lstat(folder).st_mode
                if stat.S_ISDIR(mode) and mode & 0o500 != 0o500:
                    os.chmod(folder, stat.S_IMODE(mode) | 0o700)
            for name in filenames:
                path = os.path.join(dirpath, name)
                try:
                    if not stat.S_ISREG(os.lstat(path).st_mode):
                        continue
                except FileNotFoundError:
                    continue
                relative = os.path.relpath(path, top)
                if path in excluded or any(fnmatch(relative, p) for p, _ in EXCLUDED):
                    continue
                self.file(path, relative)


# -- log records ---------------------------------------------------------------------------

MAX_LOG_LINES = 100_000


class LogCapture(logging.Handler):
    """Keeps every distinct formatted log line (message, arguments, traceback) of the session.
    Past MAX_LOG_LINES distinct lines, a line is scanned when it is emitted instead."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: dict[str, str] = {}  # line -> where
        self.records = 0
        self.overflow = Scanner(())

    def emit(self, record: logging.LogRecord) -> None:
        self.records += 1
        try:
            line = self.format(record)
        except Exception:  # a record whose arguments do not format: keep the raw parts
            line = f"{record.msg!r} % {record.args!r}"
        if line in self.lines:
            return
        where = f"log record {record.name} {record.levelname} ({record.pathname}:{record.lineno})"
        if len(self.lines) < MAX_LOG_LINES:
            self.lines[line] = where
            return
        if not self.overflow._needles:
            self.overflow = Scanner(all_secrets())
        self.overflow.text(where, line)


LOG_CAPTURE = LogCapture()


def install_log_capture() -> None:
    """Capture records reaching the root logger and the majordomo_log logger (in case a test
    stops it propagating); a record seen by both is one line."""
    for name in ("", "majordomo_log"):
        logger = logging.getLogger(name)
        if LOG_CAPTURE not in logger.handlers:
            logger.addHandler(LOG_CAPTURE)


def scan_log_lines(scanner: Scanner, capture: LogCapture = LOG_CAPTURE) -> None:
    for line, where in capture.lines.items():
        scanner.text(where, line)
    scanner.findings.extend(capture.overflow.findings)


# -- servers: called by the fixtures before they drop or stop what the tests used ----------


def _current_test() -> str:
    return os.environ.get("PYTEST_CURRENT_TEST", "outside a test").rsplit(" (", 1)[0]


async def scan_postgres_schema(
    conn: Any,
    schema: str,
    into: list[Finding] | None = None,
    secrets: Iterable[str] | None = None,
) -> None:
    """Every row of every table in ``schema`` (an asyncpg connection). Findings go to
    ``into`` (by default the session's); ``secrets`` defaults to :func:`all_secrets`."""
    into = _findings if into is None else into
    started = time.perf_counter()
    scanner = Scanner(all_secrets() if secrets is None else secrets)
    try:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
        )
        for (table,) in tables:
            quoted = '"{}"."{}"'.format(schema.replace('"', '""'), table.replace('"', '""'))
            rows = await conn.fetch(f"SELECT * FROM {quoted}")
            columns = list(rows[0].keys()) if rows else []
            where = f"{_current_test()}: postgresql {schema}.{table}"
            scanner.rows(where, columns, (tuple(r.values()) for r in rows))
    except Exception as exc:  # a scan that did not run must not pass as clean
        into.append(Finding(f"postgresql {schema}: scan failed: {exc!r}", ""))
    into.extend(scanner.findings)
    _server_seconds[0] += time.perf_counter() - started


async def scan_mysql_database(
    url: str,
    database: str,
    into: list[Finding] | None = None,
    secrets: Iterable[str] | None = None,
) -> None:
    """Every row of every table in ``database`` on the server at ``url``."""
    from urllib.parse import urlsplit

    import aiomysql

    into = _findings if into is None else into
    started = time.perf_counter()
    scanner = Scanner(all_secrets() if secrets is None else secrets)
    parts = urlsplit(url)
    try:
        conn = await aiomysql.connect(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 3306,
            user=parts.username or "root",
            password=parts.password or "",
            db=database,
            charset="utf8mb4",
        )
        try:
            async with conn.cursor() as cur:
                await cur.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                    (database,),
                )
                for (table,) in await cur.fetchall():
                    await cur.execute("SELECT * FROM `{}`".format(table.replace("`", "``")))
                    columns = [d[0] for d in cur.description or ()]
                    where = f"{_current_test()}: mysql {database}.{table}"
                    scanner.rows(where, columns, await cur.fetchall())
        finally:
            conn.close()
    except Exception as exc:
        into.append(Finding(f"mysql {database}: scan failed: {exc!r}", ""))
    into.extend(scanner.findings)
    _server_seconds[0] += time.perf_counter() - started


def scan_s3_server(
    server: S3Server,
    *,
    only_prefix: str = "",
    into: list[Finding] | None = None,
    secrets: Iterable[str] | None = None,
) -> None:
    """Every object of every bucket (whose name starts with ``only_prefix``), gunzipped."""
    from concurrent.futures import ThreadPoolExecutor

    import boto3

    into = _findings if into is None else into
    started = time.perf_counter()
    scanner = Scanner(all_secrets() if secrets is None else secrets)
    try:
        client = boto3.session.Session().client("s3", **server.client_kwargs())
        try:
            keys = []
            for bucket in client.list_buckets().get("Buckets", []):
                name = bucket["Name"]
                if not name.startswith(only_prefix):
                    continue
                for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
                    keys += [(name, obj["Key"]) for obj in page.get("Contents", [])]

            def get(bucket_key: tuple[str, str]) -> tuple[str, bytes]:
                bucket, key = bucket_key
                body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
                return f"s3://{bucket}/{key} ({server.endpoint_url})", body

            with ThreadPoolExecutor(8) as pool:
                for where, body in pool.map(get, keys):
                    scanner.data(where, body)
            _notes.append(f"S3 {server.endpoint_url}: {len(keys)} objects scanned")
        finally:
            client.close()
    except Exception as exc:
        into.append(Finding(f"S3 {server.endpoint_url}: scan failed: {exc!r}", ""))
    into.extend(scanner.findings)
    _server_seconds[0] += time.perf_counter() - started


# -- the whole session -----------------------------------------------------------------------


@dataclass
class Report:
    findings: list[Finding]
    notes: list[str]
    secrets: int
    files: int
    scanned_bytes: int
    log_lines: int
    seconds: float  # the session-end scan
    server_seconds: float  # the scans of server namespaces and buckets on the way


def session_scan(basetemp: Path | None) -> Report:
    """Scan basetemp and the session's log lines; add what the fixtures found on the way."""
    started = time.perf_counter()
    scanner = Scanner(all_secrets())
    if basetemp is not None and basetemp.exists():
        scanner.tree(basetemp)
    scan_log_lines(scanner)
    return Report(
        findings=[*_findings, *scanner.findings],
        notes=list(_notes),
        secrets=len(scanner._needles),
        files=scanner.files,
        scanned_bytes=scanner.scanned_bytes,
        log_lines=len(LOG_CAPTURE.lines),
        seconds=time.perf_counter() - started,
        server_seconds=_server_seconds[0],
    )


# -- pytest hooks, imported into tests/conftest.py -------------------------------------------

_basetemp: list[Path] = []
_report: list[Report] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    install_log_capture()


@pytest.fixture(scope="session", autouse=True)
def _secret_scan_basetemp(tmp_path_factory: pytest.TempPathFactory) -> None:
    _basetemp.append(tmp_path_factory.getbasetemp())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the session when a secret was found anywhere (after the tests ran, so that the
    report names every place at once)."""
    report = session_scan(_basetemp[0] if _basetemp else None)
    _report.append(report)
    if report.findings and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _report:
        return
    report = _report[0]
    summary = (
        f"secret scan: {report.secrets} secrets, {report.files} files, "
        f"{report.scanned_bytes / 2**20:.1f} MiB, {report.log_lines} log lines in "
        f"{report.seconds:.1f} s, servers' rows and objects in {report.server_seconds:.1f} s"
    )
    if not report.findings:
        terminalreporter.write_line(summary + ": clean")
        return
    terminalreporter.section("secret scan: SECRETS FOUND", sep="=", red=True, bold=True)
    for finding in report.findings:
        terminalreporter.write_line(str(finding))
    for note in report.notes:
        terminalreporter.write_line(f"note: {note}")
    terminalreporter.write_line(summary + f": {len(report.findings)} findings", red=True)
