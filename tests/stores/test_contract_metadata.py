"""The metadata-store contract: every store (SQLite, PostgreSQL, MySQL/MariaDB) passes
the same cases, and the same data gives the same reports from each."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from servers import DIALECTS, isolated_db

import majordomo_log as ml
from majordomo_log.cli import reports as _reports
from majordomo_log.cli.outliers import outliers
from majordomo_log.cli.trend import spend_report_with_trend
from majordomo_log.record.call import CallContext, CallRecord
from majordomo_log.record.pricing import PriceTable
from majordomo_log.record.rows import build_row
from majordomo_log.record.usage import Usage
from majordomo_log.schema import COLUMNS, COST_COLUMNS, TOKEN_COLUMNS, Row
from majordomo_log.stores.base import Reopenable
from majordomo_log.stores.sql.migrate import migrations_for
from majordomo_log.testing import FakeProvider, fake_anthropic_client, fake_openai_client

PRICES = PriceTable.load()
BASE = dt.datetime(2026, 3, 4, 23, 59, 58, 123456, tzinfo=dt.timezone.utc)


def record(
    i: int,
    *,
    model: str = "claude-haiku-4-5",
    usage: Usage | None = None,
    tags: dict[str, Any] | None = None,
    error: str | None = None,
    day: int = 0,
) -> CallRecord:
    ctx = CallContext(prices=PRICES, api_key_alias="alias-☃", tags={"feature": "chat"}, secrets=())
    started = BASE + dt.timedelta(days=day, seconds=i)
    rec = CallRecord(
        f"01a20000-0000-7000-8000-{i:012d}",
        started.timestamp(),
        100.0,
        "anthropic",
        "messages",
        model,
        bool(i % 2),
        tags or {},
        "ab" * 32,
        ctx,
    )
    rec.t_end = 100.0 + 0.001 * (i + 1)
    rec.served_model = model
    rec.usage = (
        usage
        if usage is not None
        else Usage.additive(
            1000 + i,
            500,
            cache_read_tokens=2000,
            cache_write_5m_tokens=300,
            cache_write_1h_tokens=1,
        )
    )
    rec.retry_count = i % 3  # as capture/retries.py counts them
    # an Anthropic message with i % 4 tool_use blocks: tool_call_count
    rec.response = {"type": "message", "content": [{"type": "tool_use"}] * (i % 4)}
    if error is not None:
        rec.status, rec.error_type, rec.error_message = "error", "APIError", error
    return rec


def sample_rows() -> list[tuple[Any, ...]]:
    users = ["üser-😀", "u-2", None]
    rows = [
        build_row(
            record(
                i,
                tags={
                    "user_id": users[i % 3],
                    "note": "x'); DROP TABLE llm_requests; --\\",
                    "lone": "\ud800 surrogate",  # no UTF-8 for it: stored as U+FFFD
                },
                day=i % 3,
                model=["claude-haiku-4-5", "gpt-4o", "no-such-model"][i % 3],
            ),
            f"2026/03/0{4 + i % 3}/{i}.json.gz" if i % 4 else None,
        )
        for i in range(30)
    ]
    rows.append(build_row(record(99, error="boom ✨ ünïcode \U0001f680\x00 nul"), None))
    return rows


def blocked_row(row: Row, message: str = "budget '$5 per day by user_id' is spent") -> Row:
    """The row of an attempt a hard budget refused, as the wrapper logs it: status and
    cost_status 'blocked', no tokens, no cost, no counts, error_type BudgetExceeded."""
    return row._replace(
        status="blocked",
        cost_status="blocked",
        error_type="BudgetExceeded",
        error_message=message,
        served_model=None,
        price_version=None,
        usage_flags=None,
        body_ref=None,
        cache_savings=None,
        tool_call_count=None,
        retry_count=None,
        **dict.fromkeys((*TOKEN_COLUMNS, *COST_COLUMNS)),
    )


def blocked_rows() -> list[Row]:
    """Refused attempts beside sample_rows(): in groups that also have calls, and one model
    (and day) that has nothing but refused attempts."""
    rows = [
        blocked_row(build_row(record(200 + i, tags={"user_id": "u-2"}, day=i % 2), None))
        for i in range(4)
    ]
    only = build_row(record(210, model="gpt-4o-mini", tags={"user_id": "u-blocked"}, day=5), None)
    return [*rows, blocked_row(only)]


def expected(row: tuple[Any, ...]) -> dict[str, Any]:
    return _reports.normalize_row(dict(zip(COLUMNS, row, strict=True)))


def comparable(row: dict[str, Any]) -> dict[str, Any]:
    out = _reports.normalize_row(row)
    out["tags"] = json.loads(out["tags"])
    return out


@pytest.fixture(params=DIALECTS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    async with isolated_db(request.param, tmp_path) as store:
        yield store


async def test_is_a_metadata_store_that_reopens(db: ml.MetadataStore) -> None:
    assert isinstance(db, ml.MetadataStore) and isinstance(db, Reopenable)
    assert db.dialect in ("sqlite", "postgresql", "mysql")
    await db.reopen()
    assert await db.fetch("SELECT COUNT(*) AS n FROM llm_requests") == [{"n": 0}]


async def test_migrations_blank_to_latest_then_rerun(db: ml.MetadataStore) -> None:
    names = [m.name for m in migrations_for(db.dialect)]
    assert names and names[0] == "0001_create_llm_requests"
    assert await db.migrate() == []  # create() already applied them all
    rows = await db.fetch("SELECT name FROM majordomo_migrations ORDER BY name")
    assert [r["name"] for r in rows] == names
    (count,) = await db.fetch("SELECT COUNT(*) AS n FROM llm_requests")
    assert count["n"] == 0


async def test_every_column_reads_back_exactly(db: ml.MetadataStore) -> None:
    rows = sample_rows()
    await db.write_batch(rows, [])
    stored = await db.fetch(f"SELECT {', '.join(COLUMNS)} FROM llm_requests ORDER BY request_id")
    assert len(stored) == len(rows)
    for row, got in zip(rows, stored, strict=True):
        want = expected(row)
        want["tags"] = json.loads(want["tags"])
        assert comparable(got) == want
    by_id = {r["request_id"]: comparable(r) for r in stored}
    unknown = by_id["01a20000-0000-7000-8000-000000000002"]
    assert unknown["total_cost"] is None and unknown["cost_status"] == "unknown_model"
    # NUL cannot be stored by PostgreSQL: every store gets U+FFFD instead
    assert by_id["01a20000-0000-7000-8000-000000000099"]["error_message"].endswith(
        "\U0001f680\ufffd nul"
    )
    # claude-haiku-4-5: 300 tokens x $1.25 (5m write) + 1 token x $2.00 (1h write) per 1M:
    # the single 1h token's $0.000002 survives the round trip in every dialect
    cache_write = by_id["01a20000-0000-7000-8000-000000000000"]["cache_write_cost"]
    assert cache_write == Decimal("0.000375") + Decimal("0.000002")
    # migration 0003's counts: row 7 asked for 3 tools after 1 retry
    seventh = by_id["01a20000-0000-7000-8000-000000000007"]
    assert (seventh["tool_call_count"], seventh["retry_count"]) == (3, 1)


async def test_rewriting_a_batch_adds_nothing(db: ml.MetadataStore) -> None:
    rows = sample_rows()
    await db.write_batch(rows, [])
    await db.write_batch(rows[5:], [])
    (count,) = await db.fetch("SELECT COUNT(*) AS n FROM llm_requests")
    assert count["n"] == len(rows)


async def test_outcome_update(db: ml.MetadataStore) -> None:
    rows = sample_rows()
    when = dt.datetime(2026, 3, 5, 1, 2, 3, 456789, tzinfo=dt.timezone.utc)
    await db.write_batch(
        rows,
        [
            (rows[3][0], "escalated", when),
            ("not-a-uuid", "accepted", when),
            (rows[4][0].upper(), "accepted", when),  # another spelling matches nothing
        ],
    )
    got = await db.fetch(
        "SELECT request_id, outcome, outcome_at FROM llm_requests WHERE outcome IS NOT NULL"
    )
    assert [_reports.normalize_row(r) for r in got] == [
        {
            "request_id": rows[3][0],
            "outcome": "escalated",
            "outcome_at": "2026-03-05T01:02:03.456789Z",
        }
    ]


async def test_get_call_of_an_id_not_in_the_log_is_none(db: ml.MetadataStore) -> None:
    await db.write_batch(sample_rows(), [])
    assert await _reports.get_call(db, "not-a-uuid") is None
    assert await _reports.get_call(db, "01a20000-0000-7000-8000-000000000003".upper()) is None
    assert (await _reports.get_call(db, "01a20000-0000-7000-8000-000000000003")) is not None


async def test_sum_of_costs_is_exact(db: ml.MetadataStore) -> None:
    rows = sample_rows()
    await db.write_batch(rows, [])
    (total,) = await db.fetch("SELECT SUM(total_cost) AS cost FROM llm_requests")
    want = sum(r[COLUMNS.index("total_cost")] or Decimal(0) for r in rows)
    assert _reports.as_decimal(total["cost"]) == want


async def test_time_window_parameters(db: ml.MetadataStore) -> None:
    await db.write_batch(sample_rows(), [])
    calls, _ = await _reports.total_spend(
        db, since=BASE + dt.timedelta(days=1), until=BASE + dt.timedelta(days=2)
    )
    assert calls == 10


async def test_wrapped_calls_end_to_end(db: ml.MetadataStore, tmp_path: Path) -> None:
    storage = await ml.FileStorageAdapter.create(tmp_path / "bodies")
    provider = FakeProvider(
        openai_usage={"prompt_tokens": 100, "cached_tokens": 40, "completion_tokens": 9}
    )
    openai_llm = ml.LoggingLLM(fake_openai_client(provider), db, storage, close_stores=False)
    claude = ml.LoggingLLM(fake_anthropic_client(provider), db, storage, close_stores=False)
    infos = []
    with ml.tags(feature="contract", user_id="ü-1"):
        for _ in range(5):
            infos.append(
                ml.call_info(await openai_llm.chat.completions.create(model="gpt-4o", messages=[]))
            )
            infos.append(
                ml.call_info(
                    await claude.messages.create(
                        model="claude-haiku-4-5", max_tokens=5, messages=[]
                    )
                )
            )
    await openai_llm.record_outcome(infos[0].request_id, "accepted")
    await openai_llm.close()
    stats = await claude.close()
    assert stats.failed == 0 and stats.dropped == 0
    rows = await db.fetch("SELECT request_id, total_cost, user_id, outcome FROM llm_requests")
    got = {r["request_id"]: _reports.normalize_row(r) for r in rows}
    assert set(got) == {i.request_id for i in infos}
    assert all(got[i.request_id]["total_cost"] == i.total_cost for i in infos)
    assert got[infos[0].request_id]["outcome"] == "accepted"
    assert {r["user_id"] for r in rows} == {"ü-1"}


async def test_write_batch_returns_the_outcomes_that_matched_no_row(
    db: ml.MetadataStore,
) -> None:
    """Outcomes apply after the batch's own rows; each update whose id is not in the
    table comes back, in order. An update repeated with the same values (a replay: MySQL
    counts it as changing nothing) still matched its row."""
    first, second = build_row(record(1), None), build_row(record(2), None)
    when = BASE + dt.timedelta(minutes=5)
    missing = "01a20000-0000-7000-8000-999999999999"
    assert list(await db.write_batch([first], []) or ()) == []
    outcomes = [
        (first.request_id, "accepted", when),  # a row written before
        (missing, "rejected", when),
        (second.request_id, "edited", when),  # a row of this very batch
        ("01A20000-0000-7000-8000-000000000001", "edited", when),  # not as the log spells it
        (missing, "escalated", when),
    ]
    got = await db.write_batch([second], outcomes)
    assert list(got or ()) == [missing, "01A20000-0000-7000-8000-000000000001", missing]
    again = await db.write_batch([], [(first.request_id, "accepted", when)])
    assert list(again or ()) == []
    rows = await db.fetch("SELECT request_id, outcome FROM llm_requests ORDER BY request_id")
    assert [(str(r["request_id"]), r["outcome"]) for r in rows] == [
        (first.request_id, "accepted"),
        (second.request_id, "edited"),
    ]


async def test_an_outcome_for_no_logged_call_is_counted_and_named(
    db: ml.MetadataStore, caplog: pytest.LogCaptureFixture
) -> None:
    """record_outcome() with an id of the right form that the log does not hold: the
    call goes on, the warning names the id, stats() counts it; an outcome recorded while
    its call's record still waits in the queue lands."""
    llm = ml.LoggingLLM(fake_openai_client(FakeProvider()), db, None, close_stores=False)
    resp = await llm.chat.completions.create(model="gpt-4o", messages=[])
    await llm.record_outcome(ml.call_info(resp).request_id, "accepted")  # row still queued
    unknown = "01a20000-0000-7000-8000-0000deadbeef"
    with caplog.at_level("WARNING", logger="majordomo_log"):
        await llm.record_outcome(unknown, "rejected")
        stats = await llm.flush()
    assert stats.outcomes_unmatched == 1 and stats.outcomes_written == 1
    assert stats.written == 1 and stats.dropped == 0 and stats.pending == 0
    assert unknown in caplog.text and "matched no logged call" in caplog.text
    with pytest.raises(ValueError, match="not a request id of this log"):
        await llm.record_outcome("chatcmpl-abc123", "accepted")  # the provider's id
    with pytest.raises(TypeError, match="request_id must be"):
        await llm.record_outcome(42, "accepted")  # type: ignore[arg-type]
    await llm.close()
    rows = await db.fetch("SELECT outcome FROM llm_requests")
    assert [r["outcome"] for r in rows] == ["accepted"]


