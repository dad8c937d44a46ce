"""``majordomo-log report --by`` with several columns (``--by model --by feature`` or
``--by model,feature``) and the columns added to it (``session_id``, ``trace_id``,
``prompt_version``, ``status``): the figures against SQL run directly on the database,
the trend beside each figure, on SQLite, PostgreSQL and MySQL/MariaDB; an unknown
column is one line, and the user's text never reaches the SQL. Through the console
script."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from console import needs_script, run
from log_rows import UTC, blocked, log_at, row
from servers import DIALECTS

import majordomo_log as ml
from majordomo_log.cli.reports import as_decimal

pytestmark = needs_script

BASE = dt.datetime(2026, 4, 6, tzinfo=UTC)
DAY = dt.timedelta(days=1)
WEEK = dt.timedelta(days=7)
WINDOW = ["--since", BASE.isoformat(), "--until", (BASE + WEEK).isoformat()]


def log_rows() -> list[Any]:
    """This week (from BASE) and the week before: two models, two features and calls
    without one, two sessions, three traces, two prompt versions, every status."""
    gpt, claude = "gpt-4o", "claude-haiku-4-5"

    def tags(feature: str, session: str, trace: str, prompt: str) -> dict[str, str]:
        return {
            "feature": feature,
            "session_id": session,
            "trace_id": trace,
            "prompt_version": prompt,
        }

    return [
        row(1, BASE + DAY, cost="0.10", model=gpt, **tags("chat", "s-1", "t-1", "v1")),
        row(2, BASE + DAY, cost="0.20", model=gpt, **tags("chat", "s-1", "t-1", "v1")),
        row(3, BASE + 2 * DAY, cost=None, model=gpt, **tags("search", "s-2", "t-2", "v2"))._replace(
            status="error", cost_status="error"
        ),
        row(4, BASE + DAY, cost="0.05", model=claude, **tags("chat", "s-2", "t-3", "v2")),
        row(5, BASE + 2 * DAY, cost="0.01", model=claude)._replace(status="incomplete"),
        blocked(6, BASE + DAY, model=claude, feature="chat", session_id="s-1"),
        # the week before
        row(7, BASE - 3 * DAY, cost="0.15", model=gpt, feature="chat", session_id="s-0"),
        row(8, BASE - 2 * DAY, cost="0.05", model=claude, feature="chat", session_id="s-0"),
    ]


def report(url: str, *argv: str) -> list[dict[str, Any]]:
    done = run("report", "--db", url, *argv, "--format", "json")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def sql(url: str, query: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """A query run directly on the log, outside the report's code."""

    async def fetch() -> list[dict[str, Any]]:
        db = await ml.open_db(url, read_only=True)
        try:
            return await db.fetch(query, params)
        finally:
            await db.close()

    return asyncio.run(fetch())


def by_sql(url: str, columns: Sequence[str]) -> dict[tuple[Any, ...], tuple[int, Decimal]]:
    """(calls sent, their cost) per group in the window, straight from the database."""
    names = ", ".join(columns)
    rows = sql(
        url,
        f"SELECT {names}, COUNT(*) AS calls, SUM(total_cost) AS cost FROM llm_requests"
        f" WHERE started_at >= ? AND started_at < ? AND status <> 'blocked' GROUP BY {names}",
        (BASE, BASE + WEEK),
    )
    return {
        tuple(r[c] for c in columns): (int(r["calls"]), as_decimal(r["cost"]) or Decimal(0))
        for r in rows
    }


def figures(rows: list[dict[str, Any]], columns: Sequence[str]) -> dict[tuple[Any, ...], Any]:
    return {
        tuple(r[c] for c in columns): (r["calls"], Decimal(r["total_cost"] or 0))
        for r in rows
        if r["calls"]
    }


@pytest.mark.parametrize("dialect", DIALECTS)
def test_two_columns_match_sql_with_the_trend_beside_each_figure(
    dialect: str, tmp_path: Path
) -> None:
    with log_at(dialect, tmp_path, log_rows()) as url:
        repeated = report(url, "--by", "model", "--by", "feature", *WINDOW)
        listed = report(url, "--by", "model,feature", *WINDOW)
        flipped = report(url, "--by", "feature", "--by", "model", *WINDOW)
        expected = by_sql(url, ["model", "feature"])
    assert repeated == listed  # two ways of saying it, one report
    assert list(repeated[0])[:6] == [
        "model",
        "feature",
        "calls",
        "calls_trend",
        "errors",
        "blocked",
    ]
    assert list(flipped[0])[:2] == ["feature", "model"]
    assert figures(repeated, ["model", "feature"]) == expected
    assert figures(flipped, ["model", "feature"]) == expected
    got = {(r["model"], r["feature"]): r for r in repeated}
    assert set(got) == {
        ("gpt-4o", "chat"),
        ("gpt-4o", "search"),
        ("claude-haiku-4-5", "chat"),
        ("claude-haiku-4-5", None),
    }
    # most spent first; the trend against the week before, per combination
    assert (repeated[0]["model"], repeated[0]["feature"]) == ("gpt-4o", "chat")
    trends = {key: (r["calls_trend"], r["cost_trend"]) for key, r in got.items()}
    assert trends == {
        ("gpt-4o", "chat"): ("+100%", "+100%"),  # 2 calls, 0.30 against 1, 0.15
        ("claude-haiku-4-5", "chat"): ("0%", "0%"),  # the blocked attempt is not a call
        ("gpt-4o", "search"): ("new", None),  # an error: a call, no cost
        ("claude-haiku-4-5", None): ("new", "new"),
    }
    chat = got[("claude-haiku-4-5", "chat")]
    assert (chat["blocked"], got[("gpt-4o", "search")]["errors"]) == (1, 1)
    cols = list(repeated[0])
    assert cols.index("cost_trend") == cols.index("total_cost") + 1


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("column", ["session_id", "trace_id", "prompt_version", "status"])
def test_the_new_columns_match_sql(dialect: str, column: str, tmp_path: Path) -> None:
    with log_at(dialect, tmp_path, log_rows()) as url:
        rows = report(url, "--by", column, *WINDOW)
        expected = by_sql(url, [column])
        (total,) = sql(
            url,
            "SELECT COUNT(*) AS n FROM llm_requests WHERE started_at >= ? AND started_at < ?",
            (BASE, BASE + WEEK),
        )
    assert figures(rows, [column]) == expected
    assert sum(r["calls"] + r["blocked"] for r in rows) == int(total["n"])
    if column == "status":
        by = {r["status"]: r for r in rows}
        assert set(by) == {"ok", "error", "incomplete", "blocked"}
        assert (by["blocked"]["calls"], by["blocked"]["blocked"]) == (0, 1)
        assert by["error"]["errors"] == 1


