"""Hard budgets through the real SDKs: the call over the limit is refused before the
provider is called, its attempt is a ``blocked`` row, and every budget that applies to
a call must allow it."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import sqlite3
import subprocess
import sys
import textwrap
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import majordomo_log as ml
from majordomo_log.testing import FakeProvider, fake_openai_client, fake_sync_openai_client

MESSAGES = [{"role": "user", "content": "hi"}]
# gpt-4o-mini: $0.15 per million input tokens, $0.60 per million output tokens
USAGE = {"prompt_tokens": 1000, "completion_tokens": 100}
CALL_COST = Decimal("0.00021")  # 1000 × 0.15e-6 + 100 × 0.60e-6


def rows(db: Path) -> list[dict[str, Any]]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM llm_requests ORDER BY started_at")]
    finally:
        con.close()


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider(openai_usage=USAGE)  # type: ignore[typeddict-item]


def call(llm: Any, **tags: Any) -> Any:
    with ml.tags(**tags):
        return llm.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)


def calls_until_blocked(llm: Any, limit: int = 1000, **tags: Any) -> tuple[int, ml.BudgetExceeded]:
    for made in range(limit):
        try:
            call(llm, **tags)
        except ml.BudgetExceeded as refusal:
            return made, refusal
    raise AssertionError(f"not blocked after {limit} calls")


def test_a_user_over_their_daily_budget_is_refused_before_the_provider_is_called(
    tmp_path: Path, provider: FakeProvider
) -> None:
    budget = ml.Budget(CALL_COST * 3, per="day", scope="user_id", hard=True)
    db = tmp_path / "log.db"
    with ml.LoggingLLM(
        fake_sync_openai_client(provider), db, tmp_path / "bodies", budgets=[budget]
    ) as llm:
        made, refusal = calls_until_blocked(llm, user_id="u-1")
        sent = len(provider.requests)
        with pytest.raises(ml.BudgetExceeded):
            call(llm, user_id="u-1")
        assert len(provider.requests) == sent  # refused calls never reach the provider
        call(llm, user_id="u-2")  # another user's budget is their own
    assert made == 3
    assert refusal.budget is budget and refusal.scope_value == ("u-1",)
    assert refusal.spend == CALL_COST * 3 and refusal.limit == CALL_COST * 3
    today = dt.datetime.now(dt.timezone.utc).date()
    assert refusal.period_end == dt.datetime.combine(
        today + dt.timedelta(days=1), dt.time(), dt.timezone.utc
    )
    assert "u-1" in str(refusal) and "$0.00063" in str(refusal)
    logged = rows(db)
    blocked = [r for r in logged if r["status"] == "blocked"]
    assert len(blocked) == 2 and len(logged) == 6
    for row in blocked:
        assert row["cost_status"] == "blocked" and row["total_cost"] is None
        assert row["total_tokens"] is None and row["error_type"] == "BudgetExceeded"
        assert row["user_id"] == "u-1" and row["model"] == "gpt-4o-mini"
        assert row["body_ref"]  # the refused request is kept, as any other
    assert refusal.request_id in {r["request_id"] for r in blocked}


def test_a_soft_budget_never_blocks(tmp_path: Path, provider: FakeProvider) -> None:
    budget = ml.Budget(CALL_COST, per="day")
    with ml.LoggingLLM(
        fake_sync_openai_client(provider), tmp_path / "l.db", budgets=[budget]
    ) as llm:
        for _ in range(5):
            call(llm)
    assert len(provider.requests) == 5


def test_every_budget_that_applies_must_allow_the_call(
    tmp_path: Path, provider: FakeProvider
) -> None:
    org = ml.Budget(limit_requests=5, per="day", scope="org_id", hard=True, name="org")
    user = ml.Budget(
        limit_requests=2, per="day", scope=("org_id", "user_id"), hard=True, name="user"
    )
    with ml.LoggingLLM(
        fake_sync_openai_client(provider), tmp_path / "l.db", budgets=[org, user]
    ) as llm:
        assert calls_until_blocked(llm, org_id="acme", user_id="ann")[1].budget is user
        assert calls_until_blocked(llm, org_id="acme", user_id="bob")[1].budget is user
        made, refusal = calls_until_blocked(llm, org_id="acme", user_id="cid")
        assert (made, refusal.budget, refusal.scope_value) == (1, org, ("acme",))
        # another organisation's users are untouched; a call without org_id is not counted
        assert calls_until_blocked(llm, org_id="beta", user_id="ann")[0] == 2
        for _ in range(3):
            call(llm)


def test_tokens_per_minute_per_key_alias(tmp_path: Path, provider: FakeProvider) -> None:
    budget = ml.Budget(limit_tokens=3000, per="minute", scope="api_key_alias", hard=True)
    with ml.LoggingLLM(
        fake_sync_openai_client(provider),
        tmp_path / "l.db",
        api_key_alias="batch-jobs",
        budgets=[budget],
    ) as llm:
        made, refusal = calls_until_blocked(llm)
    assert made == 3 and refusal.spend == 3300 and refusal.scope_value == ("batch-jobs",)


def test_a_hashed_tag_is_scoped_by_its_hash(tmp_path: Path, provider: FakeProvider) -> None:
    budget = ml.Budget(limit_requests=1, per="day", scope="user_id", hard=True)
    with ml.LoggingLLM(
        fake_sync_openai_client(provider),
        tmp_path / "l.db",
        budgets=[budget],
        hash_tags=["user_id"],
    ) as llm:
        _, refusal = calls_until_blocked(llm, user_id="alice@example.com")
    assert refusal.scope_value == (ml.hash_tag("alice@example.com"),)
    assert "alice" not in str(refusal)


def test_a_per_call_cap_refuses_a_call_that_could_cost_more(
    tmp_path: Path, provider: FakeProvider
) -> None:
    cap = ml.Budget("0.01", per="call", hard=True)
    with ml.LoggingLLM(fake_sync_openai_client(provider), tmp_path / "l.db", budgets=[cap]) as llm:
        # 100,000 output tokens at $0.60/M could cost $0.06: over the cap
        with pytest.raises(ml.BudgetExceeded, match="could cost up to") as refused:
            llm.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=100_000)
        assert refused.value.spend > Decimal("0.06") and refused.value.period_end is None
        llm.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=1000)
    assert len(provider.requests) == 1


def test_a_per_call_cap_that_cannot_estimate_lets_the_call_through_and_says_so(
    tmp_path: Path, provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    cap = ml.Budget("0.000001", per="call", hard=True, name="tiny")
    with (
        caplog.at_level(logging.WARNING, "majordomo_log"),
        ml.LoggingLLM(fake_sync_openai_client(provider), tmp_path / "l.db", budgets=[cap]) as llm,
    ):
        llm.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # no max_tokens
    assert len(provider.requests) == 1
    assert "could not be estimated" in caplog.text and "'tiny'" in caplog.text


async def test_async_client_and_stream(tmp_path: Path, provider: FakeProvider) -> None:
    db = await ml.SqliteAdapter.create(tmp_path / "l.db")
    budget = ml.Budget(limit_tokens=2200, per="hour", hard=True)
    async with ml.LoggingLLM(fake_openai_client(provider), db, budgets=[budget]) as llm:
        await llm.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        stream = await llm.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True
        )
        async for _ in stream:
            pass  # charged when the stream ends
        results = await asyncio.gather(
            llm.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES),
            return_exceptions=True,
        )
        assert isinstance(results[0], ml.BudgetExceeded)
        await llm.flush()
        statuses = [r["status"] for r in await db.fetch("SELECT status FROM llm_requests")]
    assert sorted(statuses) == ["blocked", "ok", "ok"]


def test_threads_sharing_a_budget_overshoot_by_at_most_the_calls_in_flight(
    tmp_path: Path, provider: FakeProvider
) -> None:
    budget = ml.Budget(limit_requests=50, per="day", hard=True)
    passed: list[int] = []
    with ml.LoggingLLM(
        fake_sync_openai_client(provider), tmp_path / "l.db", budgets=[budget]
    ) as llm:

        def work() -> None:
            made, _ = calls_until_blocked(llm)
            passed.append(made)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert 50 <= sum(passed) <= 50 + 8 - 1
    assert len(provider.requests) == sum(passed)


def test_a_budget_holds_across_a_restart(tmp_path: Path) -> None:
    """A new process reads the period's spend back from the store before its first call."""
    db = tmp_path / "l.db"
    script = textwrap.dedent(
        f"""
        import sys
        import majordomo_log as ml
        from majordomo_log.testing import FakeProvider, fake_sync_openai_client
        provider = FakeProvider(openai_usage={USAGE!r})
        budget = ml.Budget(limit_requests=3, per="day", scope="user_id", hard=True)
        with ml.LoggingLLM(fake_sync_openai_client(provider), {str(db)!r}, budgets=[budget]) as llm:
            try:
                with ml.tags(user_id="u-1"):
                    llm.chat.completions.create(
                        model="gpt-4o-mini", messages=[{{"role": "user", "content": "x"}}]
                    )
                print("ok")
            except ml.BudgetExceeded:
                print("blocked")
        """
    )
    outcomes = [
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(5)
    ]
    assert outcomes == ["ok", "ok", "ok", "blocked", "blocked"]


