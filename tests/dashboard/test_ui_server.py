"""The dashboard served (majordomo_log/dashboard/server.py, backend.py), read over HTTP
without a browser: the figures on the pages against SQL, the security headers, every bad
request a 4xx page, a failing store a 5xx page without secrets, and nothing written."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import logging
import re
import uuid
from collections.abc import Iterator
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from dashboard_log import drop, run, seeded_log
from servers import DIALECTS, POSTGRES_URL, require
from ui_log import NOW_TEXT, Log, direct_sql, logs

import majordomo_log as ml
from majordomo_log.dashboard import Dashboard
from majordomo_log.dashboard.server import CSP

PASSWORD = "s3cr3t-pw"  # tests/support/secret_scan.py looks for it everywhere


@pytest.fixture(scope="module", params=DIALECTS)
def log(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Log]:
    """The seeded log, in each dialect."""
    yield from logs(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def sqlite_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Log]:
    yield from logs("sqlite", tmp_path_factory)


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: str) -> None:
        self.status, self.headers, self.body = status, headers, body


def fetch(url: str, method: str = "GET", host: str | None = None) -> Response:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.putrequest(method, path or "/", skip_host=host is not None)
        if host is not None:
            conn.putheader("Host", host)
        conn.endheaders()
        answer = conn.getresponse()
        return Response(answer.status, dict(answer.getheaders()), answer.read().decode())
    finally:
        conn.close()


class Tables(HTMLParser):
    """Each table's rows by id: [(row heading, {column: (text, data-value)})]."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[tuple[str, str | None]]]] = {}
        self.current: str | None = None
        self.cell: list[str] | None = None
        self.value: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self.current = a.get("id") or f"table{len(self.tables)}"
            self.tables[self.current] = []
        elif tag == "tr" and self.current:
            self.tables[self.current].append([])
        elif tag in ("td", "th") and self.current:
            self.cell, self.value = [], a.get("data-value")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None and self.current:
            self.tables[self.current][-1].append(("".join(self.cell).strip(), self.value))
            self.cell = None
        elif tag == "table":
            self.current = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def tables(markup: str) -> dict[str, list[list[tuple[str, str | None]]]]:
    parser = Tables()
    parser.feed(markup)
    return parser.tables


@pytest.fixture(scope="module")
def served(log: Log) -> Iterator[tuple[Log, str]]:
    with Dashboard(log.db_url, log.storage_url, port=0) as dashboard:
        yield log, dashboard.url


@pytest.fixture(scope="module")
def sqlite_served(sqlite_log: Log) -> Iterator[tuple[Log, str]]:
    with Dashboard(sqlite_log.db_url, sqlite_log.storage_url, port=0) as dashboard:
        yield sqlite_log, dashboard.url


def dec(value: object) -> Decimal:
    if isinstance(value, float):
        return Decimal(repr(value)).quantize(Decimal("1e-10")).normalize()
    return Decimal(str(value)).normalize()


@pytest.mark.parametrize("by", ["model", "api_key_alias"])
async def test_the_spend_table_shows_what_sql_sums(served: tuple[Log, str], by: str) -> None:
    log, url = served
    page = fetch(f"{url}?by={by}&window=30d&until={NOW_TEXT}")
    assert page.status == 200
    rows = tables(page.body)["spend-table"]
    shown = {
        line[0][0]: (int(line[1][1] or 0), dec(line[2][1]) if line[2][1] else None)
        for line in rows[1:-1]
    }
    expected = await direct_sql(
        log,
        f"SELECT {by}, SUM(CASE WHEN status <> 'blocked' THEN 1 ELSE 0 END), SUM(total_cost)"
        f" FROM llm_requests GROUP BY {by}",
    )
    assert shown == {
        (k if k is not None else "(none)"): (int(c), dec(s) if s is not None else None)
        for k, c, s in expected
    }
    ((total,),) = await direct_sql(log, "SELECT SUM(total_cost) FROM llm_requests")
    assert rows[-1][0][0] == "total" and dec(rows[-1][2][1]) == dec(total)


async def test_tokens_and_error_tables_show_what_sql_counts(served: tuple[Log, str]) -> None:
    log, url = served
    page = fetch(f"{url}?by=feature&window=30d&until={NOW_TEXT}")
    found = tables(page.body)
    expected = await direct_sql(
        log,
        "SELECT feature, SUM(input_tokens), SUM(cache_read_tokens), SUM(cache_write_5m_tokens),"
        " SUM(cache_write_1h_tokens), SUM(output_tokens), SUM(reasoning_tokens),"
        " SUM(total_tokens), SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END)"
        " FROM llm_requests GROUP BY feature",
    )
    tokens = {
        line[0][0]: [int(c[1] or 0) for c in line[1:8]] for line in found["tokens-table"][1:-1]
    }
    assert tokens == {k: [int(v or 0) for v in rest[:7]] for k, *rest in expected}
    errors = {line[0][0]: int(line[2][1] or 0) for line in found["latency-table"][1:-1]}
    assert errors == {k: int(rest[7]) for k, *rest in expected}
    assert sum(errors.values()) > 0


