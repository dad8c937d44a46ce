"""``ml.Budget``: what it accepts, the clear errors for what it does not, its periods and
its stored definition."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

import majordomo_log as ml
from majordomo_log.budgets.periods import period_bounds

UTC = dt.timezone.utc


def ts(*args: int, tz: dt.tzinfo = UTC) -> float:
    return dt.datetime(*args, tzinfo=tz).timestamp()


def test_the_issue_example_is_five_dollars_per_user_per_day() -> None:
    budget = ml.Budget("5.00", per="day", scope="user_id", hard=True)
    assert budget.limit == Decimal("5.00") and budget.unit == "usd"
    assert budget.scope == ("user_id",) and budget.hard
    assert budget.thresholds == (0.5, 0.8, 1.0)
    assert budget.name == "$5.00 per day by user_id"
    assert budget.scope_value({"user_id": "u-42", "feature": "x"}) == ("u-42",)
    assert budget.scope_value({"feature": "x"}) is None  # not counted by this budget


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit_usd": 0, "per": "day"}, "above zero"),
        ({"limit_usd": "-1", "per": "day"}, "above zero"),
        ({"limit_usd": "NaN", "per": "day"}, "above zero"),
        ({"limit_usd": "five", "per": "day"}, "amount in dollars"),
        ({"limit_usd": True, "per": "day"}, "amount in dollars"),
        ({"limit_tokens": 0, "per": "hour"}, "above zero"),
        ({"limit_tokens": 1.5, "per": "hour"}, "whole number"),
        ({"limit_requests": -3, "per": "minute"}, "above zero"),
        ({"limit_usd": 5, "per": "fortnight"}, "per= must be one of"),
        ({"limit_usd": 5}, "per= must be one of"),
        ({"limit_usd": 5, "per": "day", "scope": ""}, "tag names"),
        ({"limit_usd": 5, "per": "day", "scope": ()}, "empty"),
        ({"limit_usd": 5, "per": "day", "scope": ("org_id", "org_id")}, "twice"),
        ({"limit_usd": 5, "per": "day", "scope": "user id; DROP"}, "tag names"),
        ({"limit_usd": 5, "per": "day", "thresholds": (0.5, -1)}, "above zero"),
        ({"limit_usd": 5, "per": "day", "thresholds": ("x",)}, "fractions"),
        ({"limit_usd": 5, "per": "day", "tz": "Mars/Olympus"}, "time zone"),
        ({"limit_usd": 5, "per": "day", "name": "  "}, "name="),
        ({"limit_usd": 5, "limit_tokens": 5, "per": "day"}, "exactly one"),
        ({"per": "day"}, "exactly one"),
        ({"limit_requests": 5, "per": "call"}, "per-call"),
    ],
)
def test_a_bad_budget_is_a_clear_error_when_built(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ml.ConfigError, match=message):
        ml.Budget(**kwargs)


def test_a_float_limit_is_the_amount_it_reads_as() -> None:
    assert ml.Budget(0.1, per="day").limit == Decimal("0.1")


def test_tokens_and_requests_budgets() -> None:
    tokens = ml.Budget(None, per="hour", limit_tokens=1_000_000)
    assert (tokens.unit, tokens.limit, tokens.name) == (
        "tokens",
        1_000_000,
        "1000000 tokens per hour",
    )
    requests = ml.Budget(limit_requests=60, per="minute", scope=("org_id", "user_id"), hard=True)
    assert requests.unit == "requests"
    assert requests.scope_value({"org_id": "acme", "user_id": 7}) == ("acme", "7")
    assert requests.scope_value({"org_id": "acme"}) is None


def test_the_definition_round_trips() -> None:
    budget = ml.Budget(
        "12.5",
        per="week",
        scope=("org_id", "user_id"),
        hard=True,
        thresholds=(0.9, 0.25),
        name="weekly",
        tz="Europe/Paris",
    )
    again = ml.Budget.from_definition(budget.definition())
    assert again == budget and again.thresholds == (0.25, 0.9) and again.tz == budget.tz
    assert (
        ml.Budget.from_definition(ml.Budget(limit_tokens=10, per="total").definition()).limit == 10
    )


def test_calendar_periods_in_utc() -> None:
    at = ts(2026, 12, 5, 13, 47, 12)
    assert period_bounds("minute", at) == (
        dt.datetime(2026, 12, 5, 13, 47, tzinfo=UTC),
        dt.datetime(2026, 12, 5, 13, 48, tzinfo=UTC),
    )
    assert period_bounds("hour", at)[0] == dt.datetime(2026, 12, 5, 13, tzinfo=UTC)
    assert period_bounds("day", at) == (
        dt.datetime(2026, 12, 5, tzinfo=UTC),
        dt.datetime(2026, 12, 6, tzinfo=UTC),
    )
    # 2026-12-05 is a Saturday: the ISO week began on Monday the 30th of November
    assert period_bounds("week", at) == (
        dt.datetime(2026, 11, 30, tzinfo=UTC),
        dt.datetime(2026, 12, 7, tzinfo=UTC),
    )
    assert period_bounds("month", ts(2026, 12, 31, 23, 59)) == (
        dt.datetime(2026, 12, 1, tzinfo=UTC),
        dt.datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert period_bounds("total", at)[1] is None


def test_a_local_day_across_a_dst_change_is_25_hours() -> None:
    paris = ml.Budget(5, per="day", tz="Europe/Paris")
    start, end = paris.bounds(ts(2026, 10, 25, 12))  # clocks went back at 03:00 local
    assert start == dt.datetime(2026, 10, 24, 22, tzinfo=UTC)
    assert end is not None and end - start == dt.timedelta(hours=25)
    # just before local midnight is still the same local day, though the UTC date moved on
    late = paris.bounds(ts(2026, 12, 5, 23, 30))
    assert late[0] == dt.datetime(2026, 12, 5, 23, tzinfo=UTC)


def test_a_ledger_keeps_a_bounded_number_of_tallies_and_characters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from majordomo_log.budgets import ledger as ledgers

    monkeypatch.setattr(ledgers, "MAX_TALLIES", 1000)
    monkeypatch.setattr(ledgers, "MAX_VALUE_CHARS", 50_000)
    book = ledgers.Ledger(ml.Budget(5, per="day", scope="user_id"))
    now = ts(2026, 12, 5, 12)
    for n in range(5000):  # attacker-chosen user ids
        book.tally((f"user-{n}",), now)
    assert len(book.tallies) <= 1000
    for n in range(200):
        book.tally(("x" * 1000 + str(n),), now)
    assert book.chars <= 50_000 and book.chars == sum(len(v[0]) for v in book.tallies)
    # the newest stay: the user seen last is still counted
    assert ("x" * 1000 + "199",) in book.tallies
