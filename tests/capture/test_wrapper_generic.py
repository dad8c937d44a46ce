"""LoggingLLM around non-SDK clients, pricing edge cases, store sharing and failures."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import majordomo_log as ml
from majordomo_log._log import reset_warnings
from majordomo_log.delivery.options import RetryOptions
from majordomo_log.testing import FakeProvider, fake_anthropic_client, fake_openai_client

MESSAGES: Any = [{"role": "user", "content": "hi"}]


# -- a majordomo-llm style client ---------------------------------------------------------


@dataclass
class LLMResponse:
    content: str
    model: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int = 0


class Helper:
    """A sub-object defined in the client's own module: a resource to proxy."""

    async def summarize(self, text: str) -> LLMResponse:
        return LLMResponse(text[:5], "gpt-4o-mini", 200, 20)


class GenericLLM:
    provider = "acme"
    name = "generic-client"

    def __init__(self) -> None:
        self.settings = {"temperature": 0.1}
        self.path = Path("/tmp/somewhere")
        self.helper = Helper()
        self.calls = 0

    async def complete(self, prompt: str, *, model: str = "gpt-4o-mini") -> LLMResponse:
        self.calls += 1
        return LLMResponse(f"echo: {prompt}", model, 1000, 500, cached_tokens=0)

    async def complete_raw(self, payload: Any, *, model: str) -> LLMResponse:
        return LLMResponse("ok", model, 1000, 500)

    async def load_config(self) -> dict[str, Any]:
        return {"retries": 3}

    async def failing_lookup(self, key: str) -> str:
        raise KeyError(key)

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def validate(self, text: str) -> None:
        raise ValueError("text must not be empty")

    async def generate(self, prompt: str, model: str) -> dict[str, Any]:
        return {"text": prompt.upper(), "meta": {"in": 1000, "out": 300, "cached": 400}}

    async def generate_additive(self, prompt: str, model: str) -> dict[str, Any]:
        return {"text": prompt, "counts": {"fresh": 100, "read": 1000, "out": 50}}


def generic_llm(stores: Any, **kwargs: Any) -> tuple[GenericLLM, ml.LoggingLLM[GenericLLM]]:
    client = GenericLLM()
    return client, ml.LoggingLLM(client, stores.db, stores.storage, **kwargs)


async def test_generic_usage_result_is_logged(stores: Any) -> None:
    _client, llm = generic_llm(stores)
    resp = await llm.complete("hello", model="gpt-4o-mini")
    assert isinstance(resp, LLMResponse)
    assert resp.content == "echo: hello"
    info = ml.call_info(resp)
    await llm.flush()
    row = stores.one_row()
    assert row["request_id"] == info.request_id
    assert row["provider"] == "acme"
    assert row["operation"] == "complete"
    assert row["model"] == "gpt-4o-mini"
    assert row["served_model"] == "gpt-4o-mini"
    assert (row["status"], row["stream"]) == ("ok", 0)
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (1000, 500, 1500)
    assert row["cache_read_tokens"] == 0
    assert row["cost_status"] == "computed"
    # 1000 * 0.15 + 500 * 0.60 per 1M tokens
    assert Decimal(str(row["total_cost"])) == Decimal("0.00045") == info.total_cost
    body = await stores.body(row)
    assert body["request"] == {"args": ["hello"], "kwargs": {"model": "gpt-4o-mini"}}
    assert body["response"]["content"] == "echo: hello"
    await llm.close()


async def test_generic_nested_resource_is_logged(stores: Any) -> None:
    _, llm = generic_llm(stores)
    resp = await llm.helper.summarize("long text here")
    assert resp.content == "long "
    await llm.flush()
    row = stores.one_row()
    assert row["operation"] == "summarize"
    assert row["served_model"] == "gpt-4o-mini"
    assert (row["input_tokens"], row["output_tokens"]) == (200, 20)
    await llm.close()


