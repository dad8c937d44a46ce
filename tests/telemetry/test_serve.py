"""``majordomo-log serve-metrics``: Prometheus metrics counted from the log database, on
SQLite, PostgreSQL and MySQL, compared with SQL; each row once, late rows included."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sample_rows import T0
from sample_rows import sample_row as row
from servers import DIALECTS, isolated_db

import majordomo_log as ml
from majordomo_log.telemetry.serve import RowFeed


def total(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return sum(
        s.value
        for m in registry.collect()
        for s in m.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_the_feed_counts_each_row_once_late_ones_too(dialect: str, tmp_path: Path) -> None:
    async with isolated_db(dialect, tmp_path) as db:
        first = [
            row(T0 + dt.timedelta(seconds=i), model=m, feature=f)
            for i, (m, f) in enumerate(
                [("gpt-4o", "search"), ("gpt-4o", "chat"), ("gpt-4o-mini", "search")]
            )
        ]
        failed = row(
            T0 + dt.timedelta(seconds=3), status="error", error_type="RateLimitError",
            total_cost=None, cost_status="error", input_tokens=None, output_tokens=None,
        )  # fmt: skip
        await db.write_batch([*first, failed], [])
        registry = CollectorRegistry()
        metrics = ml.PrometheusMetrics(registry, tags=["feature"])
        feed = RowFeed(db, metrics, since=T0 - dt.timedelta(hours=1))
        assert await feed.poll() == 4
        [sums] = await db.fetch(
            "SELECT COUNT(*) AS calls, SUM(total_cost) AS cost, SUM(input_tokens) AS tokens "
            "FROM llm_requests"
        )
        assert total(registry, "majordomo_llm_calls_total") == int(sums["calls"]) == 4
        cost = float(Decimal(str(sums["cost"])))
        assert total(registry, "majordomo_llm_cost_usd_total") == pytest.approx(cost)
        tokens = total(registry, "majordomo_llm_tokens_total", kind="input")
        assert tokens == int(sums["tokens"])
        assert total(registry, "majordomo_llm_calls_total", feature="search") == 2
        assert total(registry, "majordomo_llm_errors_total", error_type="RateLimitError") == 1
        # Polling again counts nothing twice; a row written late (started before the
        # newest one, within the look-back) is counted; one from before `since` is not.
        assert await feed.poll() == 0
        late = row(T0 + dt.timedelta(seconds=1, milliseconds=500))
        ancient = row(T0 - dt.timedelta(days=2))
        await db.write_batch([late, ancient], [])
        assert await feed.poll() == 1
        assert total(registry, "majordomo_llm_calls_total") == 5


async def test_the_feed_reads_past_a_page_of_rows_it_has_seen(tmp_path: Path) -> None:
    from majordomo_log.telemetry import serve

    async with isolated_db("sqlite", tmp_path) as db:
        old_page = serve.PAGE
        serve.PAGE = 10
        try:
            rows = [row(T0 + dt.timedelta(milliseconds=i)) for i in range(25)]
            await db.write_batch(rows, [])
            registry = CollectorRegistry()
            feed = RowFeed(db, ml.PrometheusMetrics(registry), since=T0)
            assert await feed.poll() == 25
            newer = [row(T0 + dt.timedelta(seconds=1, milliseconds=i)) for i in range(3)]
            await db.write_batch(newer, [])
            # The look-back window holds 25 rows already counted (more than a page): the
            # new ones behind them are still reached.
            assert await feed.poll() == 3
            assert total(registry, "majordomo_llm_calls_total") == 28
        finally:
            serve.PAGE = old_page


async def test_a_log_of_an_older_schema_is_read_as_it_is(tmp_path: Path) -> None:
    """serve-metrics never migrates: a log without the newest columns (span_id, from
    migration 0006) is read all the same."""
    import sqlite3

    async with isolated_db("sqlite", tmp_path) as db:
        await db.write_batch([row(T0), row(T0 + dt.timedelta(seconds=1))], [])
        path = db.path
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE llm_requests DROP COLUMN span_id")
    old = await ml.open_db(f"sqlite:///{path}", read_only=True)
    try:
        registry = CollectorRegistry()
        assert await RowFeed(db=old, observer=ml.PrometheusMetrics(registry), since=T0).poll() == 2
    finally:
        await old.close()


@pytest.mark.parametrize(
    "argument", [["--interval", "inf"], ["--interval", "nan"], ["--interval", "-1"],
                 ["--lateness", "-5"], ["--port", "70000"]],
)  # fmt: skip
def test_bad_numbers_are_one_line(argument: list[str], tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("majordomo-log")
    out = subprocess.run(
        [str(script), "serve-metrics", "--db", str(tmp_path / "x.db"), *argument],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert argument[0] in out.stderr.splitlines()[-1]


def test_serve_metrics_through_the_console_script(tmp_path: Path) -> None:
    import asyncio

    async def seed() -> None:
        db = await ml.SqliteAdapter.create(tmp_path / "log.db")
        now = dt.datetime.now(dt.timezone.utc)
        await db.write_batch(
            [row(now - dt.timedelta(minutes=10), feature="search") for _ in range(3)], []
        )
        await db.close()

    asyncio.run(seed())
    script = Path(sys.executable).with_name("majordomo-log")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    process = subprocess.Popen(
        [str(script), "serve-metrics", "--db", str(tmp_path / "log.db"), "--port", "0",
         "--since", "1h", "--tag", "feature", "--interval", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/metrics", banner)
        assert match, banner + (process.stderr.read() if process.poll() is not None else "")
        assert "3 calls so far" in banner
        text = urllib.request.urlopen(match[0], timeout=30).read().decode()
        [line] = [x for x in text.splitlines() if x.startswith("majordomo_llm_calls_total{")]
        assert 'feature="search"' in line and line.endswith(" 3.0")
        deadline = time.monotonic() + 60  # a row written now shows on a later scrape

        async def one_more() -> None:
            db = await ml.SqliteAdapter.create(tmp_path / "log.db")
            await db.write_batch([row(dt.datetime.now(dt.timezone.utc), feature="search")], [])
            await db.close()

        asyncio.run(one_more())
        while time.monotonic() < deadline:
            text = urllib.request.urlopen(match[0], timeout=30).read().decode()
            if 'majordomo_llm_calls_total{feature="search"' in text and " 4.0" in text:
                break
            time.sleep(0.2)
        calls = [x for x in text.splitlines() if x.startswith("majordomo_llm_calls_total{")]
        assert calls and calls[0].endswith(" 4.0"), calls
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_serve_metrics_without_a_database_is_one_line(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("majordomo-log")
    out = subprocess.run(
        [str(script), "serve-metrics", "--db", str(tmp_path / "none.db"), "--port", "0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "no database" in out.stderr
