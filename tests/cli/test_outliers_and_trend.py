"""``majordomo-log report --outliers`` (the views a spend review starts from) and the plain
report's trend and blocked column, on a log made to measure: SQLite, and PostgreSQL and
MySQL/MariaDB for the outliers."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from log_rows import UTC, blocked, log_at, row
from servers import DIALECTS

from majordomo_log.cli import main
from majordomo_log.cli.trend import change, comparison

BASE = dt.datetime(2026, 3, 10, tzinfo=UTC)
WEEK = dt.timedelta(days=7)
WINDOW = ["--since", BASE.isoformat(), "--until", (BASE + WEEK).isoformat()]


def review_rows() -> list[Any]:
    """This week (from BASE) and the week before, as the module docstring's sections see
    them: four workflows (spend 1.00, 0.60, 0.40, 0.20; cost per accepted 1.00, unknown,
    0.10, and nothing accepted of one outcome), three users, two features."""
    at = BASE + dt.timedelta(days=1)
    out = [
        # wf-a: 2 calls, one retried, prompt v1, one accepted of two outcomes
        row(
            1,
            at,
            cost="0.50",
            workflow="wf-a",
            user_id="u-1",
            feature="chat",
            prompt_version="v1",
            outcome="accepted",
            retries=1,
            tools=0,
        ),
        row(
            2,
            at,
            cost="0.50",
            workflow="wf-a",
            user_id="u-1",
            feature="chat",
            prompt_version="v1",
            outcome="rejected",
            retries=0,
            tools=0,
        ),
        blocked(3, at, workflow="wf-a", user_id="u-1", feature="chat"),  # never counted
        # wf-c: one call, its outcome rejected
        row(
            4,
            at,
            cost="0.20",
            workflow="wf-c",
            user_id="u-3",
            feature="chat",
            prompt_version="v1",
            outcome="rejected",
        ),
        # wf-d: one call, no outcome
        row(5, at, cost="0.60", workflow="wf-d", user_id="u-1", feature="chat"),
        # the week before: chat 0.90 (u-1), search 0.50 (u-2)
        row(
            20,
            BASE - dt.timedelta(days=3),
            cost="0.90",
            workflow="wf-a",
            user_id="u-1",
            feature="chat",
        ),
        row(
            21,
            BASE - dt.timedelta(days=3),
            cost="0.50",
            workflow="wf-b",
            user_id="u-2",
            feature="search",
        ),
        # after the window
        row(30, BASE + WEEK, cost="9", workflow="wf-z", user_id="u-9", feature="chat"),
    ]
    # wf-b: 4 calls of 0.10, 3 tool calls each, model claude, prompt v2, all accepted
    out += [
        row(
            10 + i,
            at,
            cost="0.10",
            model="claude-haiku-4-5",
            workflow="wf-b",
            user_id="u-2",
            feature="search",
            prompt_version="v2",
            outcome="accepted",
            retries=0,
            tools=3,
        )
        for i in range(4)
    ]
    return out


def _json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> Any:
    assert main([*argv, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def _keys(rows: list[dict[str, Any]], name: str) -> list[str]:
    return [r[name] for r in rows]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_outlier_sections(dialect: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with log_at(dialect, tmp_path, review_rows()) as url:
        report = _json(["report", "--outliers", "--db", url, *WINDOW], capsys)
        by_value = _json(
            ["report", "--outliers", "--db", url, *WINDOW, "--sort", "cost_per_accepted"], capsys
        )
    assert report["since"] == BASE.isoformat() and report["sort"] == "spend"
    assert report["previous_since"] == (BASE - WEEK).isoformat()
    s = report["sections"]
    assert _keys(s["top_workflows"], "workflow") == ["wf-a", "wf-d", "wf-b", "wf-c"]
    wf_a = s["top_workflows"][0]
    assert (wf_a["calls"], Decimal(wf_a["total_cost"]), wf_a["outcomes"], wf_a["accepted"]) == (
        2,
        Decimal("1.00"),
        2,
        1,
    )
    assert Decimal(wf_a["cost_per_accepted"]) == Decimal("1")
    assert Decimal(s["top_workflows"][2]["cost_per_accepted"]) == Decimal("0.1")
    assert s["top_workflows"][1]["cost_per_accepted"] is None  # wf-d: no outcomes
    assert _keys(s["top_users"], "user_id") == ["u-1", "u-2", "u-3"]
    # jumps: chat 0.90 -> 1.80; search fell (not a jump); u-1 0.90 -> 1.60, u-3 is new
    (chat,) = s["jumps_by_feature"]
    assert (chat["feature"], Decimal(chat["increase"]), chat["change"]) == (
        "chat",
        Decimal("0.90"),
        "+100%",
    )
    assert [(j["user_id"], j["change"]) for j in s["jumps_by_user"]] == [
        ("u-1", "+78%"),
        ("u-3", "new"),
    ]
    (retries,) = s["retry_rates"]
    assert (retries["model"], retries["retried_calls"], retries["retried_pct"]) == (
        "gpt-4o",
        1,
        50.0,
    )
    (tools,) = s["tool_call_rates"]
    assert (tools["workflow"], tools["tool_calls"], tools["tool_calls_per_call"]) == (
        "wf-b",
        12,
        3.0,
    )
    assert [(v["prompt_version"], v["accepted_pct"]) for v in s["low_acceptance"]] == [
        ("v1", 33.3),
        ("v2", 100.0),
    ]
    # by cost per accepted: spent with nothing accepted first, not known last
    t = by_value["sections"]["top_workflows"]
    assert _keys(t, "workflow") == ["wf-c", "wf-a", "wf-b", "wf-d"]
    assert _keys(by_value["sections"]["low_acceptance"], "prompt_version") == ["v1", "v2"]


def test_outliers_as_table_and_csv_with_a_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with log_at("sqlite", tmp_path, review_rows()) as url:
        assert main(["report", "--outliers", "--db", url, *WINDOW, "--limit", "1"]) == 0
        table = capsys.readouterr().out
        assert main(["report", "--outliers", "--db", url, *WINDOW, "--format", "csv"]) == 0
        rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert table.startswith("Outliers, 2026-03-10 00:00 to 2026-03-17 00:00 UTC, by spend")
    assert "Highest-cost workflows\nworkflow" in table and "Acceptance by prompt version" in table
    assert "wf-a" in table and "wf-d" not in table  # one row per section
    assert {r["section"] for r in rows} >= {"top_workflows", "jumps_by_user", "low_acceptance"}
    assert next(r["workflow"] for r in rows if r["section"] == "top_workflows") == "wf-a"


def test_an_empty_window_and_the_default_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with log_at("sqlite", tmp_path, review_rows()) as url:
        report = _json(["report", "--outliers", "--db", url], capsys)  # the last 7 days
        assert main(["report", "--outliers", "--db", url, "--until", "2000-01-01"]) == 0
        empty = capsys.readouterr().out
    since, until = (dt.datetime.fromisoformat(report[k]) for k in ("since", "until"))
    assert until - since == WEEK
    assert empty.count("(none)") == 7


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report", "--sort", "spend"], "--sort goes with --outliers"),
        (["report", "--limit", "3"], "--limit goes with --outliers"),
        (["report", "--outliers", "--by", "model"], "--by does not go with --outliers"),
    ],
)
def test_options_that_do_not_go_together(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with log_at("sqlite", tmp_path, []) as url:
        assert main([*argv, "--db", url]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


# -- the plain report: blocked attempts apart, and the trend --------------------------------------


def test_report_counts_blocked_apart_with_the_trend(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with log_at("sqlite", tmp_path, review_rows()) as url:
        rows = _json(["report", "--by", "feature", "--db", url, *WINDOW], capsys)
        assert main(["report", "--by", "feature", "--db", url, *WINDOW]) == 0
        table = capsys.readouterr().out
    assert list(rows[0])[:5] == ["feature", "calls", "calls_trend", "errors", "blocked"]
    by = {r["feature"]: r for r in rows}
    # chat: 4 calls sent (0.90 the week before, 1 call), 1 blocked; search: 4 (0.50, 1)
    assert (by["chat"]["calls"], by["chat"]["blocked"], by["chat"]["unpriced"]) == (4, 1, 0)
    assert (by["chat"]["calls_trend"], by["chat"]["cost_trend"]) == ("+300%", "+100%")
    assert (by["search"]["calls_trend"], by["search"]["cost_trend"]) == ("+300%", "-20%")
    assert "8 calls, total $2.200000; 1 blocked by budgets" in table
    assert "trend: 2026-03-10 00:00 to 2026-03-17 00:00 UTC against the 7 days before" in table


def test_report_without_since_trends_the_last_seven_days(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = dt.datetime.now(UTC)
    written = [
        row(1, now - dt.timedelta(days=1), cost="0.30", feature="chat"),
        row(2, now - dt.timedelta(days=9), cost="0.10", feature="chat"),
        row(3, now - dt.timedelta(days=30), cost="5", feature="chat"),  # in the figures only
        row(4, now - dt.timedelta(days=40), cost="1", feature="old"),
    ]
    with log_at("sqlite", tmp_path, written) as url:
        rows = _json(["report", "--by", "feature", "--db", url], capsys)
        assert main(["report", "--db", url]) == 0
        table = capsys.readouterr().out
    by = {r["feature"]: r for r in rows}
    assert Decimal(by["chat"]["total_cost"]) == Decimal("5.40")
    assert by["chat"]["cost_trend"] == "+200%" and by["old"]["cost_trend"] is None
    assert "trend: the last 7 days (" in table and ") against the 7 days before" in table


def test_report_by_day_trends_day_over_day(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    written = [
        row(1, BASE, cost="0.10"),
        row(2, BASE + dt.timedelta(days=1), cost="0.15"),
        row(3, BASE + dt.timedelta(days=1), cost="0.15"),
    ]
    with log_at("sqlite", tmp_path, written) as url:
        rows = _json(["report", "--by", "day", "--db", url], capsys)
    by = {r["day"]: r for r in rows}
    assert (by["2026-03-11"]["calls_trend"], by["2026-03-11"]["cost_trend"]) == ("+100%", "+200%")
    assert by["2026-03-10"]["cost_trend"] is None


def test_change_and_comparison() -> None:
    assert [
        change(a, b) for a, b in [(1, 0), (0, 0), (0, 2), (3, 2), (2, 3), (Decimal("1.004"), 1)]
    ] == [
        "new",
        None,
        "-100%",
        "+50%",
        "-33%",
        "0%",
    ]
    periods = comparison(None, BASE, BASE)
    assert periods is not None and (periods.start, periods.previous_start) == (
        BASE - WEEK,
        BASE - 2 * WEEK,
    )
    assert comparison(BASE, BASE, BASE) is None  # an empty window has no trend
    assert comparison(dt.datetime(1, 1, 2, tzinfo=UTC), BASE, BASE) is None  # before year 1
