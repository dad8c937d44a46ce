"""Every figure a user reads is the exact sum, never float noise (issue 18): on SQLite a
plain SUM() of the REAL cost columns is 0.07058700000000001 for 11 calls at $0.006417,
and the command line (report, report --outliers, budgets status) and the dashboard (the
overview, its chart and the budgets page) read sums as Decimals to the 10 places the
cost columns hold, so they print 0.070587, in every dialect."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from log_rows import UTC, log_at, row
from servers import DIALECTS

import majordomo_log as ml
from majordomo_log.budgets.budget import Budget
from majordomo_log.budgets.status import budget_status
from majordomo_log.cli import main
from majordomo_log.dashboard import queries
from majordomo_log.dashboard.overview import overview_page
from majordomo_log.dashboard.pages import budgets_page
from majordomo_log.dashboard.params import overview_params

BUDGETS = [
    Budget("1", per="total", scope="user_id", name="per user").definition(),
    Budget("1", per="call", name="call cap").definition(),
]
# A number with more than 10 decimal places, or in exponent form: noise, or not a cost
# as the columns hold it.
NOISE = re.compile(r"\d\.\d{11,}|\d[eE]-\d")
COMMANDS = [
    ["report", "--by", "model", "--format", "json"],
    ["report", "--by", "model", "--format", "csv"],
    ["report", "--by", "feature,day"],
    ["report", "--by", "user_id", "--since", "1d"],
    ["report", "--outliers", "--format", "json"],
    ["report", "--outliers"],
    ["budgets", "status", "--format", "json"],
    ["budgets", "status"],
]


def noisy_rows(now: dt.datetime) -> list[ml.Row]:
    """11 calls at $0.006417 (u-1, chat, accepted) and 5 at $0.03072 (u-2, search,
    retried): float sums 0.07058700000000001 and 0.15360000000000001."""
    at = now - dt.timedelta(minutes=5)
    return [
        row(
            i,
            at,
            cost="0.006417",
            model="gpt-4o-mini",
            outcome="accepted",
            user_id="u-1",
            feature="chat",
        )
        for i in range(11)
    ] + [
        row(
            20 + i,
            at,
            cost="0.03072",
            model="claude-haiku-4-5",
            retries=1,
            user_id="u-2",
            feature="search",
        )
        for i in range(5)
    ]


def plain_sums(url: str) -> list[float]:
    path = urlsplit(url).path
    with sqlite3.connect(path) as conn:
        return [
            cost
            for (cost,) in conn.execute(
                "SELECT SUM(total_cost) FROM llm_requests GROUP BY model ORDER BY model"
            )
        ]


async def dashboard(url: str, now: dt.datetime) -> str:
    db = await ml.open_db(url, read_only=True)
    try:
        query = {"until": [now.isoformat()], "window": ["7d"], "by": ["model"]}
        overview = await queries.overview(db, overview_params(query, now))
        status = await budget_status(db, now)
        return str(overview_page(overview)) + str(budgets_page(status, now, url))
    finally:
        await db.close()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_no_figure_shows_float_noise(
    dialect: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = dt.datetime.now(UTC)
    with log_at(dialect, tmp_path, noisy_rows(now), BUDGETS) as url:
        if dialect == "sqlite":  # the SQL sums are noisy: what follows would show it
            sums = [repr(s) for s in plain_sums(url)]
            assert "0.15360000000000001" in sums, sums  # 0.07058700000000001 too, before 3.43
        printed = {}
        for argv in COMMANDS:
            assert main([*argv, "--db", url]) == 0, argv
            out, err = capsys.readouterr()
            assert err == "", argv
            printed[" ".join(argv)] = out
        html = asyncio.run(dashboard(url, now))
    for command, out in printed.items():
        assert not NOISE.search(out), (command, NOISE.findall(out))
    for command in ("report --by model --format json", "report --by model --format csv"):
        assert "0.070587" in printed[command] and "0.1536" in printed[command], command
    assert "total $0.224187" in printed["report --by feature,day"]
    assert "$0.070587" in printed["budgets status"]
    assert not NOISE.search(html), NOISE.findall(html)
    # the spend table's cells hold each figure as a plain decimal, the chart its float
    assert 'data-value="0.070587"' in html and 'data-value="0.1536"' in html
    assert "0.070587" in html.split('id="spend-chart"', 1)[1]
    assert "$0.070587" in html.split("Budgets", 1)[1]  # the budgets page
