"""The dashboard's figures (majordomo_log/dashboard/queries.py, percentiles.py) on SQLite,
PostgreSQL and MySQL, against SQL run directly on the seeded database and against the
rows that were written."""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from dashboard_log import make_calls
from servers import DIALECTS, isolated_db
from ui_log import NOW, Log, direct_sql, logs

import majordomo_log as ml
from majordomo_log.dashboard import percentiles, queries
from majordomo_log.dashboard.params import calls_params, overview_params
from majordomo_log.record.rows import build_row

QUANTUM = Decimal("1e-10")


@pytest.fixture(scope="module", params=DIALECTS)
def log(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Log]:
    """The seeded log, in each dialect."""
    yield from logs(request.param, tmp_path_factory)


def dec(value: Any) -> Decimal | None:
    """A sum as a driver returns it (SQLite: a float), to the columns' 10 places."""
    if value is None:
        return None
    if isinstance(value, float):
        return Decimal(repr(value)).quantize(QUANTUM).normalize()
    return Decimal(value).normalize()


@pytest.fixture
async def db(log: Log) -> AsyncIterator[ml.MetadataStore]:
    store = await ml.open_db(log.db_url, read_only=True)
    try:
        yield store
    finally:
        await store.close()


def params(**query: str) -> Any:
    return overview_params({k: [v] for k, v in {"until": NOW.isoformat(), **query}.items()}, NOW)


@pytest.mark.parametrize("by", ["model", "feature", "user_id", "api_key_alias"])
async def test_spend_by_group_matches_sql(log: Log, db: ml.MetadataStore, by: str) -> None:
    window = params(by=by, window="30d").window  # holds every seeded call
    figures = {f.key: f for f in await queries.group_figures(db, by, window)}
    expected = await direct_sql(
        log,
        f"SELECT {by}, SUM(CASE WHEN status <> 'blocked' THEN 1 ELSE 0 END), SUM(total_cost),"
        " COUNT(*) FROM llm_requests GROUP BY " + by,
    )
    assert len(expected) >= 3
    assert set(figures) == {row[0] for row in expected}
    for key, calls, cost, _ in expected:
        assert figures[key].calls == int(calls), key
        assert dec(figures[key].cost) == dec(cost), key
    # and against the rows written, in Python: exact decimals
    by_key: dict[Any, Decimal] = defaultdict(Decimal)
    for row in log.seeded.rows:
        by_key[getattr(row, by)] += row.total_cost or 0
    for key, total in by_key.items():
        assert (figures[key].cost or 0) == total, key
    costs = [f.cost or 0 for f in await queries.group_figures(db, by, window)]
    assert costs == sorted(costs, reverse=True)  # most spent first


async def test_totals_tokens_errors_and_savings_match_sql(log: Log, db: ml.MetadataStore) -> None:
    total = await queries.total_figures(db, params(window="30d").window)
    ((calls, errors, incomplete, blocked, unpriced, *sums),) = await direct_sql(
        log,
        "SELECT SUM(CASE WHEN status <> 'blocked' THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN status = 'incomplete' THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN status = 'blocked' THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN total_cost IS NULL AND status NOT IN ('error', 'blocked')"
        " THEN 1 ELSE 0 END),"
        " SUM(input_tokens), SUM(cache_read_tokens), SUM(cache_write_5m_tokens),"
        " SUM(cache_write_1h_tokens), SUM(output_tokens), SUM(reasoning_tokens),"
        " SUM(total_tokens), SUM(total_cost), SUM(cache_savings) FROM llm_requests",
    )
    assert (total.calls, total.errors, total.incomplete, total.blocked, total.unpriced) == (
        int(calls),
        int(errors),
        int(incomplete),
        int(blocked),
        int(unpriced),
    )
    assert min(total.errors, total.incomplete, total.blocked, total.unpriced) > 0  # seeded
    kinds = [total.tokens[column] for _, column in queries.TOKEN_KINDS]
    assert kinds == [int(s) for s in sums[:6]]
    assert all(kinds) and total.total_tokens == int(sums[6]) == sum(kinds)
    assert dec(total.cost) == dec(sums[7]) and dec(total.savings) == dec(sums[8]) > 0