async def test_generic_plain_value_passes_through_unlogged(stores: Any) -> None:
    _client, llm = generic_llm(stores)
    config = await llm.load_config()
    assert config == {"retries": 3}
    with pytest.raises(LookupError):
        ml.call_info(config)
    stats = await llm.flush()
    assert stats.written == 0 and stats.pending == 0
    assert stores.rows() == []
    await llm.close()


async def test_sync_methods_and_attributes_pass_through(stores: Any) -> None:
    client, llm = generic_llm(stores)
    assert llm.count_tokens("a b c") == 3
    assert llm.name == "generic-client"
    assert llm.provider == "acme"
    assert llm.settings is client.settings
    assert llm.path is client.path
    assert llm.client is client
    llm.settings["temperature"] = 0.5  # it is the same object
    assert client.settings["temperature"] == 0.5
    with pytest.raises(AttributeError):
        _ = llm.no_such_attribute
    await llm.flush()
    assert stores.rows() == []
    await llm.close()


async def test_sync_method_exception_passes_through_unlogged(stores: Any) -> None:
    """A sync method is never timed or logged when it returns; raising must not turn
    it into an LLM error row either."""
    _, llm = generic_llm(stores)
    with pytest.raises(ValueError, match="must not be empty"):
        llm.validate("")
    await llm.flush()
    assert stores.rows() == []
    await llm.close()


async def test_failure_of_a_method_not_known_as_an_llm_call_is_not_logged(stores: Any) -> None:
    """A helper method that fails (and never returned usage) is not an LLM call:
    logging it would inflate call counts and error rates."""
    _, llm = generic_llm(stores)
    with pytest.raises(KeyError) as excinfo:
        await llm.failing_lookup("missing")
    assert excinfo.value.args == ("missing",)
    await llm.flush()
    assert stores.rows() == []
    await llm.close()


async def test_failure_of_a_declared_llm_method_is_an_error_row(stores: Any) -> None:
    _, llm = generic_llm(stores, methods=("failing_lookup",))
    with pytest.raises(KeyError) as excinfo:
        await llm.failing_lookup("missing")
    assert excinfo.value.args == ("missing",)
    await llm.flush()
    row = stores.one_row()
    assert row["operation"] == "failing_lookup"
    assert row["status"] == "error"
    assert row["error_type"] == "KeyError"
    assert row["error_message"] == "'missing'"
    assert row["cost_status"] == "error"
    assert row["total_cost"] is None
    await llm.close()


# -- usage_extractor ---------------------------------------------------------------------


def meta_extractor(result: Any) -> ml.Usage | None:
    if isinstance(result, dict) and "meta" in result:
        meta = result["meta"]
        return ml.Usage.inclusive(meta["in"], meta["out"], cached_tokens=meta["cached"])
    if isinstance(result, dict) and "counts" in result:
        c = result["counts"]
        return ml.Usage(input=c["fresh"], cache_read=c["read"], output=c["out"])
    return None


async def test_custom_usage_extractor(stores: Any) -> None:
    _, llm = generic_llm(stores, usage_extractor=meta_extractor)
    resp = await llm.generate("hello", model="gpt-4o")
    assert resp["text"] == "HELLO"
    additive = await llm.generate_additive("hello", model="claude-haiku-4-5")
    config = await llm.load_config()  # the extractor returns None: still not logged
    assert config == {"retries": 3}
    await llm.flush()
    rows = {r["request_id"]: r for r in stores.rows()}
    assert len(rows) == 2

    row = rows[ml.call_info(resp).request_id]
    assert row["operation"] == "generate"
    assert row["model"] == "gpt-4o"
    assert (row["input_tokens"], row["cache_read_tokens"], row["output_tokens"]) == (600, 400, 300)
    assert row["total_tokens"] == 1300
    assert row["cost_status"] == "computed"
    # 600*2.50 + 400*1.25 + 300*10 per 1M tokens
    assert Decimal(str(row["total_cost"])) == Decimal("0.005")

    row = rows[ml.call_info(additive).request_id]
    assert (row["input_tokens"], row["cache_read_tokens"], row["output_tokens"]) == (100, 1000, 50)
    assert row["total_tokens"] == 1150
    # 100*1.00 + 1000*0.10 + 50*5.00 per 1M tokens
    assert Decimal(str(row["total_cost"])) == Decimal("0.00045")
    await llm.close()


