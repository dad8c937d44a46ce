"""``tail`` reads the log a page at a time (keyset pagination, no OFFSET) and prints
each page as it comes, on SQLite, PostgreSQL and MySQL/MariaDB: a store that counts its
reads shows the pages, rows at the same time are neither lost nor repeated across a
page boundary, the filters still apply, and what is printed page by page (CSV, JSON,
table) is what the whole list gives."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from log_rows import UTC, log_at, row
from servers import DIALECTS

import majordomo_log as ml
from majordomo_log.cli import reports
from majordomo_log.cli.main import main as cli_main
from majordomo_log.cli.render import render
from majordomo_log.cli.reports import CallFilter, iter_latest_calls
from majordomo_log.schema import Row

NOW = dt.datetime.now(UTC).replace(microsecond=0)


def log_rows() -> list[Row]:
    """11 calls, five of them at one instant (a page boundary falls among them) and two
    more at another; users alternate."""
    at = [NOW - dt.timedelta(minutes=m) for m in (1, 2, 3, 3, 3, 3, 3, 4, 5, 5, 6)]
    return [row(n, t, user_id=f"u-{n % 2}") for n, t in enumerate(at, start=1)]


class Counting:
    """A store that records each read: its SQL and how many rows it returned."""

    def __init__(self, db: Any) -> None:
        self.db, self.dialect = db, db.dialect
        self.reads: list[tuple[str, int]] = []

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = await self.db.fetch(sql, params)
        self.reads.append((sql, len(rows)))
        return rows


def flat(pages: list[list[str]]) -> list[str]:
    return [request_id for page in pages for request_id in page]


def expected(rows: Sequence[Row], user: str | None = None) -> list[str]:
    kept = [r for r in rows if user is None or r.user_id == user]
    return [r.request_id for r in sorted(kept, key=lambda r: (r.started_at, r.request_id))][::-1]


async def paged(
    url: str, limit: int, page_size: int, where: CallFilter | None = None
) -> tuple[list[list[str]], list[tuple[str, int]]]:
    db = await ml.open_db(url, read_only=True)
    try:
        store = Counting(db)
        pages = [
            [r["request_id"] for r in page]
            async for page in iter_latest_calls(store, limit, where=where, page_size=page_size)  # type: ignore[arg-type]
        ]
    finally:
        await db.close()
    return pages, store.reads


@pytest.mark.parametrize("dialect", DIALECTS)
def test_tail_reads_a_page_at_a_time(dialect: str, tmp_path: Path) -> None:
    written = log_rows()
    with log_at(dialect, tmp_path, written) as url:
        every, every_reads = asyncio.run(paged(url, 0, 3))
        some, some_reads = asyncio.run(paged(url, 7, 3))
        _, exact_reads = asyncio.run(paged(url, 0, 11))
        odd, _ = asyncio.run(paged(url, 0, 3, CallFilter(users=["u-1"])))
    assert [len(p) for p in every] == [3, 3, 3, 2]  # never more than a page in memory
    assert [n for _, n in every_reads] == [3, 3, 3, 2]  # a short page is the last read
    assert flat(every) == expected(written)  # none lost or repeated at equal times
    assert [len(p) for p in some] == [3, 3, 1] and [n for _, n in some_reads] == [3, 3, 1]
    assert flat(some) == expected(written)[:7]
    assert [n for _, n in exact_reads] == [11, 0]  # a full page: one more read to be sure
    assert flat(odd) == expected(written, "u-1")
    for sql, _ in every_reads + some_reads:
        assert "OFFSET" not in sql.upper() and "LIMIT ?" in sql


@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_pages_print_as_the_whole_list_does(
    fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(reports, "TAIL_PAGE", 4)
    with log_at("sqlite", tmp_path, log_rows()) as url:
        assert cli_main(["tail", "--db", url, "-n", "0", "--format", fmt]) == 0
        out = capsys.readouterr().out
        assert cli_main(["tail", "--db", url, "--user", "nobody", "--format", fmt]) == 0
        empty = capsys.readouterr().out

        async def whole() -> list[dict[str, Any]]:
            db = await ml.open_db(url, read_only=True)
            try:
                return await reports.latest_calls(db, 0)
            finally:
                await db.close()

        rows = asyncio.run(whole())
    assert len(rows) == 11
    if fmt == "table":  # a table per page of 4, each with its header
        tables = out.rstrip("\n").split("\n\n")
        assert len(tables) == 3
        assert tables == [render(rows[i : i + 4], fmt, reports.TAIL_COLUMNS) for i in (0, 4, 8)]
        assert empty == "(no calls)\n"
    else:
        assert out == render(rows, fmt, reports.TAIL_COLUMNS) + "\n"
        assert empty == render([], fmt, reports.TAIL_COLUMNS) + "\n"
    if fmt == "json":
        assert [r["request_id"] for r in json.loads(out)] == expected(log_rows())
