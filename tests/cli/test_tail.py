"""``majordomo-log tail``: ``-n 0`` for every call, and the filters ``--model``,
``--feature``, ``--user``, ``--status``, ``--since`` (and ``--until``), on SQLite,
PostgreSQL and MySQL/MariaDB, against SQL run directly on the database; hostile
values are parameters that match only themselves. Through the console script."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from console import needs_script, run
from log_rows import UTC, blocked, log_at, row
from servers import DIALECTS

import majordomo_log as ml
from majordomo_log.cli.reports import CallFilter, latest_calls
from majordomo_log.schema import Row

pytestmark = needs_script

NOW = dt.datetime.now(UTC)
HOUR, DAY = dt.timedelta(hours=1), dt.timedelta(days=1)


def log_rows() -> list[Row]:
    """Calls from an hour to 30 days ago (none near a --since boundary the tests use):
    two models (one served under a dated name), three features, three users, every
    status."""
    return [
        row(1, NOW - HOUR, model="gpt-4o", feature="chat", user_id="u-1"),
        row(2, NOW - 2 * HOUR, model="gpt-4o", feature="chat", user_id="u-2")._replace(
            served_model="gpt-4o-2024-08-06"
        ),
        row(3, NOW - DAY - HOUR, model="claude-haiku-4-5", feature="search", user_id="u-1"),
        row(4, NOW - 3 * DAY, model="gpt-4o", feature="support", user_id="u-3")._replace(
            status="error", cost_status="error", total_cost=None
        ),
        row(5, NOW - 4 * DAY, model="claude-haiku-4-5", user_id="u-2")._replace(
            status="incomplete"
        ),
        blocked(6, NOW - 5 * DAY, model="gpt-4o", feature="chat", user_id="u-3"),
        row(7, NOW - 10 * DAY, model="gpt-4o", feature="chat", user_id="u-1"),
        row(8, NOW - 30 * DAY, model="claude-haiku-4-5", feature="search", user_id="u-2"),
    ]


def tail(url: str, *argv: str) -> list[str]:
    """The request ids ``tail`` prints, in its order."""
    done = run("tail", "--db", url, *argv, "--format", "json")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return [r["request_id"] for r in json.loads(done.stdout)]


def sql(url: str, where: str = "", params: Sequence[Any] = ()) -> list[str]:
    """The request ids a WHERE clause selects, newest first, straight from the database."""

    async def fetch() -> list[dict[str, Any]]:
        db = await ml.open_db(url, read_only=True)
        try:
            return await db.fetch(
                f"SELECT request_id FROM llm_requests {where}"
                " ORDER BY started_at DESC, request_id DESC",
                params,
            )
        finally:
            await db.close()

    return [str(r["request_id"]) for r in asyncio.run(fetch())]


def ids(rows: Sequence[Row], keep: Callable[[Row], bool]) -> list[str]:
    """What the filter should keep, from the rows written: newest first (the later
    request id first at the same time, as tail orders them)."""
    kept = sorted(
        (r for r in rows if keep(r)), key=lambda r: (r.started_at, r.request_id), reverse=True
    )
    return [r.request_id for r in kept]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_n_0_is_every_call_and_n_the_latest(dialect: str, tmp_path: Path) -> None:
    with log_at(dialect, tmp_path, log_rows()) as url:
        everything = tail(url, "-n", "0")
        latest = tail(url, "-n", "3")
        default = tail(url)
        expected = sql(url)
    assert everything == expected and len(everything) == len(log_rows())
    assert latest == expected[:3]
    assert default == expected  # 20 by default, more than there are


FILTERS: list[tuple[list[str], str, list[Any], Callable[[Row], bool]]] = [
    # (arguments, the WHERE clause that says the same, its parameters, the same in Python)
    (
        ["--model", "gpt-4o"],
        "WHERE model = ? OR served_model = ?",
        ["gpt-4o", "gpt-4o"],
        lambda r: r.model == "gpt-4o",
    ),
    (
        ["--model", "gpt-4o-2024-08-06"],  # the served model's name finds it too
        "WHERE served_model = ?",
        ["gpt-4o-2024-08-06"],
        lambda r: r.served_model == "gpt-4o-2024-08-06",
    ),
    (["--feature", "chat"], "WHERE feature = ?", ["chat"], lambda r: r.feature == "chat"),
    (
        ["--feature", "chat", "--feature", "search"],  # several values: any of them
        "WHERE feature IN (?, ?)",
        ["chat", "search"],
        lambda r: r.feature in ("chat", "search"),
    ),
    (["--user", "u-2"], "WHERE user_id = ?", ["u-2"], lambda r: r.user_id == "u-2"),
    (["--status", "error"], "WHERE status = ?", ["error"], lambda r: r.status == "error"),
    (
        ["--status", "blocked", "--status", "incomplete"],
        "WHERE status IN (?, ?)",
        ["blocked", "incomplete"],
        lambda r: r.status in ("blocked", "incomplete"),
    ),
    (
        ["--since", "2d"],
        "WHERE started_at >= ?",
        [NOW - 2 * DAY],
        lambda r: r.started_at >= NOW - 2 * DAY,
    ),
    (
        ["--since", "1w"],  # weeks, as well as 7d
        "WHERE started_at >= ?",
        [NOW - 7 * DAY],
        lambda r: r.started_at >= NOW - 7 * DAY,
    ),
    (
        ["--since", "1w", "--until", "2d"],
        "WHERE started_at >= ? AND started_at < ?",
        [NOW - 7 * DAY, NOW - 2 * DAY],
        lambda r: NOW - 7 * DAY <= r.started_at < NOW - 2 * DAY,
    ),
    (
        ["--model", "gpt-4o", "--user", "u-1", "--since", "1w"],  # every filter must match
        "WHERE model = ? AND user_id = ? AND started_at >= ?",
        ["gpt-4o", "u-1", NOW - 7 * DAY],
        lambda r: r.model == "gpt-4o" and r.user_id == "u-1" and r.started_at >= NOW - 7 * DAY,
    ),
    (
        ["--feature", "chat", "--status", "ok", "-n", "1"],
        "WHERE feature = ? AND status = ?",
        ["chat", "ok"],
        lambda r: r.feature == "chat" and r.status == "ok",
    ),
]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_filters_match_sql(dialect: str, tmp_path: Path) -> None:
    written = log_rows()
    with log_at(dialect, tmp_path, written) as url:
        for argv, where, params, keep in FILTERS:
            got = tail(url, *argv)
            limit = int(argv[argv.index("-n") + 1]) if "-n" in argv else 20
            direct, expected = sql(url, where, params)[:limit], ids(written, keep)[:limit]
            assert got == direct == expected, argv
            assert got, argv  # each filter keeps something, so each test means something


HOSTILE = [
    "x' OR '1'='1",
    "'; DROP TABLE llm_requests; --",
    'a "quoted" \\ value',
    "%",
    "_",
    "u-1 ",  # apart from u-1 in every dialect: MySQL's collations would pad it
    "U-1",
    "ü-1",
    "?",
    "$1",
]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_hostile_values_match_only_themselves(dialect: str, tmp_path: Path) -> None:
    at = NOW - HOUR
    written = [row(1, at, user_id="u-1", feature="chat")]
    written += [
        row(10 + i, at - i * dt.timedelta(seconds=1), user_id=value, feature=value)
        for i, value in enumerate(HOSTILE)
    ]
    with log_at(dialect, tmp_path, written) as url:
        for value in ["u-1", *HOSTILE]:
            expected = ids(written, lambda r, v=value: r.user_id == v)  # type: ignore[misc]
            assert len(expected) == 1, value
            assert tail(url, "--user", value) == expected, value
        every = [arg for value in HOSTILE for arg in ("--feature", value)]
        assert tail(url, *every) == ids(written, lambda r: r.feature in HOSTILE)
        assert tail(url, "--user", "u-1", "--user", "x' OR '1'='1") == ids(
            written, lambda r: r.user_id in ("u-1", "x' OR '1'='1")
        )
        huge = tail(url, "--model", "m" * 100_000, "--user", "u" * 100_000)
        assert huge == []
        assert len(tail(url, "-n", "0")) == len(written)  # nothing was dropped or changed


def test_an_empty_result_and_bad_filters(tmp_path: Path) -> None:
    with log_at("sqlite", tmp_path, log_rows()) as url:
        table = run("tail", "--db", url, "--user", "nobody")
        bad_status = run("tail", "--db", url, "--status", "failed")
        bad_since = run("tail", "--db", url, "--since", "1y")
    assert table.returncode == 0 and table.stdout == "(no calls)\n"
    for done, named in ((bad_status, "--status"), (bad_since, "--since")):
        errors = [line for line in done.stderr.splitlines() if "error:" in line]
        assert done.returncode == 2 and len(errors) == 1 and named in errors[0]


def test_a_filter_value_given_as_a_string_is_one_value(tmp_path: Path) -> None:
    async def both(url: str) -> tuple[list[str], list[str]]:
        db = await ml.open_db(url, read_only=True)
        try:
            one = await latest_calls(db, 0, where=CallFilter(users="u-1"))
            listed = await latest_calls(db, 0, where=CallFilter(users=["u-1"]))
        finally:
            await db.close()
        return [r["request_id"] for r in one], [r["request_id"] for r in listed]

    with log_at("sqlite", tmp_path, log_rows()) as url:
        one, listed = asyncio.run(both(url))
    assert one == listed == ids(log_rows(), lambda r: r.user_id == "u-1")