async def test_usage_extractor_that_raises_does_not_break_the_call(stores: Any) -> None:
    def broken(result: Any) -> ml.Usage | None:
        raise RuntimeError("extractor bug")

    _, llm = generic_llm(stores, usage_extractor=broken)
    resp = await llm.complete("x")  # falls back to the built-in detection
    assert await llm.load_config() == {"retries": 3}
    await llm.flush()
    row = stores.one_row()
    assert row["request_id"] == ml.call_info(resp).request_id
    assert row["input_tokens"] == 1000
    await llm.close()


# -- pricing edge cases --------------------------------------------------------------------


async def test_unknown_model_warns_once(stores: Any, caplog: pytest.LogCaptureFixture) -> None:
    reset_warnings()
    caplog.set_level(logging.WARNING, logger="majordomo_log")
    llm = ml.LoggingLLM(fake_openai_client(FakeProvider()), stores.db, stores.storage)
    r1 = await llm.chat.completions.create(model="acme-private-llm", messages=MESSAGES)
    r2 = await llm.chat.completions.create(model="acme-private-llm", messages=MESSAGES)
    await llm.flush()
    rows = stores.rows()
    assert len(rows) == 2
    for row in rows:
        assert row["cost_status"] == "unknown_model"
        assert row["total_cost"] is None
        assert row["price_version"] is None
        assert row["input_tokens"] == 12  # tokens are still recorded
    assert ml.call_info(r1).cost_status == ml.call_info(r2).cost_status == "unknown_model"
    warnings = [
        r
        for r in caplog.records
        if r.name == "majordomo_log"
        and r.levelno == logging.WARNING
        and "acme-private-llm" in r.getMessage()
    ]
    assert len(warnings) == 1
    await llm.close()


async def test_missing_usage_from_known_sdk_paths(stores: Any) -> None:
    provider = FakeProvider(omit_usage=True)
    llm = ml.LoggingLLM(fake_openai_client(provider), stores.db, stores.storage)
    a_llm = ml.LoggingLLM(fake_anthropic_client(provider), stores.db, stores.storage)
    await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    await llm.responses.create(model="gpt-4o", input="hi")
    await llm.embeddings.create(model="text-embedding-3-small", input="hi")
    stream = await a_llm.messages.create(
        model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES, stream=True
    )
    async for _ in stream:
        pass
    await llm.flush()
    rows = stores.rows()
    assert sorted(r["operation"] for r in rows) == [
        "chat.completions",
        "embeddings",
        "messages",
        "responses",
    ]
    for row in rows:
        assert row["status"] == "ok"
        assert row["cost_status"] == "missing_usage"
        assert row["total_cost"] is None
        assert row["total_tokens"] is None
    await llm.close()
    await a_llm.close()


# -- sharing and closing -------------------------------------------------------------------


async def test_wrappers_share_one_writer_and_close_in_order(stores: Any) -> None:
    provider = FakeProvider()
    llm1 = ml.LoggingLLM(fake_openai_client(provider), stores.db, stores.storage)
    llm2 = ml.LoggingLLM(fake_anthropic_client(provider), stores.db, stores.storage)
    assert llm1._writer is llm2._writer

    await llm1.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    await llm1.close()
    await llm1.close()  # idempotent: must not detach a second time
    assert not stores.db._closed

    await llm2.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
    await llm2.flush()
    assert sorted(r["provider"] for r in stores.rows()) == ["anthropic", "openai"]
    assert stores.db._closed is False
    assert await stores.db.fetch("SELECT COUNT(*) AS n FROM llm_requests") == [{"n": 2}]

    stats = await llm2.close()
    assert stats.written == 2 and stats.pending == 0
    assert stores.db._closed is True
    assert "closed" in repr(stores.db)
    with pytest.raises(Exception):  # noqa: B017 - any error: the connection is gone
        await stores.db.fetch("SELECT 1")
    await llm2.close()  # idempotent after the stores are closed too
    assert len(stores.rows()) == 2  # a fresh sqlite3 connection still reads the file