@pytest.mark.parametrize(
    ("tag", "value"),
    [
        ("user_id", "u\ud800"),  # a lone surrogate: stored as U+FFFD
        ("user_id", "u\x00v"),  # NUL: stored as U+FFFD
        ("user_id", "u" * 1000),  # a column's 255 characters
        ("tenant", "t\x00" + "t" * 70_000),  # the tags JSON's 65,536 characters
    ],
)
def test_a_scope_value_is_read_back_from_the_store_as_its_row_holds_it(
    tmp_path: Path, provider: FakeProvider, tag: str, value: str
) -> None:
    """The spend a wrapper finds in the store (at start, or another process's) is found
    for values the row stores cleaned or cut: the budget's scope value is the row's."""
    db = tmp_path / "l.db"
    first = ml.Budget(limit_requests=2, per="day", scope=tag, hard=True, name="first")
    with ml.LoggingLLM(fake_sync_openai_client(provider), db, budgets=[first], alerts=[]) as llm:
        assert calls_until_blocked(llm, **{tag: value})[0] == 2
    # another budget of the same limit (a fresh tally): its figure comes from the store
    second = ml.Budget(limit_requests=2, per="day", scope=tag, hard=True, name="second")
    llm = ml.LoggingLLM(fake_sync_openai_client(provider), db, budgets=[second], alerts=[])
    with llm, pytest.raises(ml.BudgetExceeded) as refused:
        call(llm, **{tag: value})
    assert len(refused.value.scope_value[0]) <= 65_536


