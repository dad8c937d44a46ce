"""``majordomo-log budgets status``: the budgets recorded in the log, each scope value's
standing in its current period, on SQLite, PostgreSQL and MySQL/MariaDB; and the library
function behind it (``budgets/status.py``) at chosen moments."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from log_rows import UTC, blocked, log_at, row
from servers import DIALECTS

import majordomo_log as ml
from majordomo_log.budgets.budget import Budget
from majordomo_log.budgets.status import budget_status, status_rows
from majordomo_log.cli import main

PER_USER = Budget("0.05", per="total", scope="user_id", hard=True, name="per user")
WHOLE = Budget(limit_requests=10, per="total", name="all requests")
CAP = Budget(limit_tokens=1000, per="call", hard=True, name="call cap")
ORGS = Budget("1", per="month", scope="org", name="per org")  # no call has an org


def rows(now: dt.datetime) -> list[Any]:
    """u-1 spent 0.05 (100%), two days ago included, u'2 0.06 (120%); a blocked attempt and
    a call of unknown cost add nothing; 6 calls were sent; the largest call of the last day
    took 900 tokens."""
    at = now - dt.timedelta(seconds=2)
    return [
        row(1, at, cost="0.015", tokens=200, user_id="u-1"),
        row(2, at, cost="0.025", tokens=900, user_id="u-1"),
        row(3, at, cost="0.06", tokens=300, user_id="u'2"),
        row(4, at, cost=None, tokens=None, user_id="u'2"),
        row(5, at, cost="0.5", tokens=100),  # no user: only in the unscoped budgets
        blocked(6, at, user_id="u-1"),
        row(7, at - dt.timedelta(days=2), tokens=5000, user_id="u-1"),  # an old call
    ]


def _status(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["budgets", "status", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("dialect", DIALECTS)
def test_status_of_each_budget_and_scope_value(
    dialect: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = dt.datetime.now(UTC)
    budgets = [b.definition() for b in (PER_USER, WHOLE, CAP, ORGS)]
    with log_at(dialect, tmp_path, rows(now), budgets) as url:
        code, out, err = _status(["--db", url, "--format", "json"], capsys)
        assert code == 0 and err == ""
        lines = json.loads(out)
        table_code, table, _ = _status(["--db", url], capsys)
        csv_code, csv_text, _ = _status(["--db", url, "--format", "csv"], capsys)
    got = [(r["budget"], r["scope"], Decimal(r["spent"]), r["used_pct"]) for r in lines]
    assert got == [
        ("per user", {"user_id": "u'2"}, Decimal("0.06"), 120.0),
        ("per user", {"user_id": "u-1"}, Decimal("0.05"), 100.0),  # blocked: adds nothing
        ("call cap", {}, 900, 90.0),  # the largest call of the last day, not the old one
        ("all requests", {}, 6, 60.0),  # every call sent, old ones too (per total)
        ("per org", {}, 0, 0.0),
    ]
    org = lines[-1]
    assert (org["has_calls"], org["period_end"] is not None, org["kind"]) == (False, True, "soft")
    assert lines[0]["kind"] == "hard" and lines[0]["period_end"] is None  # total: never ends
    # CSV: plain values, the scope as text
    assert csv_code == 0 and csv_text.splitlines()[1].startswith("per user,user_id=u'2,True,")
    # the table: the same lines, in words
    assert table_code == 0
    body = table.splitlines()
    assert body[0].split() == [
        "budget",
        "scope",
        "kind",
        "spent",
        "limit",
        "used",
        "period",
        "ends",
    ]
    assert "user_id=u'2" in body[2] and "120.0%" in body[2] and "never" in body[2]
    assert "$0.06" in body[2] and "$0.05" in body[2] and "hard" in body[2]
    assert "900 tokens" in body[4] and "largest in the last 24h" in body[4]
    assert "(no calls this period)" in body[6] and " UTC (in " in body[6]


def test_sum_is_exact_to_ten_places(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    now = dt.datetime.now(UTC)
    tiny = [
        row(i, now - dt.timedelta(seconds=1), cost="0.0000000001", user_id="u") for i in range(7)
    ]
    budget = Budget("0.000000001", per="total", scope="user_id", name="tiny")
    with log_at("sqlite", tmp_path, tiny, [budget.definition()]) as url:
        code, out, _ = _status(["--db", url, "--format", "json"], capsys)
    (line,) = json.loads(out)
    assert code == 0 and Decimal(line["spent"]) == Decimal("0.0000000007")
    assert line["used_pct"] == 70.0


def test_no_budgets_recorded_says_how_they_get_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = dt.datetime.now(UTC)
    with log_at("sqlite", tmp_path, rows(now)) as url:
        before = Path(url.removeprefix("sqlite:///")).read_bytes()
        code, out, err = _status(["--db", url], capsys)
        assert code == 0 and err == ""
        assert "no budgets recorded" in out and "budgets=[ml.Budget(" in out
        code, out, err = _status(["--db", url, "--format", "json"], capsys)
        assert code == 0 and json.loads(out) == [] and "no budgets recorded" in err
        assert Path(url.removeprefix("sqlite:///")).read_bytes() == before  # read-only


def test_a_log_from_before_budgets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import sqlite3

    with log_at("sqlite", tmp_path, [], [WHOLE.definition()]) as url:
        path = url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            conn.execute("DROP TABLE llm_budgets")
        conn.close()
        code, out, _ = _status(["--db", url], capsys)
    assert code == 0 and "majordomo-log migrate" in out


def test_an_unreadable_definition_is_one_line_and_the_rest_are_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = {"name": "broken", "unit": "euros", "limit": "5", "per": "day"}
    with log_at("sqlite", tmp_path, [], [broken, WHOLE.definition()]) as url:
        code, out, err = _status(["--db", url], capsys)
    assert code == 0 and "all requests" in out and "broken" not in out
    assert err.count("\n") == 1 and "budget 'broken' skipped" in err


def test_limit_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    many = [row(i, dt.datetime.now(UTC), user_id=f"u-{i:02d}") for i in range(12)]
    with log_at("sqlite", tmp_path, many, [PER_USER.definition()]) as url:
        code, out, _ = _status(["--db", url, "--limit", "5"], capsys)
        assert code == 0 and len(out.splitlines()) == 2 + 5 + 2
        assert "7 more lines: --limit to see them" in out
    code, _, err = _status(["--db", str(tmp_path / "absent.db")], capsys)
    assert code == 2 and err.count("\n") == 1 and "no database at" in err
    assert not (tmp_path / "absent.db").exists()


# -- the library function, at chosen moments --------------------------------------------------


async def test_periods_follow_the_budget_and_its_time_zone(tmp_path: Path) -> None:
    now = dt.datetime(2026, 3, 4, 23, 30, tzinfo=UTC)
    daily = Budget("1", per="day", scope="user_id", name="daily")
    paris = Budget("1", per="day", scope="user_id", tz="Europe/Paris", name="paris")
    hourly = Budget(limit_tokens=1000, per="hour", name="hourly")
    written = [
        row(1, dt.datetime(2026, 3, 4, 22, 59, tzinfo=UTC), cost="0.3", user_id="u"),
        row(2, dt.datetime(2026, 3, 4, 23, 1, tzinfo=UTC), cost="0.2", user_id="u"),
        row(3, dt.datetime(2026, 3, 4, 0, 0, tzinfo=UTC), cost="0.1", user_id="u"),
        row(4, dt.datetime(2026, 3, 3, 23, 59, tzinfo=UTC), cost="0.4", user_id="u"),
    ]
    db = await ml.SqliteAdapter.create(tmp_path / "log.db")
    try:
        await db.write_batch(written, [])
        await db.save_budgets([b.definition() for b in (daily, paris, hourly)])
        status = await budget_status(db, now)
    finally:
        await db.close()
    by_name = {line.budget.name: line for line in status.lines}
    # UTC day 03-04: rows 1-3; the Paris day started at 03-04 23:00 UTC: row 2 only
    assert by_name["daily"].spent == Decimal("0.6") and by_name["daily"].used_pct == 60.0
    assert by_name["paris"].spent == Decimal("0.2")
    assert by_name["paris"].period_end == dt.datetime(2026, 3, 5, 23, tzinfo=UTC)
    assert by_name["hourly"].spent == 100  # row 2 alone, in tokens
    assert [line.budget.name for line in status.lines] == ["daily", "paris", "hourly"]
    readable = status_rows(status.lines, now, "table")
    assert readable[0]["ends"] == "2026-03-05 00:00 UTC (in 30m)"
    assert readable[1]["period"] == "day (Europe/Paris)"


async def test_a_store_without_the_registry_is_a_config_error() -> None:
    class Plain:
        dialect = "sqlite"
        url = "plain://"

    with pytest.raises(ml.ConfigError, match="does not record budgets"):
        await budget_status(Plain())  # type: ignore[arg-type]


def test_the_command_is_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["budgets", "status", "--help"])
    assert "largest call" in capsys.readouterr().out