async def test_close_stores_false_keeps_stores_open(stores: Any) -> None:
    llm = ml.LoggingLLM(
        fake_openai_client(FakeProvider()), stores.db, stores.storage, close_stores=False
    )
    resp = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    await llm.close()
    assert stores.db._closed is False
    rows = await stores.db.fetch("SELECT request_id, body_ref FROM llm_requests")
    assert [r["request_id"] for r in rows] == [ml.call_info(resp).request_id]
    body = await stores.storage.get(rows[0]["body_ref"])
    assert body["response"]["id"] == resp.id

    # A new wrapper on the same (still open) stores works and gets a fresh writer.
    llm2 = ml.LoggingLLM(fake_openai_client(FakeProvider()), stores.db, stores.storage)
    await llm2.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    await llm2.close()
    assert len(stores.rows()) == 2


async def test_async_context_manager_closes(stores: Any) -> None:
    async with ml.LoggingLLM(fake_openai_client(FakeProvider()), stores.db, stores.storage) as llm:
        await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert stores.db._closed is True
    assert len(stores.rows()) == 1


# -- the logging path never breaks the caller -------------------------------------------------


class BrokenStorage:
    url = "broken://bodies"

    def __init__(self) -> None:
        self.calls = 0

    async def put_many(self, bodies: Any) -> list[str | None]:
        self.calls += 1
        raise ml.StoreError("access denied")  # refused: the store answered

    async def get(self, ref: str) -> dict[str, Any]:
        raise ml.BodyNotFound(ref)

    async def close(self) -> None:
        return None