@pytest.mark.parametrize("dialect", DIALECTS)
def test_day_with_another_column_trends_each_day_against_the_day_before(
    dialect: str, tmp_path: Path
) -> None:
    with log_at(dialect, tmp_path, log_rows()) as url:
        rows = report(url, "--by", "day,model", *WINDOW)
        done = run("report", "--db", url, "--by", "day", "--by", "model", *WINDOW)
    got = {(r["day"], r["model"]): r for r in rows}
    day1, day2 = (BASE + DAY).date().isoformat(), (BASE + 2 * DAY).date().isoformat()
    assert set(got) == {(day1, "gpt-4o"), (day2, "gpt-4o"), (day1, "claude-haiku-4-5")} | {
        (day2, "claude-haiku-4-5")
    }
    # each model against itself the day before, never against the other model
    assert (got[(day2, "gpt-4o")]["calls_trend"], got[(day2, "gpt-4o")]["cost_trend"]) == (
        "-50%",
        "-100%",
    )
    claude = got[(day2, "claude-haiku-4-5")]
    assert (claude["calls_trend"], claude["cost_trend"]) == ("0%", "-80%")
    assert got[(day1, "gpt-4o")]["calls_trend"] is None  # no day before it in the window
    assert done.returncode == 0 and "trend:" not in done.stdout  # rows compare with each other


@pytest.mark.parametrize("dialect", DIALECTS)
def test_values_apart_in_sqlite_are_apart_everywhere(dialect: str, tmp_path: Path) -> None:
    # MySQL's collations pad ('chat ' = 'chat'): grouped as bytes, as in the other two.
    at = BASE + DAY
    written = [
        row(1, at, feature="chat"),
        row(2, at, feature="chat "),
        row(3, at, feature="Chat"),
        row(4, at, feature="chat", model="gpt-4o "),
        row(5, at, feature="ü"),
    ]
    with log_at(dialect, tmp_path, written) as url:
        rows = report(url, "--by", "feature,model", *WINDOW)
    assert sorted((r["feature"], r["model"], r["calls"]) for r in rows) == [
        ("Chat", "gpt-4o", 1),
        ("chat", "gpt-4o", 1),
        ("chat", "gpt-4o ", 1),
        ("chat ", "gpt-4o", 1),
        ("ü", "gpt-4o", 1),
    ]


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("nothing", "'nothing'"),
        ("model,", "''"),
        ("model;DROP TABLE llm_requests", "'model;DROP TABLE llm_requests'"),
        ("model) AS x, (SELECT 1", "'model) AS x"),
        ("tags", "'tags'"),  # a real column, but not one to group by
        ("x" * 100_000, "'xxxxxxxx"),
    ],
)
def test_an_unknown_column_is_one_line_and_never_reaches_the_sql(
    value: str, named: str, tmp_path: Path
) -> None:
    with log_at("sqlite", tmp_path, log_rows()) as url:
        done = run("report", "--db", url, "--by", "model", "--by", value)
        (left,) = sql(url, "SELECT COUNT(*) AS n FROM llm_requests")
    assert done.returncode == 2 and done.stdout == ""
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and f"cannot group by {named}" in errors[0]
    assert "choose from model, " in errors[0] and "status" in errors[0]
    assert len(errors[0]) < 600  # a huge value is cut, not echoed
    assert int(left["n"]) == len(log_rows())


def test_by_does_not_go_with_outliers(tmp_path: Path) -> None:
    with log_at("sqlite", tmp_path, log_rows()) as url:
        done = run("report", "--outliers", "--db", url, "--by", "model,feature")
    assert done.returncode == 2
    assert "--by does not go with --outliers" in done.stderr and done.stderr.count("\n") == 1


def test_the_table_keeps_its_footer_with_several_columns(tmp_path: Path) -> None:
    with log_at("sqlite", tmp_path, log_rows()) as url:
        done = run("report", "--db", url, "--by", "model", "--by", "prompt_version", *WINDOW)
    assert done.returncode == 0
    header = done.stdout.splitlines()[0].split()
    assert header[:4] == ["model", "prompt_version", "calls", "calls_trend"]
    assert "5 calls, total $0.360000; 1 blocked by budgets" in done.stdout
    assert "trend: 2026-04-06 00:00 to 2026-04-13 00:00 UTC against the 7 days before" in (
        done.stdout
    )
