"""``retry_count``: the retries the openai and anthropic SDKs made inside one call, for
real: the fake provider answers 429 or 500 first, the SDK retries, and the row's count
is the number of retries, the same the SDK wrote in its last request's
``x-stainless-retry-count`` header (and in ``retries_taken`` of a raw response)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import openai
import pytest

import majordomo_log as ml
from majordomo_log.testing import FakeProvider, fake_anthropic_client, fake_openai_client


@pytest.fixture
async def stores(tmp_path: Path) -> Any:
    db = await ml.SqliteAdapter.create(tmp_path / "log.db")
    storage = await ml.FileStorageAdapter.create(tmp_path / "bodies")
    yield db, storage
    await db.close()
    await storage.close()


async def counts(llm: Any, db: ml.SqliteAdapter) -> dict[str, Any]:
    await llm.close()
    rows = await db.fetch("SELECT request_id, retry_count FROM llm_requests")
    return {r["request_id"]: r["retry_count"] for r in rows}


def sent_count(provider: FakeProvider) -> int:
    return int(provider.requests[-1].headers["x-stainless-retry-count"])


@pytest.mark.parametrize(("status", "failures"), [(429, 0), (429, 1), (500, 2), (429, 3)])
async def test_openai_chat_counts_the_sdks_retries(stores: Any, status: int, failures: int) -> None:
    db, storage = stores
    provider = FakeProvider()
    llm = ml.LoggingLLM(
        fake_openai_client(provider, max_retries=3), db, storage, close_stores=False
    )
    provider.fail_next(status, times=failures)
    response = await llm.chat.completions.create(model="gpt-4o", messages=[])
    assert len(provider.requests) == failures + 1 and sent_count(provider) == failures
    assert (await counts(llm, db))[ml.call_info(response).request_id] == failures


async def test_a_call_that_runs_out_of_retries_logs_them_on_its_error_row(stores: Any) -> None:
    db, storage = stores
    provider = FakeProvider()
    llm = ml.LoggingLLM(
        fake_openai_client(provider, max_retries=2), db, storage, close_stores=False
    )
    provider.fail_next(429, times=3)
    with pytest.raises(openai.RateLimitError):
        await llm.chat.completions.create(model="gpt-4o", messages=[])
    await llm.close()
    rows = await db.fetch("SELECT status, retry_count FROM llm_requests")
    assert rows == [{"status": "error", "retry_count": 2}] and sent_count(provider) == 2


async def test_streams_raw_responses_and_copies_are_counted(stores: Any) -> None:
    db, storage = stores
    provider = FakeProvider()
    llm = ml.LoggingLLM(
        fake_openai_client(provider, max_retries=4), db, storage, close_stores=False
    )
    ids = {}
    provider.fail_next(429, times=1)
    stream = await llm.chat.completions.create(model="gpt-4o", messages=[], stream=True)
    _ = [chunk async for chunk in stream]
    ids["chat stream"] = (ml.call_info(stream).request_id, 1)
    provider.fail_next(500, times=2)
    raw = await llm.chat.completions.with_raw_response.create(model="gpt-4o", messages=[])
    assert raw.retries_taken == 2
    ids["raw"] = (ml.call_info(raw).request_id, 2)
    provider.fail_next(429, times=3)
    response = await llm.responses.create(model="gpt-4o", input="hi")
    ids["responses"] = (ml.call_info(response).request_id, 3)
    copy = llm.with_options(timeout=30)
    provider.fail_next(429, times=1)
    embedded = await copy.embeddings.create(model="text-embedding-3-small", input="x")
    ids["with_options copy"] = (ml.call_info(embedded).request_id, 1)
    got = await counts(llm, db)
    assert {name: got[rid] for name, (rid, _) in ids.items()} == {
        name: want for name, (_, want) in ids.items()
    }


async def test_anthropic_plain_stream_and_stream_helper(stores: Any) -> None:
    db, storage = stores
    provider = FakeProvider()
    client = fake_anthropic_client(provider, max_retries=3)
    llm = ml.LoggingLLM(client, db, storage, close_stores=False)
    ids = {}
    provider.fail_next(429, times=2)
    message = await llm.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=[])
    ids["plain"] = (ml.call_info(message).request_id, 2)
    provider.fail_next(500, times=1)
    events = await llm.messages.create(
        model="claude-haiku-4-5", max_tokens=5, messages=[], stream=True
    )
    _ = [event async for event in events]
    ids["stream=True"] = (ml.call_info(events).request_id, 1)
    provider.fail_next(429, times=3)
    async with llm.messages.stream(model="claude-haiku-4-5", max_tokens=5, messages=[]) as s:
        final = await s.get_final_message()
    ids["messages.stream()"] = (ml.call_info(final).request_id, 3)
    assert sent_count(provider) == 3
    got = await counts(llm, db)
    assert {name: got[rid] for name, (rid, _) in ids.items()} == {
        name: want for name, (_, want) in ids.items()
    }


async def test_concurrent_calls_never_count_each_others_attempts(stores: Any) -> None:
    """Failures are served to whichever request comes next: which call retries is up to
    the scheduler, but each call's count is its own attempts (their sum, every failure)."""
    db, storage = stores
    provider = FakeProvider(first_chunk_delay=0.002)
    llm = ml.LoggingLLM(
        fake_openai_client(provider, max_retries=5), db, storage, close_stores=False
    )
    provider.fail_next(429, times=7)

    async def one(i: int) -> str:
        messages = [{"role": "user", "content": f"call {i}"}]
        response = await llm.chat.completions.create(model="gpt-4o", messages=messages)
        return ml.call_info(response).request_id

    ids = await asyncio.gather(*(one(i) for i in range(6)))
    got = await counts(llm, db)
    assert sum(got[rid] for rid in ids) == 7 and len(provider.requests) == 6 + 7
    # The provider's view of each call's retries: its requests told apart by their body.
    sent: dict[str, int] = {}
    for request in provider.requests:
        call = request.body["messages"][0]["content"]
        sent[call] = max(sent.get(call, 0), int(request.headers["x-stainless-retry-count"]))
    assert [got[rid] for rid in ids] == [sent[f"call {i}"] for i in range(6)]