def test_pages_carry_the_security_headers_and_name_no_outside_address(
    sqlite_served: tuple[Log, str],
) -> None:
    log, url = sqlite_served
    call = log.seeded.rows[0].request_id
    for path in (
        "",
        "?by=user_id&step=hour&window=24h",
        "budgets",
        "calls",
        f"call/{call}",
        "nope",
    ):
        page = fetch(url + path)
        assert page.status == (404 if path == "nope" else 200), path
        assert page.headers["Content-Security-Policy"] == CSP
        assert "script-src 'self'" in CSP and "unsafe" not in CSP
        assert page.headers["X-Content-Type-Options"] == "nosniff"
        assert page.headers["X-Frame-Options"] == "DENY"
        assert page.headers["Cache-Control"] == "no-store"
        assert page.headers["Content-Type"] == "text/html; charset=utf-8"
        addresses = re.findall(r"https?://[^\s\"'<>]+", page.body)
        assert [a for a in addresses if not a.startswith(url)] == [], path
        links = re.findall(r'(?:href|src|action)="([^"]*)"', page.body)
        assert links and all(re.match(r"/(?!/)|\?|data:,$", link) for link in links), links
        assert "Traceback" not in page.body
    script = fetch(url + "static/uPlot.iife.min.js")
    assert script.status == 200 and script.headers["Content-Type"].startswith("text/javascript")
    assert script.headers["Content-Security-Policy"] == CSP


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("?by=password", 400, "by=&#x27;password&#x27; is not one of"),
        ("?window=1y", 400, "is not one of 24h"),
        ("?until=soon", 400, "is not a date"),
        ("?by=model&by=feature", 400, "given 2 times"),
        ("?" + "&".join(f"p{i}=1" for i in range(30)), 400, "too many query parameters"),
        ("budgets?limit=5", 400, "unknown parameter"),
        ("calls?limit=100000", 400, "not a whole number from 1 to 500"),
        ("nope", 404, "no page"),
        ("call/01a20000-0000-7000-8000-000000000000", 404, "no call"),
        ("call/%3Cscript%3E", 404, "no call &#x27;&lt;script&gt;&#x27;"),
        ("static/../server.py", 404, "no "),
        ("static/server.py", 404, "no static file"),
    ],
)
def test_bad_requests_are_4xx_pages(
    sqlite_served: tuple[Log, str], path: str, status: int, says: str
) -> None:
    _, url = sqlite_served
    page = fetch(url + path)
    assert page.status == status and says in page.body, page.body[-400:]
    assert "Traceback" not in page.body and "<script>" not in page.body
    assert page.headers["Content-Security-Policy"] == CSP


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "BREW"])
def test_only_get_is_answered(sqlite_served: tuple[Log, str], method: str) -> None:
    _, url = sqlite_served
    page = fetch(url, method)
    if method == "BREW":  # not an HTTP method the stdlib knows: its 501, as our page
        assert page.status == 501
    else:
        assert page.status == 405 and page.headers["Allow"] == "GET"
        assert method == "HEAD" or "read-only" in page.body
    assert page.headers["Content-Security-Policy"] == CSP


def test_a_page_asked_by_another_host_name_is_refused(sqlite_served: tuple[Log, str]) -> None:
    _, url = sqlite_served
    port = urlsplit(url).port
    assert fetch(url, host=f"attacker.example:{port}").status == 400  # DNS rebinding
    assert fetch(url, host=f"localhost:{port}").status == 200
    assert fetch(url, host=f"127.0.0.1:{port}").status == 200


def test_nothing_is_written_to_the_log(tmp_path: Path) -> None:
    with seeded_log("sqlite", tmp_path, calls=30) as seeded:
        path = Path(seeded.db_url.removeprefix("sqlite:///"))
        before = hashlib.sha256(path.read_bytes()).hexdigest()
        with Dashboard(seeded.db_url, seeded.storage_url, port=0) as dashboard:
            for page in (
                "",
                "?step=hour&window=24h",
                "budgets",
                "calls",
                f"call/{seeded.rows[3].request_id}",
            ):
                assert fetch(dashboard.url + page).status == 200
        assert hashlib.sha256(path.read_bytes()).hexdigest() == before
        # A reader of a WAL-mode file (any reader: the CLI's read commands too) may leave
        # SQLite's -wal/-shm beside it; the log itself gets nothing.
        wal = path.with_name(path.name + "-wal")
        assert not wal.exists() or wal.stat().st_size == 0


def test_a_missing_sqlite_file_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    with pytest.raises(ml.ConfigError, match="no database at"):
        Dashboard(f"sqlite:///{missing}", port=0).start()
    assert not missing.exists() and list(tmp_path.iterdir()) == []


