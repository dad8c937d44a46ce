"""Regression tests for the review findings: each one failed before its fix (561be4d)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any
from unittest import mock

import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletion

import majordomo_log as ml
from majordomo_log import cli
from majordomo_log.capture.ids import uuid7
from majordomo_log.schema import COLUMNS
from majordomo_log.testing import (
    AZURE_API_VERSION,
    AZURE_ENDPOINT,
    FakeProvider,
    fake_anthropic_client,
    fake_openai_client,
)

MESSAGES: Any = [{"role": "user", "content": "hi"}]


def run_script(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- 1. forgotten close() and close(timeout) account for every record --------------------

FORGOTTEN_CLOSE_SCRIPT = """
    import asyncio, sys
    import majordomo_log as ml
    from majordomo_log.testing import FakeProvider, fake_openai_client

    async def main():
        db = await ml.SqliteAdapter.create(sys.argv[1])
        storage = await ml.FileStorageAdapter.create(sys.argv[2])
        llm = ml.LoggingLLM(fake_openai_client(FakeProvider()), db, storage)
        msgs = [{"role": "user", "content": "hi"}]

        async def one(i):
            if i % 3 == 0:
                stream = await llm.chat.completions.create(
                    model="gpt-4o", messages=msgs, stream=True
                )
                async for _ in stream:
                    pass
            else:
                await llm.chat.completions.create(model="gpt-4o", messages=msgs)

        await asyncio.gather(*(one(i) for i in range(3000)))
        # returns without flush() or close(): asyncio.run cancels the writer mid-batch

    asyncio.run(main())
"""


def test_forgotten_close_after_3000_mixed_calls_writes_every_row(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    done = run_script(FORGOTTEN_CLOSE_SCRIPT, str(db), str(tmp_path / "bodies"))
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(db) as conn:
        rows, distinct = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT request_id) FROM llm_requests"
        ).fetchone()
    assert (rows, distinct) == (3000, 3000)


class _Completions:
    def __init__(self) -> None:
        self.reply = ChatCompletion.model_validate(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1,
                "model": "gpt-4o-2024-08-06",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "hi"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
            }
        )

    async def create(self, **kwargs: Any) -> ChatCompletion:
        return self.reply.model_copy()


class _Chat:
    def __init__(self) -> None:
        self.completions = _Completions()


class _InstantClient:
    """A client with no HTTP at all, so thousands of calls queue in well under a second."""

    api_key = "sk-instant"

    def __init__(self) -> None:
        self.chat = _Chat()


async def test_close_timeout_accounts_for_every_queued_record(
    stores: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_write = stores.db.write_batch

    async def slow_write(rows: Any, outcomes: Any) -> None:
        await asyncio.sleep(2)
        await real_write(rows, outcomes)

    monkeypatch.setattr(stores.db, "write_batch", slow_write)
    llm = ml.LoggingLLM(
        _InstantClient(), stores.db, stores.storage, batch_size=100_000, flush_interval=100
    )
    for _ in range(5000):
        await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    with caplog.at_level(logging.ERROR, logger="majordomo_log"):
        stats = await llm.close(timeout=0.05)

    # Nothing is lost: what close() had no time to write is in the spool.
    assert stats.written + stats.spilled == 5000
    assert stats.spilled > 0
    assert (stats.pending, stats.dropped) == (0, 0)
    assert stats.spool_files >= 1


async def test_close_timeout_without_a_spool_counts_what_it_drops(
    stores: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_write = stores.db.write_batch

    async def slow_write(rows: Any, outcomes: Any) -> None:
        await asyncio.sleep(2)
        await real_write(rows, outcomes)

    monkeypatch.setattr(stores.db, "write_batch", slow_write)
    llm = ml.LoggingLLM(
        _InstantClient(),
        stores.db,
        stores.storage,
        batch_size=100_000,
        flush_interval=100,
        spool=False,
    )
    for _ in range(5000):
        await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    with caplog.at_level(logging.ERROR, logger="majordomo_log"):
        stats = await llm.close(timeout=0.05)

    assert stats.written + stats.dropped == 5000
    assert stats.pending == 0
    assert stats.dropped > 0
    assert set(stats.dropped_by_reason) <= {"exit", "closed"}
    assert any(
        r.name == "majordomo_log" and r.levelno == logging.ERROR and "dropped" in r.getMessage()
        for r in caplog.records
    )


# -- 2. a cancelled SQLite write leaves the adapter usable --------------------------------


def _row() -> tuple[Any, ...]:
    now = dt.datetime.now(dt.timezone.utc)
    values = {
        "request_id": uuid7(),
        "started_at": now,
        "ended_at": now,
        "latency_ms": 1.0,
        "provider": "p",
        "operation": "o",
        "stream": False,
        "status": "ok",
        "currency": "USD",
        "cost_status": "missing_usage",
        "tags": "{}",
    }
    return tuple(values.get(column) for column in COLUMNS)


async def test_cancelled_write_batch_leaves_sqlite_adapter_usable(tmp_path: Path) -> None:
    db = await ml.SqliteAdapter.create(tmp_path / "log.db")
    try:
        big = [_row() for _ in range(50_000)]
        task = asyncio.create_task(db.write_batch(big, []))
        await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        await db.write_batch([_row()], [])  # raised "cannot start a transaction within ..."

        assert await db.fetch("SELECT COUNT(*) AS n FROM llm_requests") == [{"n": 1}]
    finally:
        await db.close()


# -- 3. concurrent migrations of one new file ---------------------------------------------

CREATE_SCRIPT = """
    import asyncio, sys
    import majordomo_log as ml

    async def main():
        db = await ml.SqliteAdapter.create(sys.argv[1])
        await db.close()

    asyncio.run(main())