async def test_a_client_the_hook_does_not_know_has_no_count(stores: Any) -> None:
    db, storage = stores

    class Duck:
        async def ask(self) -> Any:
            return type("R", (), {"input_tokens": 3, "output_tokens": 2})()

    llm = ml.LoggingLLM(Duck(), db, storage, close_stores=False)
    await llm.ask()
    assert list((await counts(llm, db)).values()) == [None]


async def test_the_hook_is_installed_once_per_http_client(stores: Any) -> None:
    db, storage = stores
    provider = FakeProvider()
    client = fake_openai_client(provider, max_retries=2)
    first = ml.LoggingLLM(client, db, storage, close_stores=False)
    second = ml.LoggingLLM(client, db, storage, close_stores=False)
    assert len(client._client.event_hooks["request"]) == 1
    provider.fail_next(429, times=1)
    response = await second.chat.completions.create(model="gpt-4o", messages=[])
    plain = await client.chat.completions.create(model="gpt-4o", messages=[])  # not wrapped
    assert plain.choices and len(provider.requests) == 3
    await first.close()
    got = await counts(second, db)
    assert got == {ml.call_info(response).request_id: 1}  # counted once, the bare call not logged


async def test_the_count_crosses_to_a_writer_process(stores: Any) -> None:
    """Counted on the caller's path, in the record's slots: a process writer gets it."""
    db, storage = stores
    provider = FakeProvider()
    llm = ml.LoggingLLM(
        fake_openai_client(provider, max_retries=3),
        db,
        storage,
        close_stores=False,
        writer="process",
        process=ml.ProcessOptions(start_method="fork"),
    )
    provider.fail_next(500, times=2)
    response = await llm.chat.completions.create(model="gpt-4o", messages=[])
    assert (await counts(llm, db))[ml.call_info(response).request_id] == 2


def test_sync_clients_count_their_retries_too(tmp_path: Path) -> None:
    """openai.OpenAI and anthropic.Anthropic retry inside the blocking call: plain calls,
    stream=True, with_raw_response and the stream helper as a `with` block."""
    from majordomo_log.testing import fake_sync_anthropic_client, fake_sync_openai_client

    provider = FakeProvider()
    db = tmp_path / "log.db"
    llm = ml.LoggingLLM(
        fake_sync_openai_client(provider, max_retries=3), f"sqlite:///{db}", tmp_path / "b"
    )
    claude = ml.LoggingLLM(
        fake_sync_anthropic_client(provider, max_retries=3), f"sqlite:///{db}", tmp_path / "b"
    )
    want = {}
    provider.fail_next(429, times=2)
    chat = llm.chat.completions.create(model="gpt-4o", messages=[])
    want[ml.call_info(chat).request_id] = 2
    provider.fail_next(500, times=1)
    stream = llm.chat.completions.create(model="gpt-4o", messages=[], stream=True)
    _ = list(stream)
    want[ml.call_info(stream).request_id] = 1
    provider.fail_next(429, times=3)
    raw = llm.chat.completions.with_raw_response.create(model="gpt-4o", messages=[])
    want[ml.call_info(raw).request_id] = 3
    provider.fail_next(429, times=1)
    with claude.messages.stream(model="claude-haiku-4-5", max_tokens=5, messages=[]) as s:
        final = s.get_final_message()
    want[ml.call_info(final).request_id] = 1
    message = claude.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=[])
    want[ml.call_info(message).request_id] = 0
    llm.close()
    claude.close()
    import sqlite3

    with sqlite3.connect(db) as conn:
        got = dict(conn.execute("SELECT request_id, retry_count FROM llm_requests"))
    conn.close()
    assert got == want
