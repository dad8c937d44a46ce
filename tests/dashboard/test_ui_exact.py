"""Group values that differ only by trailing spaces are two groups on every page, in
every dialect: MySQL's collations pad ('a ' = 'a'), so the dashboard groups and compares
on the bytes there, as ``majordomo-log report`` does (majordomo_log/stores/sql/text.py)."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from dashboard_log import _record, drop, log_url, run, write_log
from servers import DIALECTS
from ui_log import NOW

import majordomo_log as ml
from majordomo_log.dashboard import queries
from majordomo_log.dashboard.params import calls_params, overview_params

SPELLINGS = {"alpha": 3, "alpha ": 2}  # calls of each


@pytest.fixture(scope="module", params=DIALECTS)
def padded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    dialect = request.param
    tmp = tmp_path_factory.mktemp(f"pad-{dialect}")
    name = f"mdl_pad_{uuid.uuid4().hex[:10]}"
    url = log_url(dialect, tmp, name)
    rng = random.Random(3)
    records, hour = [], 1
    for value, n in SPELLINGS.items():
        for _ in range(n):
            scenario = (value, "k", "openai", "chat.completions", "gpt-4o", False, 1)
            started = NOW - dt.timedelta(days=2, hours=hour)  # whole days back
            records.append(_record(started, scenario, value, "ok", "hi", rng))
            hour += 1
    try:
        run(write_log(url, tmp / "bodies", records))
        yield url
    finally:
        if dialect != "sqlite":
            run(drop(dialect, name))


def query(**values: str) -> dict[str, list[str]]:
    return {k: [v] for k, v in {"until": NOW.isoformat(), "window": "7d", **values}.items()}


@pytest.mark.parametrize("step", ["hour", "day"])
async def test_the_overview_keeps_padded_values_apart(padded: str, step: str) -> None:
    db = await ml.open_db(padded, read_only=True)
    try:
        for by in ("feature", "user_id"):
            view = await queries.overview(db, overview_params(query(by=by, step=step), NOW))
            assert {g.key: g.calls for g in view.groups} == SPELLINGS
            assert {label for label, _ in view.series.lines} == set(SPELLINGS)
            assert set(view.latency) == set(SPELLINGS)
            for label, values in view.series.lines:
                cost = next(g.cost for g in view.groups if g.key == label)
                assert sum(values) == cost
    finally:
        await db.close()


async def test_the_calls_filter_is_exact(padded: str) -> None:
    db = await ml.open_db(padded, read_only=True)
    try:
        for value, n in SPELLINGS.items():
            rows = await queries.expensive_calls(db, calls_params(query(feature=value), NOW))
            assert len(rows) == n
    finally:
        await db.close()


class Spelt:
    """A store whose database answers a drawn group in another spelling than asked."""

    dialect = "sqlite"

    async def fetch(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        bucket = (NOW - dt.timedelta(days=2)).strftime("%Y-%m-%dT%H")
        return [{"bucket": bucket, "rest": 0, "grp": "alpha", "cost": "1.5"}]


async def test_a_group_the_chart_cannot_find_is_other_not_an_error() -> None:
    window = overview_params(query(step="hour"), NOW).window
    series = await queries.spend_series(Spelt(), "feature", window, ["alpha "])  # type: ignore[arg-type]
    lines = dict(series.lines)
    assert sum(lines["other"]) == 1.5 and sum(lines["alpha "]) == 0


async def test_a_current_log_lacks_no_column(padded: str) -> None:
    db = await ml.open_db(padded, read_only=True)
    try:
        assert await queries.missing_columns(db) == frozenset()
    finally:
        await db.close()