VIEWS = (
    "llm_daily_spend",
    "llm_spend_by_attribution",
    "llm_cache_savings",
    "llm_error_rate",
    "llm_most_expensive_calls",
    "llm_call_counts",
)


def _canonical(value: Any) -> Any:
    """Numbers as Decimals and times as UTC text: what each driver returns differs
    (SQLite floats, MySQL Decimal sums of integers), what they mean must not."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float, Decimal)):
        return _reports.as_decimal(value)
    return _reports.as_timestamp(value)


async def _view(store: ml.MetadataStore, view: str) -> list[dict[str, Any]]:
    rows = await store.fetch(f"SELECT * FROM {view}")
    canonical = [{k: _canonical(v) for k, v in row.items()} for row in rows]
    return sorted(canonical, key=lambda r: json.dumps(r, default=str, sort_keys=True))


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
@pytest.mark.servers
async def test_reports_match_sqlite_on_the_same_data(dialect: str, tmp_path: Path) -> None:
    rows = [*sample_rows(), *blocked_rows()]
    outputs = {}
    for name in ("sqlite", dialect):
        async with isolated_db(name, tmp_path) as store:
            await store.write_batch(rows, [(rows[7][0], "edited", BASE)])
            outputs[name] = {
                **{
                    f"report:{by}": await _reports.spend_report(store, by)
                    for by in _reports.GROUPINGS
                },
                "window": await _reports.spend_report(
                    store,
                    "model",
                    since=BASE + dt.timedelta(days=1),
                    until=BASE + dt.timedelta(days=3),
                ),
                "total": await _reports.total_spend(store),
                "trend": await spend_report_with_trend(
                    store,
                    "user_id",
                    since=BASE + dt.timedelta(days=1),
                    until=BASE + dt.timedelta(days=2),
                ),
                "outliers": await outliers(
                    store, since=BASE + dt.timedelta(days=1), until=BASE + dt.timedelta(days=2)
                ),
                "tail": await _reports.latest_calls(store, 7),
                "report:several": await _reports.spend_report(store, "day,model,status"),
                "trend:several": await spend_report_with_trend(
                    store,
                    ["model", "user_id"],
                    since=BASE + dt.timedelta(days=1),
                    until=BASE + dt.timedelta(days=2),
                ),
                "tail:filtered": await _reports.latest_calls(
                    store,
                    0,
                    where=_reports.CallFilter(
                        statuses=("ok", "error"), since=BASE + dt.timedelta(days=1)
                    ),
                ),
                "show": await _reports.get_call(store, rows[7][0]),
                "unpriced": await _reports.unpriced_models(store, PRICES),
                **{f"view:{view}": await _view(store, view) for view in VIEWS},
            }
    sqlite, other = outputs["sqlite"], outputs[dialect]
    assert all(sqlite[f"view:{view}"] for view in VIEWS)  # every view has rows to compare
    assert sqlite["tail:filtered"] and len(sqlite["report:several"]) > len(sqlite["report:model"])
    assert any(r["cost_trend"] for r in sqlite["trend:several"][0])
    assert any(r["blocked"] for r in sqlite["view:llm_daily_spend"])  # and blocked rows
    savings = sum(r["cache_savings"] or 0 for r in sqlite["view:llm_cache_savings"])
    assert savings > 0  # cache reads (2000 tokens per call) outweigh the writes here
    for key in sqlite:
        if key == "show":
            assert comparable(other[key]) == comparable(sqlite[key]), key
        else:
            assert other[key] == sqlite[key], key


# The views that count calls (migration 0005), and the columns that name a group of each.
COUNTING_VIEWS = {
    "llm_daily_spend": ("day", "model"),
    "llm_spend_by_attribution": ("feature", "user_id", "api_key_alias"),
    "llm_error_rate": ("model",),
    "llm_call_counts": ("day", "model"),
}


async def test_views_count_blocked_attempts_apart(db: ml.MetadataStore) -> None:
    sent = sample_rows()
    await db.write_batch(sent, [])
    before = {view: await _view(db, view) for view in COUNTING_VIEWS}
    await db.write_batch(blocked_rows(), [])
    for view, group in COUNTING_VIEWS.items():
        rows = await _view(db, view)
        assert list(rows[0])[-1] == "blocked", view  # the new column comes last
        assert sum(r["blocked"] for r in rows) == 5, view
        # the figures of every group that had calls are what they were without the
        # blocked attempts (calls, errors, tokens, cost, rate, retries, tool calls)
        after = {tuple(r[c] for c in group): r for r in rows}
        for old in before[view]:
            new = after[tuple(old[c] for c in group)]
            assert {k: v for k, v in new.items() if k != "blocked"} == {
                k: v for k, v in old.items() if k != "blocked"
            }, view
    rates = {r["model"]: r for r in await _view(db, "llm_error_rate")}
    only = rates["gpt-4o-mini"]  # nothing but a refused attempt: no rate, not 0
    assert (only["calls"], only["errors"], only["error_rate"], only["blocked"]) == (0, 0, None, 1)
    haiku = rates["claude-haiku-4-5"]
    calls = [r for r in sent if r.model == "claude-haiku-4-5"]
    errors = sum(1 for r in calls if r.status == "error")
    assert (haiku["calls"], haiku["errors"], haiku["blocked"]) == (len(calls), errors, 4)
    assert haiku["error_rate"] == (Decimal(errors) / len(calls)).quantize(Decimal("0.0001"))


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
@pytest.mark.servers
async def test_a_migration_reruns_after_failing_halfway(dialect: str, tmp_path: Path) -> None:
    """MySQL commits DDL as it goes: a migration interrupted after some statements
    must complete when run again (simulated: its record gone, its effects kept). The
    latest migration: an earlier one run again over a later one's views would go back
    (PostgreSQL refuses to drop a view's columns)."""
    latest = migrations_for(dialect)[-1].name
    async with isolated_db(dialect, tmp_path) as store:
        await store.write_batch(sample_rows(), [])
        delete = "DELETE FROM majordomo_migrations WHERE name = ?"
        if dialect == "postgresql":
            await store._pool.execute(delete.replace("?", "$1"), latest)  # type: ignore[attr-defined]
        else:
            async with store._pool.acquire() as conn, conn.cursor() as cur:  # type: ignore[attr-defined]
                await cur.execute(delete.replace("?", "%s"), (latest,))
                await conn.commit()
        assert await store.migrate() == [latest]
        (count,) = await store.fetch("SELECT COUNT(*) AS n FROM llm_daily_spend")
        assert count["n"] > 0


async def test_sqlite_file_at_0001_upgrades_keeping_its_rows(tmp_path: Path) -> None:
    import sqlite3

    from majordomo_log.stores.sql.migrate import split_statements

    path = tmp_path / "old.db"
    first = migrations_for("sqlite")[0]
    with sqlite3.connect(path) as conn:
        for statement in split_statements(first.sql):
            conn.execute(statement)
        conn.execute(
            "CREATE TABLE majordomo_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        conn.execute("INSERT INTO majordomo_migrations VALUES (?, '2026-01-01')", (first.name,))
        conn.execute(
            "INSERT INTO llm_requests (request_id, started_at, ended_at, latency_ms, provider,"
            " operation, status, cost_status) VALUES ('old', '2026-01-01T00:00:00.000000Z',"
            " '2026-01-01T00:00:01.000000Z', 1000, 'openai', 'chat.completions', 'ok', 'computed')"
        )
    db = await ml.SqliteAdapter.create(path)
    try:
        rows = await db.fetch("SELECT request_id, cache_savings FROM llm_requests")
        assert rows == [{"request_id": "old", "cache_savings": None}]
        assert await db.migrate() == []
    finally:
        await db.close()
