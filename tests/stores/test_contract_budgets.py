"""The budgets contract of the SQL stores, on SQLite, PostgreSQL and MySQL/MariaDB alike:
``llm_budgets`` (``stores.base.BudgetRegistry``) and the spend per scope value budgets
read (``stores/sql/spend.py``), checked against the same sums made in Python from the
rows written."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from servers import DIALECTS, isolated_db
from test_contract_metadata import BASE, blocked_row, record

import majordomo_log as ml
from majordomo_log.budgets.budget import Budget
from majordomo_log.record.rows import build_row
from majordomo_log.schema import Row
from majordomo_log.stores.base import BudgetRegistry
from majordomo_log.stores.sql import spend
from majordomo_log.stores.sql.spend import COLUMN_TAGS, largest_call_by_scope, spend_by_scope

HOSTILE = "o'brien\"; DROP TABLE llm_requests; --\\"
HASHED = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
USERS = ["u-1", "U-1", HOSTILE, "üser-😀", HASHED, None, "", "u-1 ", "  "]
ORGS: list[Any] = ["acme", "Acme", 42, True, None, "o.rg-1", 1.5]
MODELS = ["claude-haiku-4-5", "gpt-4o", "no-such-model"]  # the last has no price: NULL cost


@pytest.fixture(params=DIALECTS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    async with isolated_db(request.param, tmp_path) as store:
        yield store


def rows() -> list[Row]:
    """64 calls over four days, a scope tag in the JSON only (org, with odd values), and
    every eighth one an attempt a budget refused."""
    out = []
    for i in range(64):
        tags: dict[str, Any] = {
            "user_id": USERS[i % len(USERS)],
            "workflow": f"wf-{i % 3}",
            "team.name": HOSTILE if i % 3 else 'a\\"b',  # quotes, SQL, escapes in the JSON
        }
        if i % 5:  # some calls have no org at all
            tags["org"] = ORGS[i % len(ORGS)]
        row = build_row(record(i, model=MODELS[i % 3], tags=tags, day=i % 4), None)
        out.append(blocked_row(row) if i % 8 == 7 else row)
    return out


def text(value: Any) -> str | None:
    """A tag value as a scope value: what the stores read (text, numbers, booleans)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def expected(
    written: Sequence[Row],
    scope: tuple[str, ...],
    unit: str,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> dict[tuple[str, ...], Decimal | int]:
    """The same figures, summed in Python."""
    out: dict[tuple[str, ...], Any] = {}
    for row in written:
        if row.status == "blocked" or (since and row.started_at < since):
            continue
        if until and row.started_at >= until:
            continue
        tags = json.loads(row.tags)
        key = tuple(text(getattr(row, t) if t in COLUMN_TAGS else tags.get(t)) for t in scope)
        if None in key:
            continue
        amount = {"usd": row.total_cost or Decimal(0), "tokens": row.total_tokens or 0}.get(unit, 1)
        out[key] = out.get(key, Decimal(0) if unit == "usd" else 0) + amount
    if not scope:
        out.setdefault((), Decimal(0) if unit == "usd" else 0)
    return out


def same(dialect: str, got: dict[Any, Any], want: dict[Any, Any]) -> None:
    """Exact on PostgreSQL and MySQL; SQLite sums money in floating point: to 10 places."""
    assert set(got) == set(want)
    for key, value in want.items():
        assert type(got[key]) is type(value), key
        if dialect == "sqlite" and isinstance(value, Decimal):
            assert got[key].quantize(Decimal("1e-10")) == value.quantize(Decimal("1e-10")), key
        else:
            assert got[key] == value, key


# -- spend per scope value -------------------------------------------------------------------

SCOPES = [
    (),
    ("user_id",),
    ("org",),
    ("org", "user_id"),
    ("api_key_alias",),
    ("workflow",),
    ("team.name", "workflow"),
]


@pytest.mark.parametrize("unit", ["usd", "tokens", "requests"])
async def test_spend_by_scope_matches_python_sums(db: ml.MetadataStore, unit: str) -> None:
    written = rows()
    await db.write_batch(written, [])
    for scope in SCOPES:
        got = await spend_by_scope(db, scope, unit, None)
        same(db.dialect, got, expected(written, scope, unit))
    # a window: since inclusive, until exclusive (row 1 starts exactly at `since`)
    since, until = written[1].started_at, BASE + dt.timedelta(days=3)
    for scope in SCOPES:
        got = await spend_by_scope(db, scope, unit, since, until)
        same(db.dialect, got, expected(written, scope, unit, since, until))


async def test_what_each_scope_value_reads_as(db: ml.MetadataStore) -> None:
    written = rows()
    await db.write_batch(written, [])
    users = await spend_by_scope(db, ("user_id",), "requests", None)
    # case and trailing spaces make other values (MySQL's collations would pad 'u-1 ' to
    # 'u-1'); NULL and '' are no value: not counted
    assert {k[0] for k in users} == {"u-1", "U-1", HOSTILE, "üser-😀", HASHED, "u-1 ", "  "}
    orgs = await spend_by_scope(db, ("org",), "requests", None)
    assert {k[0] for k in orgs} == {"acme", "Acme", "42", "true", "o.rg-1", "1.5"}
    teams = await spend_by_scope(db, ("team.name",), "requests", None)
    assert set(teams) == {(HOSTILE,), ('a\\"b',)}
    assert sum(users.values()) == sum(1 for r in written if r.status != "blocked") - sum(
        1 for r in written if r.status != "blocked" and json.loads(r.tags)["user_id"] in (None, "")
    )


async def test_blocked_attempts_and_unknown_costs_add_nothing(db: ml.MetadataStore) -> None:
    written = rows()
    await db.write_batch(written, [])
    (whole,) = (await spend_by_scope(db, (), "requests", None)).values()
    assert whole == sum(1 for r in written if r.status != "blocked") == 56
    cost = (await spend_by_scope(db, (), "usd", None))[()]
    priced = sum(r.total_cost for r in written if r.total_cost is not None)
    assert cost.quantize(Decimal("1e-10")) == priced.quantize(Decimal("1e-10")) > 0
    # a scope value with calls of unknown cost only still has its entry, at zero
    unknown = [r._replace(workflow="wf-unpriced") for r in written if r.total_cost is None]
    await db.write_batch(
        [r._replace(request_id=r.request_id[:-3] + "fff") for r in unknown[:2]], []
    )
    got = await spend_by_scope(db, ("workflow",), "usd", None, values=[("wf-unpriced",)])
    assert got == {("wf-unpriced",): Decimal(0)}


async def test_an_empty_log(db: ml.MetadataStore) -> None:
    assert await spend_by_scope(db, (), "usd", None) == {(): Decimal(0)}
    assert await spend_by_scope(db, (), "tokens", BASE, BASE) == {(): 0}
    assert await spend_by_scope(db, ("user_id",), "requests", BASE) == {}


async def test_values_restrict_the_answer_in_bounded_queries(
    db: ml.MetadataStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = rows()
    await db.write_batch(written, [])
    monkeypatch.setattr(spend, "VALUES_PER_QUERY", 2)
    asked = [("u-1",), (HOSTILE,), ("nobody",), ("üser-😀",), ("u-1",), ("' OR 1=1 --",)]
    got = await spend_by_scope(db, ("user_id",), "usd", None, values=asked)
    want = expected(written, ("user_id",), "usd")
    same(db.dialect, got, {k: want[k] for k in [("u-1",), (HOSTILE,), ("üser-😀",)]})
    want = expected(written, ("org", "user_id"), "tokens")
    pairs = [("42", HOSTILE), ("1.5", "  "), *sorted(want)[:2], ("acme", "nobody")]
    got = await spend_by_scope(db, ("org", "user_id"), "tokens", None, values=pairs)
    present = {k: want[k] for k in pairs if k in want}
    assert len(present) >= 3
    same(db.dialect, got, present)
    got = await spend_by_scope(db, ("team.name",), "requests", None, values=[(HOSTILE,)])
    assert got == {(HOSTILE,): expected(written, ("team.name",), "requests")[(HOSTILE,)]}
    assert await spend_by_scope(db, ("user_id",), "usd", None, values=[]) == {}


async def test_largest_call_by_scope(db: ml.MetadataStore) -> None:
    written = rows()
    await db.write_batch(written, [])
    got = await largest_call_by_scope(db, ("workflow",), "tokens", None)
    want: dict[tuple[str, ...], int] = {}
    for row in written:
        if row.status != "blocked" and row.total_tokens is not None:
            key = (row.workflow or "",)
            want[key] = max(want.get(key, 0), row.total_tokens)
    assert got == want
    (largest,) = (await largest_call_by_scope(db, (), "usd", None)).values()
    assert largest == max(r.total_cost for r in written if r.total_cost is not None)


@pytest.mark.parametrize(
    "scope",
    [("user'id",), ("a b",), ("",), ("x" * 65,), ("tags->>'x'",), ("user_id", "user_id")],
)
async def test_a_tag_name_that_is_not_plain_is_refused(
    db: ml.MetadataStore, scope: tuple[str, ...]
) -> None:
    with pytest.raises(ml.ConfigError):
        await spend_by_scope(db, scope, "usd", None)
    with pytest.raises(ml.ConfigError):
        await spend_by_scope(db, (), "euros", None)


# -- the budgets a wrapper enforces ----------------------------------------------------------


async def test_every_store_is_a_budget_registry(db: ml.MetadataStore) -> None:
    assert isinstance(db, BudgetRegistry)
    assert await db.budget_definitions() == []


async def test_definitions_are_upserted_by_name(db: Any) -> None:
    daily = Budget("5.00", per="day", scope="user_id", hard=True)
    monthly = Budget(limit_tokens=1_000_000, per="month", scope=("org", "feature"), tz="Asia/Tokyo")
    odd = Budget("0.0000001", per="call", name=f"ünï {HOSTILE} 😀")
    await db.save_budgets([daily.definition(), monthly.definition()])
    await db.save_budgets([odd.definition()])
    got = await db.budget_definitions()
    assert got == sorted(
        [daily.definition(), monthly.definition(), odd.definition()], key=lambda d: d["name"]
    )
    assert [Budget.from_definition(d) for d in got] == sorted(
        [daily, monthly, odd], key=lambda b: b.name
    )
    # the same name again: the latest definition wins, the others stay
    softer = Budget("9.50", per="day", scope="user_id", name=daily.name)
    await db.save_budgets([softer.definition(), softer.definition()])
    got = await db.budget_definitions()
    assert len(got) == 3 and softer.definition() in got and daily.definition() not in got
    (count,) = await db.fetch("SELECT COUNT(*) AS n FROM llm_budgets")
    assert int(count["n"]) == 3


@pytest.mark.parametrize(
    "bad",
    [
        {"unit": "usd"},
        {"name": ""},
        {"name": "x" * 256},
        {"name": "nul", "note": "a\x00b"},
        {"name": "surrogate", "note": "\ud800"},
        {"name": "not json", "limit": Decimal("1")},
        {"name": "nan", "limit": float("nan")},
    ],
)
async def test_a_bad_definition_writes_nothing(db: Any, bad: dict[str, Any]) -> None:
    good = Budget("1", per="hour").definition()
    with pytest.raises(ml.ConfigError):
        await db.save_budgets([good, bad])
    assert await db.budget_definitions() == []


async def test_a_log_migrated_before_budgets_has_none(db: Any) -> None:
    await db.save_budgets([Budget("1", per="hour").definition()])
    await db.fetch("DROP TABLE llm_budgets")
    assert await db.budget_definitions() == []