class FailingDB:
    """Delegates to a real SqliteAdapter, but refuses the first `failures` writes."""

    dialect = "sqlite"

    def __init__(self, inner: ml.SqliteAdapter, failures: int) -> None:
        self.inner = inner
        self.url = "failing+" + inner.url
        self.failures = failures
        self.attempts = 0

    async def migrate(self) -> list[str]:
        return await self.inner.migrate()

    async def write_batch(self, rows: Any, outcomes: Any) -> None:
        self.attempts += 1
        if self.failures > 0:
            self.failures -= 1
            raise ml.StoreUnavailable("database is down")  # transient: retried
        await self.inner.write_batch(rows, outcomes)

    async def fetch(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        return await self.inner.fetch(sql, params)

    async def close(self) -> None:
        await self.inner.close()


async def test_body_store_failure_keeps_the_row(stores: Any) -> None:
    storage = BrokenStorage()
    assert isinstance(storage, ml.BodyStore)
    llm = ml.LoggingLLM(fake_openai_client(FakeProvider()), stores.db, storage)
    resp = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert resp.choices[0].message.content
    stats = await llm.flush()
    assert storage.calls == 1  # refused, not unavailable: not retried
    assert stats.bodies_failed == 1
    assert stats.bodies_written == 0
    assert stats.written == 1
    row = stores.one_row()
    assert row["request_id"] == ml.call_info(resp).request_id
    assert row["body_ref"] is None
    assert row["cost_status"] == "computed"
    await llm.close()


async def test_db_failure_does_not_break_the_caller(
    stores: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(RetryOptions, "delay", lambda self, attempt: 0.0)
    db = FailingDB(stores.db, failures=100)
    assert isinstance(db, ml.MetadataStore)
    llm = ml.LoggingLLM(
        fake_openai_client(FakeProvider()), db, stores.storage, max_retries=3, spool=tmp_path
    )
    resp = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert resp.choices[0].message.content  # the call itself returned normally
    stats = await llm.flush(timeout=10)
    assert (stats.written, stats.failed, stats.spilled, stats.dropped) == (0, 0, 1, 0)
    assert stats.pending == 0
    assert stats.store_down
    assert db.attempts == 4  # first try + 3 retries
    assert stores.rows() == []
    # While the store is down, the next batch goes straight to the spool: no retries.
    await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    stats = await llm.flush(timeout=10)
    assert (stats.spilled, db.attempts) == (2, 4)
    # A recovered database gets the spooled rows, and the next rows directly.
    db.failures = 0
    assert await llm.replay_spool() == 2
    assert not llm.stats().store_down
    await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    stats = await llm.flush(timeout=10)
    assert (stats.written, stats.replayed, stats.spool_files) == (1, 2, 0)
    assert len(stores.rows()) == 3
    await llm.close()


async def test_db_transient_failure_is_retried(
    stores: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(RetryOptions, "delay", lambda self, attempt: 0.0)
    db = FailingDB(stores.db, failures=2)
    llm = ml.LoggingLLM(fake_openai_client(FakeProvider()), db, stores.storage)
    await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    stats = await llm.flush(timeout=10)
    assert (stats.written, stats.failed) == (1, 0)
    assert db.attempts == 3
    assert len(stores.rows()) == 1
    await llm.close()


async def test_queue_over_budget_drops_without_breaking_the_caller(stores: Any) -> None:
    llm = ml.LoggingLLM(
        fake_openai_client(FakeProvider()),
        stores.db,
        stores.storage,
        max_queue_bytes=1024,
        spool=False,
    )
    big = [{"role": "user", "content": "x" * 2000}]  # a request bigger than the whole budget
    resp = await llm.chat.completions.create(model="gpt-4o", messages=big)
    assert resp.choices[0].message.content
    stats = await llm.flush()
    assert stats.dropped == 1
    assert stats.dropped_by_reason == {"queue_full": 1}
    assert stats.written == 0
    assert stores.rows() == []
    await llm.close()


async def test_calls_after_close_still_work(stores: Any) -> None:
    llm = ml.LoggingLLM(
        fake_openai_client(FakeProvider()), stores.db, stores.storage, close_stores=False
    )
    await llm.close()
    resp = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert resp.choices[0].message.content
    # The writer is closed: the record is held for the spool (250 at a time, at exit, or
    # when a new writer takes over the stores), for the next writer to replay.
    assert (llm.stats().pending, llm.stats().spilled, llm.stats().dropped) == (1, 0, 0)
    assert stores.rows() == []
    again = ml.LoggingLLM(fake_openai_client(FakeProvider()), stores.db, stores.storage)
    assert (llm.stats().spilled, llm.stats().dropped) == (1, 0)
    assert await again.replay_spool() == 1
    assert [r["request_id"] for r in stores.rows()] == [ml.call_info(resp).request_id]
    await again.close()


async def test_calls_after_close_without_a_spool_are_counted_dropped(stores: Any) -> None:
    llm = ml.LoggingLLM(
        fake_openai_client(FakeProvider()),
        stores.db,
        stores.storage,
        close_stores=False,
        spool=False,
    )
    await llm.close()
    await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert llm.stats().dropped_by_reason == {"closed": 1}
    assert stores.rows() == []


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


async def test_unserializable_request_still_logged(stores: Any) -> None:
    _, llm = generic_llm(stores)
    circular: list[Any] = []
    circular.append(circular)
    resp = await llm.complete_raw(BadRepr(), model="gpt-4o-mini")
    resp2 = await llm.complete_raw(circular, model="gpt-4o-mini")
    await llm.flush()
    rows = stores.rows()
    assert len(rows) == 2
    assert {r["request_id"] for r in rows} == {
        ml.call_info(resp).request_id,
        ml.call_info(resp2).request_id,
    }
    for row in rows:
        assert row["status"] == "ok"
        assert row["input_tokens"] == 1000
        assert row["body_ref"] is not None
        body = await stores.body(row)
        assert json.dumps(body["request"])  # a readable trace, not a lost record
    await llm.close()