@pytest.mark.parametrize(("window", "step"), [("24h", "hour"), ("14d", "day"), ("7d", "hour")])
async def test_spend_per_bucket_matches_the_rows(
    log: Log, db: ml.MetadataStore, window: str, step: str
) -> None:
    p = params(by="model", window=window, step=step)
    overview = await queries.overview(db, p)
    series = overview.series
    size = dt.timedelta(hours=1) if step == "hour" else dt.timedelta(days=1)
    assert series.x[0] == p.window.since and series.x[-1] + size == p.window.until
    assert len(series.x) == (p.window.until - p.window.since) / size
    drawn = {label for label, _ in series.lines}
    expected: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
    for row in log.seeded.rows:
        if row.total_cost is None or not p.window.since <= row.started_at < p.window.until:
            continue
        label = row.model if row.model in drawn else queries.OTHER
        expected[(label, int((row.started_at - p.window.since) / size))] += row.total_cost
    got = {
        (label, i): value
        for label, values in series.lines
        for i, value in enumerate(values)
        if value
    }
    assert got == dict(expected)
    assert got  # the window has spend


async def test_latency_percentiles_are_within_their_bucket_of_exact(
    log: Log, db: ml.MetadataStore
) -> None:
    overview = await queries.overview(db, params(by="model", window="30d"))
    rows = await direct_sql(
        log,
        "SELECT model, latency_ms, time_to_first_token_ms FROM llm_requests"
        " WHERE status <> 'blocked'",
    )
    for column, per_group, whole in (
        (1, overview.latency, overview.latency_all),
        (2, overview.ttft, overview.ttft_all),
    ):
        groups: dict[Any, list[float]] = defaultdict(list)
        for row in rows:
            if row[column] is not None:
                groups[row[0]].append(float(row[column]))
                groups["*"].append(float(row[column]))
        for key, values in groups.items():
            got = whole if key == "*" else per_group[key]
            values.sort()
            for p in percentiles.PERCENTILES:
                exact = values[max(1, math.ceil(p / 100 * len(values))) - 1]
                assert abs(got[p] - exact) <= 0.05 * exact, (column, key, p, got[p], exact)
    assert overview.ttft_all[50] is not None and overview.ttft_all[50] < overview.latency_all[50]


async def test_expensive_calls_in_order_and_by_group(log: Log, db: ml.MetadataStore) -> None:
    query = {"until": [NOW.isoformat()], "limit": ["10"]}
    calls = await queries.expensive_calls(db, calls_params(query, NOW))
    expected = await direct_sql(
        log,
        "SELECT request_id, total_cost FROM llm_requests WHERE total_cost IS NOT NULL"
        " ORDER BY total_cost DESC, request_id LIMIT 10",
    )
    assert [(c["request_id"], c["total_cost"]) for c in calls] == [
        (str(r), dec(c)) for r, c in expected
    ]
    only = await queries.expensive_calls(db, calls_params({**query, "feature": ["search"]}, NOW))
    assert only and {c["feature"] for c in only} == {"search"}
    assert len(only) <= 10