"""


@pytest.mark.parametrize("attempt", range(3))
def test_six_processes_creating_one_new_sqlite_file_all_succeed(
    tmp_path: Path, attempt: int
) -> None:
    path = tmp_path / f"shared-{attempt}.db"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(CREATE_SCRIPT), str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    results = [(p.wait(timeout=120), p.communicate()[1]) for p in procs]
    assert [code for code, _ in results] == [0] * 6, [err for _, err in results]


# -- 4. with_options copies use their own key and need no close ---------------------------


async def test_with_options_child_sends_and_hashes_its_own_key(
    provider: FakeProvider, stores: Any
) -> None:
    llm = ml.LoggingLLM(
        fake_openai_client(provider, api_key="sk-parent"), stores.db, stores.storage
    )
    await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    child = llm.with_options(api_key="sk-child")
    await child.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    assert provider.requests[-1].headers["authorization"] == "Bearer sk-child"
    await llm.close()  # the parent's close covers the child
    assert stores.db.closed
    rows = stores.rows()
    assert len(rows) == 2
    assert rows[0]["api_key_hash"] and rows[1]["api_key_hash"]
    assert rows[0]["api_key_hash"] != rows[1]["api_key_hash"]


# -- 5. methods and attributes are looked up late -----------------------------------------


async def test_patch_applied_after_first_call_is_obeyed(
    provider: FakeProvider, stores: Any
) -> None:
    client = fake_openai_client(provider)
    llm = ml.LoggingLLM(client, stores.db, stores.storage)
    await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    patched = mock.AsyncMock(return_value="PATCHED")
    with mock.patch.object(client.chat.completions, "create", new=patched):
        result = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert result == "PATCHED"
    patched.assert_awaited_once()
    assert len(provider.requests) == 1
    await llm.close()


class _Settings:
    def __init__(self, temp: float) -> None:
        self.temp = temp


class _GenericClient:
    provider = "myprov"

    def __init__(self) -> None:
        self.settings = _Settings(0.1)


async def test_generic_client_attribute_reassigned_after_access_is_seen(stores: Any) -> None:
    client = _GenericClient()
    llm = ml.LoggingLLM(client, stores.db, stores.storage)
    assert llm.settings.temp == 0.1
    client.settings = _Settings(0.9)
    assert llm.settings.temp == 0.9
    await llm.close()


# -- 6. raw and streaming responses ----------------------------------------------------


async def test_raw_response_stream_is_passed_through_unlogged(
    provider: FakeProvider, stores: Any
) -> None:
    llm = ml.LoggingLLM(fake_openai_client(provider), stores.db, stores.storage)
    raw = await llm.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=MESSAGES, stream=True
    )
    chunks = [chunk async for chunk in raw.parse()]
    assert chunks
    assert all(chunk.choices for chunk in chunks)  # no injected usage-only chunk
    await llm.flush()
    assert stores.rows() == []
    await llm.close()


async def test_streaming_response_works_and_writes_no_row(
    provider: FakeProvider, stores: Any
) -> None:
    """A guard, not a regression: this passed before the fixes too."""
    llm = ml.LoggingLLM(fake_openai_client(provider), stores.db, stores.storage)
    async with llm.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=MESSAGES
    ) as response:
        completion = await response.parse()
    assert completion.choices[0].message.content == provider.reply_text
    await llm.flush()
    assert stores.rows() == []
    await llm.close()


async def test_raw_response_logged_and_call_info_on_raw_and_parsed(
    provider: FakeProvider, stores: Any
) -> None:
    llm = ml.LoggingLLM(fake_openai_client(provider), stores.db, stores.storage)
    raw = await llm.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    parsed = raw.parse()
    await llm.flush()
    row = stores.one_row()
    assert row["total_tokens"] == 1300
    assert ml.call_info(raw).request_id == row["request_id"]
    assert ml.call_info(parsed).request_id == row["request_id"]
    await llm.close()


# -- 7. SDK stream helpers -------------------------------------------------------------


async def test_chat_stream_helper_yields_same_events_as_unwrapped_and_is_priced(
    provider: FakeProvider, stores: Any
) -> None:
    async with fake_openai_client(provider).chat.completions.stream(
        model="gpt-4o", messages=MESSAGES
    ) as plain:
        plain_types = [event.type async for event in plain]
    llm = ml.LoggingLLM(fake_openai_client(provider), stores.db, stores.storage)
    async with llm.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
        wrapped_types = [event.type async for event in stream]

    assert wrapped_types == plain_types
    info = ml.call_info(stream)
    await llm.flush()
    row = stores.one_row()
    assert info.request_id == row["request_id"]
    assert row["total_tokens"] == 1300
    assert row["cost_status"] == "computed"
    await llm.close()


async def test_call_info_on_responses_and_anthropic_stream_helpers(
    provider: FakeProvider, stores: Any
) -> None:
    oa = ml.LoggingLLM(fake_openai_client(provider), stores.db, stores.storage)
    async with oa.responses.stream(model="gpt-4o", input="hi") as responses_stream:
        await responses_stream.get_final_response()
    an = ml.LoggingLLM(fake_anthropic_client(provider), stores.db, stores.storage)
    async with an.messages.stream(
        model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES
    ) as messages_stream:
        message = await messages_stream.get_final_message()

    assert ml.call_info(responses_stream).operation == "responses"
    assert ml.call_info(messages_stream).operation == "messages"
    assert ml.call_info(message).request_id == ml.call_info(messages_stream).request_id
    await oa.close()
    await an.close()
    ids = {row["request_id"] for row in stores.rows()}
    assert ids == {ml.call_info(responses_stream).request_id, ml.call_info(message).request_id}


# -- 8. secrets ------------------------------------------------------------------------


async def test_rotated_key_in_error_message_is_redacted_everywhere(
    provider: FakeProvider, stores: Any
) -> None:
    first, second = "sk-SECRETKEY-1234567890", "sk-ROTATED-0987654321"
    client = fake_openai_client(provider, api_key=first)
    llm = ml.LoggingLLM(client, stores.db, stores.storage)
    provider.fail_next(401, message=f"Incorrect API key provided: {first}")
    with pytest.raises(openai.AuthenticationError):
        await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    client.api_key = second  # rotated while the first record is still queued
    provider.fail_next(401, message=f"Incorrect API key provided: {second}")
    with pytest.raises(openai.AuthenticationError):
        await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    for text in (repr(llm._ctx), repr(vars(llm))):
        assert first not in text and second not in text
    await llm.close()

    rows = stores.rows()
    assert len(rows) == 2
    assert all("[REDACTED]" in row["error_message"] for row in rows)
    stored = [p.read_bytes() for p in stores.db_path.parent.glob("log.db*")]
    stored += [unzipped for _, unzipped in stores.raw_body_bytes()]
    assert len(stores.body_files()) == 2
    for blob in stored:
        assert first.encode() not in blob and second.encode() not in blob


# -- 9. Azure AD token auth ------------------------------------------------------------


async def test_azure_ad_token_client_has_no_api_key_hash(
    provider: FakeProvider, stores: Any
) -> None:
    client = openai.AsyncAzureOpenAI(
        azure_ad_token_provider=lambda: "ad-token-xyz",
        azure_endpoint=AZURE_ENDPOINT,
        api_version=AZURE_API_VERSION,
        http_client=httpx2.AsyncClient(transport=provider.transport),
        max_retries=0,
    )
    llm = ml.LoggingLLM(client, stores.db, stores.storage)
    await llm.chat.completions.create(model="my-deploy", messages=MESSAGES)
    await llm.close()
    row = stores.one_row()
    assert row["provider"] == "azure"
    assert row["status"] == "ok"
    assert row["api_key_hash"] is None


# -- 10. chat.completions.parse ----------------------------------------------------------


async def test_chat_completions_parse_is_logged_as_chat_completions(
    provider: FakeProvider, stores: Any
) -> None:
    llm = ml.LoggingLLM(fake_openai_client(provider), stores.db, stores.storage)
    provider.fail_next(500)
    with pytest.raises(openai.InternalServerError):
        await llm.chat.completions.parse(model="gpt-4o", messages=MESSAGES)
    await llm.chat.completions.parse(model="gpt-4o", messages=MESSAGES)
    await llm.close()
    rows = stores.rows()
    assert [(r["operation"], r["status"]) for r in rows] == [
        ("chat.completions", "error"),
        ("chat.completions", "ok"),
    ]
    assert rows[1]["cost_status"] == "computed"


# -- 11. CLI counts must be positive ---------------------------------------------------


@pytest.mark.parametrize(("command", "option"), [("demo", "--calls"), ("tail", "-n")])
def test_cli_rejects_zero_count_with_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, option: str
) -> None:
    where = {
        "demo": ["--out", str(tmp_path / "demo")],
        "tail": ["--db", str(tmp_path / "log.db"), "--storage", str(tmp_path / "bodies")],
    }[command]
    with pytest.raises(SystemExit) as exited:
        cli.main([command, option, "0", *where])
    assert exited.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1
    assert option in errors[0] and "'0'" in errors[0]


# -- 12. closed stores are refused -----------------------------------------------------


async def test_wrapper_on_closed_store_raises_store_error_naming_it(
    provider: FakeProvider, stores: Any
) -> None:
    await stores.db.close()
    with pytest.raises(ml.StoreError, match=re.escape(str(stores.db_path))):
        ml.LoggingLLM(fake_openai_client(provider), stores.db, stores.storage)


# -- 14. abandoned streams ---------------------------------------------------------------


async def test_abandoned_chat_stream_is_incomplete_with_cost_status_incomplete(
    provider: FakeProvider, stores: Any
) -> None:
    llm = ml.LoggingLLM(fake_openai_client(provider), stores.db, stores.storage)
    stream = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    async for _ in stream:
        break  # long before the usage chunk
    await stream.close()
    await llm.close()
    row = stores.one_row()
    assert row["status"] == "incomplete"
    assert row["cost_status"] == "incomplete"
