"""Shared fixtures for the wrapper tests: a fake provider and a pair of real stores."""

from __future__ import annotations

import gzip
import os
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Secret scan: these hooks capture the session's log records, then scan every store, body,
# spool file and log line for the keys the tests used (tests/support/secret_scan.py).
import servers
from hypothesis import settings
from secret_scan import (  # noqa: F401
    _secret_scan_basetemp,
    pytest_sessionfinish,
    pytest_sessionstart,
    pytest_terminal_summary,
)

import majordomo_log as ml
from majordomo_log.testing import FakeProvider

# CI (MAJORDOMO_TEST_REQUIRE_SERVERS=1, .ci/run) runs the property tests on a fixed
# sequence of examples, so that a landing is never decided by a draw; runs elsewhere
# explore new examples each time, and what they find becomes an @example.
settings.register_profile("ci", derandomize=True)
if os.environ.get("MAJORDOMO_TEST_REQUIRE_SERVERS") == "1":
    settings.load_profile("ci")

# Non-overlapping buckets expected from these numbers (OpenAI counts are inclusive):
# input 600, cache_read 400, output 200, reasoning 100, total 1300.
OPENAI_USAGE: Any = {
    "prompt_tokens": 1000,
    "cached_tokens": 400,
    "completion_tokens": 300,
    "reasoning_tokens": 100,
}
# Anthropic counts are additive: input 1000, cache_read 2000, 5m 300, 1h 200, output 500 = 4000.
ANTHROPIC_USAGE: Any = {
    "input_tokens": 1000,
    "cache_read_input_tokens": 2000,
    "cache_creation_5m": 300,
    "cache_creation_1h": 200,
    "output_tokens": 500,
}


@pytest.fixture(scope="session", autouse=True)
def _spool_under_basetemp(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Default spools of the whole suite go under pytest's basetemp, never the user's cache."""
    from majordomo_log.delivery.spool import SPOOL_DIR_ENV

    os.environ[SPOOL_DIR_ENV] = str(tmp_path_factory.mktemp("default-spool"))


# The ``servers`` mark: every test that needs PostgreSQL, MySQL or S3 carries it, so that
# ``-m "not servers"`` runs without any. The hook below marks the tests that request a
# server fixture (tests/support/s3server.py), tests/support/servers.py's DIALECTS marks its
# server dialects, and the rest are marked by hand. So that no mark goes missing, a test
# without it fails when it calls servers.require() (as isolated_db does for a server) or
# obtains a server fixture at run time (request.getfixturevalue).
SERVER_FIXTURES = frozenset({"s3_server", "s3_server_with_identities"})


@pytest.hookimpl(tryfirst=True)  # before -m deselects by the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.servers)


@pytest.fixture(autouse=True)
def _servers_marked(request: pytest.FixtureRequest) -> Iterator[None]:
    marked = request.node.get_closest_marker("servers") is not None
    servers.unmarked_test = None if marked else request.node.nodeid
    try:
        yield
    finally:
        servers.unmarked_test = None
    used = sorted(SERVER_FIXTURES.intersection(request.fixturenames))
    if used and not marked:
        pytest.fail(
            f"{request.node.nodeid} obtained {', '.join(used)} but is not marked servers: "
            "add @pytest.mark.servers (or pytest.param(..., marks=pytest.mark.servers))"
        )


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider(
        openai_usage=OPENAI_USAGE, anthropic_usage=ANTHROPIC_USAGE, embedding_tokens=7
    )


@dataclass
class Stores:
    db: ml.SqliteAdapter
    storage: ml.FileStorageAdapter
    db_path: Path
    body_root: Path

    def rows(self, where: str = "", params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Rows of llm_requests read with plain sqlite3 (a second connection), oldest first."""
        conn = sqlite3.connect(self.db_path)
        conn.row_factory = sqlite3.Row
        try:
            sql = "SELECT * FROM llm_requests"
            if where:
                sql += f" WHERE {where}"
            sql += " ORDER BY request_id"
            return [dict(r) for r in conn.execute(sql, params).fetchall()]
        finally:
            conn.close()

    def one_row(self) -> dict[str, Any]:
        rows = self.rows()
        assert len(rows) == 1, f"expected exactly one row, got {len(rows)}: {rows}"
        return rows[0]

    async def body(self, row: dict[str, Any]) -> dict[str, Any]:
        assert row["body_ref"], f"row {row['request_id']} has no body_ref"
        return await self.storage.get(row["body_ref"])

    def body_files(self) -> list[Path]:
        return sorted(self.body_root.rglob("*.json.gz"))

    def raw_body_bytes(self) -> list[tuple[bytes, bytes]]:
        """(raw file bytes, gunzipped bytes) of every stored body."""
        return [(p.read_bytes(), gzip.decompress(p.read_bytes())) for p in self.body_files()]


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[Stores]:
    db = await ml.SqliteAdapter.create(tmp_path / "log.db")
    storage = await ml.FileStorageAdapter.create(tmp_path / "bodies", mode="object")
    yield Stores(db, storage, tmp_path / "log.db", storage.root)
    await db.close()  # idempotent: a test that closed its wrapper closed them already
    await storage.close()