async def test_a_call_and_its_body(log: Log, db: ml.MetadataStore) -> None:
    written = log.seeded.rows[len(log.seeded.rows) // 2]
    row = await queries.call(db, written.request_id)
    assert row is not None and row["request_id"] == written.request_id
    assert row["total_cost"] == written.total_cost and row["body_ref"] == written.body_ref
    storage = await ml.open_storage(log.storage_url, read_only=True)
    try:
        body = await queries.call_body(storage, None, row)
        assert body.problem is None and body.envelope is not None
        assert body.envelope["request_id"] == written.request_id
        missing = await queries.call_body(
            storage, None, {**row, "body_ref": "2026/01/01/x.json.gz"}
        )
        assert missing.envelope is None and "could not be read" in (missing.problem or "")
    finally:
        await storage.close()
    assert await queries.call(db, "01a20000-0000-7000-8000-000000000000") is None
    assert await queries.call(db, "not-an-id") is None
    none = await queries.call_body(None, "no folder", {**row})
    assert none.envelope is None and "no folder" in (none.problem or "")


def reference_code(x: float) -> int:
    """The bucket code of percentiles.bucket_sql, in Python."""
    if x < 0.1:
        return 0
    for decade in range(-1, 8):
        if x < 10 ** (decade + 1):  # width 10^decade / 20, as SQL has it: * 200, * 20, * 2, / 5...
            scaled = (
                x * {-1: 200, 0: 20, 1: 2}[decade] if decade < 2 else x / (5 * 10 ** (decade - 2))
            )
            return (decade + 2) * 1000 + math.floor(scaled)
    return 99_999


async def test_bucket_codes_are_the_same_in_every_dialect(log: Log) -> None:
    code = percentiles.bucket_sql(log.dialect, "latency_ms")
    rows = await direct_sql(log, f"SELECT latency_ms, {code} FROM llm_requests")
    assert len(rows) == len(log.seeded.rows)
    for latency, got in rows:
        assert int(got) == reference_code(float(latency)), latency


class Recording:
    """A store that keeps every query's SQL and rows (it only reads)."""

    def __init__(self, store: ml.MetadataStore) -> None:
        self.store, self.dialect, self.url = store, store.dialect, store.url
        self.answers: list[tuple[str, list[dict[str, Any]]]] = []

    async def fetch(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        rows = await self.store.fetch(sql, params)
        self.answers.append((sql, rows))
        return rows


async def test_many_users_cost_one_row_each_and_no_more(tmp_path: Any) -> None:
    """400 users: the group figures are a row per user, but the chart's query answers for
    the eight drawn and the rest, and the percentiles for the listed groups only."""
    records, _, _ = make_calls(NOW, calls=800)
    rows = [
        build_row(rec, None)._replace(user_id=f"user-{i % 400:03d}")
        for i, rec in enumerate(records)
    ]
    db = await ml.open_db(f"sqlite:///{tmp_path / 'many.db'}")
    try:
        await db.write_batch(rows, [])
        recording = Recording(db)
        overview = await queries.overview(recording, params(by="user_id", window="30d"))  # type: ignore[arg-type]
    finally:
        await db.close()
    assert len(overview.groups) == 400 and len(overview.latency) == queries.LISTED
    for sql, answer in recording.answers:
        keys = {row.get("grp") for row in answer}
        if "AS rest" in sql:  # the chart's
            assert len(keys - {None}) <= queries.SERIES_MAX
        elif "MIN(latency_ms)" in sql or "MIN(time_to_first_token_ms)" in sql:
            assert len(keys) <= queries.LISTED


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_unknown_cost_is_never_shown_as_zero(dialect: str, tmp_path: Path) -> None:
    """A bucket whose calls all have an unknown cost is None in the chart's series (n/a,
    a gap), not $0; a group whose cache savings are unknown has None savings."""
    from sample_rows import sample_row

    from majordomo_log.dashboard.params import Window

    day = dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc)
    window = Window(day, day + dt.timedelta(days=3), "day")
    unpriced = dict(total_cost=None, cost_status="unknown_model", model="ft:x", cache_savings=None)
    async with isolated_db(dialect, tmp_path) as db:
        await db.write_batch(
            [
                sample_row(day + dt.timedelta(hours=1), cache_savings=Decimal("0.001")),
                sample_row(day + dt.timedelta(days=1, hours=1), **unpriced),
                sample_row(day + dt.timedelta(days=2, hours=1), **unpriced),
                sample_row(
                    day + dt.timedelta(days=2, hours=2),
                    status="error",
                    total_cost=None,
                    cost_status="error",
                    input_tokens=None,
                    output_tokens=None,
                ),
            ],
            [],
        )
        series = await queries.spend_series(db, "model", window, ["gpt-4o", "ft:x"])
        lines = dict(series.lines)
        assert lines["ft:x"] == [Decimal(0), None, None]
        assert lines["gpt-4o"][1:] == [Decimal(0), Decimal(0)]  # an error: no spend, not n/a
        assert lines["gpt-4o"][0] == Decimal("0.00045")
        figures = {f.key: f for f in await queries.group_figures(db, "model", window)}
        assert figures["ft:x"].savings is None and figures["ft:x"].cost is None
        assert figures["gpt-4o"].savings == Decimal("0.001")
