"""Billing variants end to end: wrapped calls served in a service tier or with web searches,
and Batch API results logged with ``log_batch_results``, as the rows SQLite ends up with.

Bodies come from the real openai / anthropic SDKs against the in-process fake provider; the
expected costs are worked out by hand from the published prices quoted in the comments.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from anthropic.types.messages import MessageBatchIndividualResponse

import majordomo_log as ml
from majordomo_log.capture.batch import read_batch_result
from majordomo_log.cli import reports as _reports
from majordomo_log.testing import FakeProvider, fake_anthropic_client, fake_openai_client

CREATED = int(dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.timezone.utc).timestamp())
COLUMNS = (
    "model, operation, status, error_type, service_tier, web_search_calls, server_tool_cost,"
    " input_tokens, cache_read_tokens, output_tokens, total_cost, cost_status, started_at,"
    " latency_ms, provider_request_id, tags, usage_flags"
)


async def rows(db: ml.SqliteAdapter, ids: list[str]) -> list[dict[str, Any]]:
    got = {
        r["request_id"]: _reports.normalize_row(r)
        for r in await db.fetch(f"SELECT request_id, {COLUMNS} FROM llm_requests")
    }
    return [got[i] for i in ids]


@pytest.fixture
async def db(tmp_path: Path) -> Any:
    store = await ml.SqliteAdapter.create(tmp_path / "log.db")
    yield store
    await store.close()


async def _openai_lines(provider: FakeProvider) -> str:
    """An OpenAI batch output file: a chat completion, a response, a failed request."""
    client = fake_openai_client(provider)
    chat = (await client.chat.completions.create(model="gpt-4o-mini", messages=[])).model_dump()
    provider.responses_usage = {"input_tokens": 8000, "output_tokens": 1000}
    response = (await client.responses.create(model="gpt-5", input="hi")).model_dump()
    chat["created"] = CREATED
    response["created_at"] = CREATED
    lines = [
        {
            "id": "batch_req_1",
            "custom_id": "c-1",
            "response": {"status_code": 200, "request_id": "req_a", "body": chat},
            "error": None,
        },
        {
            "id": "batch_req_2",
            "custom_id": "c-2",
            "response": {"status_code": 200, "request_id": "req_b", "body": response},
            "error": None,
        },
        {
            "id": "batch_req_3",
            "custom_id": "c-3",
            "response": None,
            "error": {"code": "batch_expired", "message": "This request could not be executed"},
        },
    ]
    return "\n".join(json.dumps(line) for line in lines) + "\n"


async def test_openai_batch_output_file_is_priced_at_the_batch_rates(
    db: ml.SqliteAdapter, tmp_path: Path
) -> None:
    provider = FakeProvider(
        openai_usage={"prompt_tokens": 10_000, "cached_tokens": 4000, "completion_tokens": 2000}
    )
    text = await _openai_lines(provider)
    llm = ml.LoggingLLM(fake_openai_client(provider), db, None, close_stores=False)
    with ml.tags(feature="nightly"):
        ids = llm.log_batch_results(text)
    await llm.close()
    chat, response, failed = await rows(db, ids)
    # gpt-4o-mini Batch API (OpenAI pricing, Batch: $0.075 input / $0.30 output per 1M; no
    # batch cached-input price, so cached input keeps the standard $0.075):
    # 6,000 * 0.075 + 4,000 * 0.075 + 2,000 * 0.30 = 450 + 300 + 600 = 1,350 / 1e6
    assert chat["total_cost"] == Decimal("0.00135")  # standard: 0.0024
    assert (chat["service_tier"], chat["operation"], chat["cost_status"]) == (
        "batch",
        "chat.completions",
        "computed",
    )
    assert (chat["input_tokens"], chat["cache_read_tokens"]) == (6000, 4000)
    assert chat["started_at"] == "2026-11-01T12:00:00.000000Z" and chat["latency_ms"] == 0
    assert chat["provider_request_id"] == "req_a"
    assert json.loads(chat["tags"]) == {"feature": "nightly", "batch_custom_id": "c-1"}
    # gpt-5 Batch ($0.625 / $5.00 per 1M): 8,000 * 0.625 + 1,000 * 5 = 10,000 / 1e6
    assert (response["operation"], response["total_cost"]) == ("responses", Decimal("0.01"))
    assert response["service_tier"] == "batch"
    # the failed request: an error row, never billed
    assert (failed["status"], failed["error_type"], failed["cost_status"]) == (
        "error",
        "batch_expired",
        "error",
    )
    assert failed["total_cost"] is None and failed["service_tier"] is None


async def test_without_a_declared_tier_each_result_reports_its_own(db: ml.SqliteAdapter) -> None:
    provider = FakeProvider(openai_usage={"prompt_tokens": 1000, "completion_tokens": 100})
    text = await _openai_lines(provider)
    llm = ml.LoggingLLM(fake_openai_client(provider), db, None, close_stores=False)
    ids = llm.log_batch_results(text.splitlines()[:1], service_tier=None)
    await llm.close()
    [chat] = await rows(db, ids)
    # the body says "default": standard gpt-4o-mini, 1000 * 0.15 + 100 * 0.60 = 210 / 1e6
    assert (chat["service_tier"], chat["total_cost"]) == (None, Decimal("0.00021"))


async def test_anthropic_message_batch_results(db: ml.SqliteAdapter) -> None:
    provider = FakeProvider(
        anthropic_usage={"input_tokens": 2000, "output_tokens": 300, "service_tier": "batch"}
    )
    client = fake_anthropic_client(provider)
    message = await client.messages.create(model="claude-sonnet-4-6", max_tokens=5, messages=[])
    results: list[Any] = [
        MessageBatchIndividualResponse.model_validate(
            {"custom_id": "a-1", "result": {"type": "succeeded", "message": message.model_dump()}}
        ),
        {"custom_id": "a-2", "result": {"type": "succeeded", "message": message.model_dump()}},
        {
            "custom_id": "a-3",
            "result": {
                "type": "errored",
                "error": {
                    "type": "error",
                    "error": {"type": "invalid_request_error", "message": "max_tokens: bad"},
                },
            },
        },
        {"custom_id": "a-4", "result": {"type": "expired"}},
    ]
    llm = ml.LoggingLLM(client, db, None, close_stores=False)
    ids = llm.log_batch_results(results, service_tier=None)  # the usage says "batch"
    await llm.close()
    sdk, plain, errored, expired = await rows(db, ids)
    # claude-sonnet-4-6 Message Batches (Anthropic pricing, Batch: $1.50 input / $7.50 output
    # per 1M, 50% of $3 / $15): 2,000 * 1.50 + 300 * 7.50 = 3,000 + 2,250 = 5,250 / 1e6
    for row in (sdk, plain):
        assert (row["service_tier"], row["total_cost"]) == ("batch", Decimal("0.00525"))
        assert (row["operation"], row["model"]) == ("messages", "claude-sonnet-4-6")
    assert json.loads(sdk["tags"]) == {"batch_custom_id": "a-1"}
    assert (errored["status"], errored["error_type"]) == ("error", "invalid_request_error")
    assert (expired["status"], expired["error_type"]) == ("error", "batch.expired")
    assert errored["total_cost"] is None and expired["total_cost"] is None


def test_batch_lines_are_read_as_text_bytes_or_dicts() -> None:
    line = {"custom_id": "x", "response": {"status_code": 500, "body": {"error": None}}}
    result = read_batch_result(line)
    assert (result.error_type, result.operation) == ("batch.http_500", "batch")


# --------------------------------------------------------------------------- wrapped calls


async def test_wrapped_flex_call_and_web_searches_land_in_their_columns(
    db: ml.SqliteAdapter,
) -> None:
    provider = FakeProvider(
        service_tier="flex",
        web_search_calls=3,
        responses_usage={"input_tokens": 10_000, "output_tokens": 2000},
    )
    llm = ml.LoggingLLM(fake_openai_client(provider), db, None, close_stores=False)
    response = await llm.responses.create(model="o3", input="find it")
    info = ml.call_info(response)
    await llm.close()
    [row] = await rows(db, [info.request_id])
    # o3 flex (OpenAI pricing, Flex: $1.00 / $4.00 per 1M; web search $10 per 1,000 calls):
    # 10,000 * 1 + 2,000 * 4 = 18,000 / 1e6 = 0.018; 3 searches = 0.03; total 0.048
    assert (row["service_tier"], row["web_search_calls"]) == ("flex", 3)
    assert row["server_tool_cost"] == Decimal("0.03")
    assert row["total_cost"] == info.total_cost == Decimal("0.048")
    assert (info.service_tier, info.web_search_calls, info.server_tool_cost) == (
        "flex",
        3,
        Decimal("0.03"),
    )


async def test_wrapped_anthropic_priority_call_is_flagged(db: ml.SqliteAdapter) -> None:
    provider = FakeProvider(
        anthropic_usage={"input_tokens": 1000, "output_tokens": 100, "service_tier": "priority"}
    )
    llm = ml.LoggingLLM(fake_anthropic_client(provider), db, None, close_stores=False)
    message = await llm.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=[])
    await llm.close()
    [row] = await rows(db, [ml.call_info(message).request_id])
    assert (row["service_tier"], row["usage_flags"]) == (None, "service_tier_unpriced")
    assert row["total_cost"] == Decimal("0.0015")  # standard: 1000 * 1 + 100 * 5 per 1M


def test_a_sync_client_logs_batch_results_and_tiers(tmp_path: Path) -> None:
    """openai.OpenAI wrapped with no event loop: a flex call through the sync wrapper and a
    batch output line, each priced at its tier."""
    from majordomo_log.testing import fake_sync_openai_client

    provider = FakeProvider(
        service_tier="flex", openai_usage={"prompt_tokens": 1000, "completion_tokens": 100}
    )
    client = fake_sync_openai_client(provider)
    body = client.chat.completions.create(model="gpt-5-mini", messages=[]).model_dump()
    body["created"] = CREATED
    line = {"custom_id": "s-1", "response": {"status_code": 200, "body": body}}
    db_path = tmp_path / "log.db"
    with ml.LoggingLLM(client, f"sqlite:///{db_path}", None) as llm:
        info = ml.call_info(llm.chat.completions.create(model="gpt-5-mini", messages=[]))
        [batch_id] = llm.log_batch_results([line])
    import sqlite3

    with sqlite3.connect(db_path) as conn:
        got = dict(
            conn.execute("SELECT request_id, service_tier || ' ' || total_cost FROM llm_requests")
        )
    # gpt-5-mini flex: 1000 * 0.125 + 100 * 1.00 = 225 / 1e6; batch: the same rates
    assert got == {info.request_id: "flex 0.000225", batch_id: "batch 0.000225"}