def test_raw_byte_responses_are_refused_too(tmp_path: Path, provider: FakeProvider) -> None:
    """with_streaming_response and with_raw_response(stream=True) are not logged (the
    caller parses the bytes), but a spent hard budget refuses them like any other call."""
    budget = ml.Budget(limit_requests=1, per="day", hard=True)
    with ml.LoggingLLM(
        fake_sync_openai_client(provider), tmp_path / "l.db", budgets=[budget], alerts=[]
    ) as llm:
        call(llm)
        sent = len(provider.requests)
        completions = llm.chat.completions
        with pytest.raises(ml.BudgetExceeded):
            completions.with_raw_response.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            )
        with pytest.raises(ml.BudgetExceeded):
            completions.with_streaming_response.create(model="gpt-4o-mini", messages=MESSAGES)
        assert len(provider.requests) == sent

    async def refused_when_awaited() -> None:
        llm = ml.LoggingLLM(
            fake_openai_client(provider), tmp_path / "a.db", budgets=[budget], alerts=[]
        )
        try:
            await llm.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            sent = len(provider.requests)
            raw = llm.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            )
            with pytest.raises(ml.BudgetExceeded):
                await raw
            with pytest.raises(ml.BudgetExceeded):
                async with llm.chat.completions.with_streaming_response.create(
                    model="gpt-4o-mini", messages=MESSAGES
                ):
                    pass
            assert len(provider.requests) == sent
        finally:
            await llm.close()

    asyncio.run(refused_when_awaited())