def test_a_sqlite_file_without_the_table_is_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    with pytest.raises(ml.StoreError, match="migrate"):
        Dashboard(f"sqlite:///{empty}", port=0).start()
    assert empty.read_bytes() == b""


def test_a_body_store_that_cannot_be_opened_costs_only_the_bodies(
    sqlite_log: Log, tmp_path: Path
) -> None:
    with Dashboard(sqlite_log.db_url, f"file://{tmp_path}/absent", port=0) as dashboard:
        assert fetch(dashboard.url).status == 200
        page = fetch(f"{dashboard.url}call/{sqlite_log.seeded.rows[0].request_id}")
        assert page.status == 200 and "the body store is not available" in page.body
        assert not (tmp_path / "absent").exists()


def test_a_call_page_shows_the_body_escaped(sqlite_served: tuple[Log, str]) -> None:
    log, url = sqlite_served
    hostile = log.seeded.hostile_ids[0]
    page = fetch(f"{url}call/{hostile}")
    assert page.status == 200
    assert "&lt;script&gt;window.__pwned" in page.body and "<script>window" not in page.body
    assert page.body.count("<script") == 0  # a call page runs no script at all
    row = tables(page.body)["call-row"]
    assert dict((line[0][0], line[1][0]) for line in row)["request_id"] == hostile


@pytest.mark.servers
def test_postgres_password_never_shown_and_a_failing_store_is_a_5xx_page(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    require("postgresql")  # trust auth: the password is accepted and ignored
    parts = urlsplit(POSTGRES_URL)
    with seeded_log("postgresql", tmp_path, calls=30) as seeded:
        schema = seeded.db_url.rsplit("schema=", 1)[1]
        netloc = f"{parts.username or 'postgres'}:{PASSWORD}@{parts.hostname}:{parts.port or 5432}"
        secret_url = parts._replace(netloc=netloc).geturl() + f"?schema={schema}"
        caplog.set_level(logging.DEBUG, logger="majordomo_log")
        with Dashboard(secret_url, seeded.storage_url, port=0) as dashboard:
            pages = [fetch(dashboard.url + p) for p in ("", "budgets", "calls", "nope", "?by=x")]
            assert [p.status for p in pages] == [200, 200, 200, 404, 400]
            assert all(PASSWORD not in p.body and ":***@" in p.body for p in pages)
            run(drop("postgresql", schema))  # the log goes away under the dashboard
            failed = fetch(dashboard.url)
            assert failed.status in (500, 503), failed.body[-300:]
            assert "reading the log failed" in failed.body or "unavailable" in failed.body
            assert PASSWORD not in failed.body and "Traceback" not in failed.body
        assert PASSWORD not in caplog.text
        assert "a query failed" in caplog.text or "unavailable" in caplog.text


@pytest.mark.servers
def test_a_postgres_schema_that_is_not_there_is_an_error_and_is_not_created() -> None:
    url = require("postgresql")
    schema = f"mdl_ui_absent_{uuid.uuid4().hex[:8]}"
    with pytest.raises(ml.StoreError):
        Dashboard(f"{url}?schema={schema}", port=0).start()

    async def exists() -> bool:
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            return bool(
                await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema)
            )
        finally:
            await conn.close()

    assert asyncio.run(exists()) is False


def test_a_call_logged_through_the_wrapper_reads_as_a_conversation(tmp_path: Path) -> None:
    """A body as the real OpenAI SDK and the writer made it, not a seeded one."""
    from majordomo_log.testing import FakeProvider, fake_openai_client

    prompt = '<script>alert("x")</script> {{ config }}'

    async def log_one() -> str:
        db = await ml.SqliteAdapter.create(tmp_path / "wrapped.db")
        storage = await ml.FileStorageAdapter.create(tmp_path / "bodies")
        provider = FakeProvider(openai_usage={"prompt_tokens": 20, "completion_tokens": 5})
        llm = ml.LoggingLLM(fake_openai_client(provider), db, storage, api_key_alias="k")
        with ml.tags(feature="chat"):
            answer = await llm.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": prompt}]
            )
        await llm.close()
        return ml.call_info(answer).request_id

    request_id = asyncio.run(log_one())
    with Dashboard(str(tmp_path / "wrapped.db"), str(tmp_path / "bodies"), port=0) as dashboard:
        page = fetch(f"{dashboard.url}call/{request_id}")
        overview = fetch(dashboard.url)
    assert page.status == 200 and overview.status == 200
    assert '<article class="message" data-role="user"><h4>user</h4><pre class="text">' in page.body
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; {{ config }}" in page.body
    assert 'data-role="assistant"' in page.body and "Hello from the fake provider" in page.body
    assert "<script" not in page.body
    spend = tables(overview.body)["spend-table"]
    assert [line[0][0] for line in spend[1:-1]] == ["gpt-4o"] and spend[1][1][1] == "1"
