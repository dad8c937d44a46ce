"""Sync clients, first-class: ``openai.OpenAI`` and ``anthropic.Anthropic`` wrapped and
used with no event loop anywhere in the test (plain calls, ``stream=True``, the stream
helpers as ``with`` blocks, ``with_raw_response``, ``.parse``), stores given as a URL
and a path, from many threads at once, and at exit and across a fork in a real process.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from pydantic import BaseModel

import majordomo_log as ml
from majordomo_log.testing import (
    FakeProvider,
    fake_openai_client,
    fake_sync_anthropic_client,
    fake_sync_openai_client,
)

MESSAGES = [{"role": "user", "content": "hi"}]
REPO = Path(__file__).resolve().parents[2]


def rows(db: Path) -> list[dict[str, Any]]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM llm_requests ORDER BY started_at")]
    finally:
        con.close()


@pytest.fixture
def where(tmp_path: Path) -> tuple[str, str, Path]:
    db = tmp_path / "llm_logs.db"
    return f"sqlite:///{db}", str(tmp_path / "request_logs"), db


def test_a_sync_client_gets_plain_flush_and_close(where: tuple[str, str, Path]) -> None:
    url, bodies, _ = where
    llm = ml.LoggingLLM(fake_sync_openai_client(), url, bodies)
    assert isinstance(llm, ml.LoggingLLM)
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()  # the point: nothing here runs a loop
    stats = llm.flush()
    assert isinstance(stats, ml.WriterStats) and stats.pending == 0
    assert isinstance(llm.close(), ml.WriterStats)
    assert isinstance(llm.close(), ml.WriterStats)  # idempotent


def test_openai_sync_calls_are_logged_and_priced(where: tuple[str, str, Path]) -> None:
    url, bodies, db = where
    provider = FakeProvider(openai_usage={"prompt_tokens": 1000, "completion_tokens": 200})
    with ml.LoggingLLM(fake_sync_openai_client(provider), url, bodies) as llm:
        reply = llm.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert reply.choices[0].message.content == provider.reply_text
        info = ml.call_info(reply)
        streamed = llm.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        text = "".join(chunk.choices[0].delta.content or "" for chunk in streamed)
        assert text == provider.reply_text  # the usage-only chunk stays hidden
        raw = llm.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
        assert raw.parse().usage.prompt_tokens == 1000
        with llm.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as stream:
            final = stream.get_final_completion()
        assert final.choices[0].message.content == provider.reply_text
        llm.embeddings.create(model="text-embedding-3-small", input="x")
        llm.record_outcome(info.request_id, "accepted")
    got = rows(db)
    assert [(r["operation"], r["stream"], r["status"]) for r in got] == [
        ("chat.completions", 0, "ok"),
        ("chat.completions", 1, "ok"),
        ("chat.completions", 0, "ok"),
        ("chat.completions", 1, "ok"),
        ("embeddings", 0, "ok"),
    ]
    # gpt-4o-mini: $0.15 / MTok input, $0.60 / MTok output:
    # 1000 * 0.15e-6 + 200 * 0.60e-6 = 0.00015 + 0.00012 = 0.00027
    for row in got[:4]:
        assert (row["input_tokens"], row["output_tokens"]) == (1000, 200)
        assert Decimal(str(row["total_cost"])) == Decimal("0.00027")
        assert row["provider"] == "openai" and row["api_key_hash"]
    assert got[1]["time_to_first_token_ms"] is not None
    assert got[0]["outcome"] == "accepted" and got[0]["request_id"] == info.request_id
    assert all(r["body_ref"] for r in got)


def test_sync_parse_is_logged(where: tuple[str, str, Path]) -> None:
    url, bodies, db = where

    class Reply(BaseModel):
        text: str

    provider = FakeProvider(reply_text=json.dumps({"text": "ok"}))
    with ml.LoggingLLM(fake_sync_openai_client(provider), url, bodies) as llm:
        parsed = llm.chat.completions.parse(
            model="gpt-4o-mini", messages=MESSAGES, response_format=Reply
        )
        assert parsed.choices[0].message.parsed == Reply(text="ok")
    assert [r["operation"] for r in rows(db)] == ["chat.completions"]


def test_anthropic_sync_calls_and_the_stream_helper(where: tuple[str, str, Path]) -> None:
    url, bodies, db = where
    provider = FakeProvider(
        anthropic_usage={"input_tokens": 300, "output_tokens": 40, "cache_read_input_tokens": 1000}
    )
    with ml.LoggingLLM(fake_sync_anthropic_client(provider), url, bodies) as llm:
        llm.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=MESSAGES)
        with llm.messages.stream(model="claude-sonnet-4-5", max_tokens=64, messages=MESSAGES) as s:
            assert s.get_final_text() == provider.reply_text
        raw = llm.messages.create(
            model="claude-sonnet-4-5", max_tokens=64, messages=MESSAGES, stream=True
        )
        for _ in raw:
            pass
    got = rows(db)
    assert [(r["operation"], r["stream"], r["status"]) for r in got] == [
        ("messages", 0, "ok"),
        ("messages", 1, "ok"),
        ("messages", 1, "ok"),
    ]
    # claude-sonnet-4-5: $3 / MTok input, $0.30 / MTok cache read, $15 / MTok output:
    # 300 * 3e-6 + 1000 * 0.3e-6 + 40 * 15e-6 = 0.0009 + 0.0003 + 0.0006 = 0.0018
    for row in got:
        assert (row["input_tokens"], row["cache_read_tokens"], row["output_tokens"]) == (
            300,
            1000,
            40,
        )
        assert Decimal(str(row["total_cost"])) == Decimal("0.0018")


def test_sync_costs_equal_async_costs(tmp_path: Path) -> None:
    usage = {"prompt_tokens": 5000, "completion_tokens": 700}
    sync_db, async_db = tmp_path / "sync.db", tmp_path / "async.db"
    with ml.LoggingLLM(
        fake_sync_openai_client(FakeProvider(openai_usage=usage)), str(sync_db)
    ) as llm:
        llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    async def main() -> None:
        db = await ml.SqliteAdapter.create(str(async_db))
        client = fake_openai_client(FakeProvider(openai_usage=usage))
        async with ml.LoggingLLM(client, db) as llm:
            await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    asyncio.run(main())
    columns = ("input_tokens", "output_tokens", "total_cost", "cost_status", "price_version")
    assert [tuple(rows(sync_db)[0][c] for c in columns)] == [
        tuple(rows(async_db)[0][c] for c in columns)
    ]


def test_failures_of_known_calls_are_errors_and_unknown_methods_pass(
    where: tuple[str, str, Path],
) -> None:
    url, bodies, db = where
    provider = FakeProvider()
    with ml.LoggingLLM(fake_sync_openai_client(provider), url, bodies) as llm:
        provider.fail_next(500)
        with pytest.raises(openai.InternalServerError):
            llm.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        with pytest.raises(openai.NotFoundError):  # served as a 404: not an LLM call
            llm.models.list()
        assert llm.api_key == "sk-fake-openai-key"  # plain values pass through
    got = rows(db)
    assert [(r["operation"], r["status"], r["error_type"]) for r in got] == [
        ("chat.completions", "error", "InternalServerError")
    ]
    assert got[0]["total_cost"] is None


def test_anthropic_sync_failure(where: tuple[str, str, Path]) -> None:
    url, bodies, db = where
    provider = FakeProvider()
    with ml.LoggingLLM(fake_sync_anthropic_client(provider), url, bodies) as llm:
        provider.fail_next(429)
        with pytest.raises(anthropic.RateLimitError):
            llm.messages.create(model="claude-sonnet-4-5", max_tokens=8, messages=MESSAGES)
    assert [(r["status"], r["error_type"]) for r in rows(db)] == [("error", "RateLimitError")]


def test_a_stream_left_early_is_incomplete(where: tuple[str, str, Path]) -> None:
    url, bodies, db = where
    provider = FakeProvider(stream_chunks=6)
    with ml.LoggingLLM(fake_sync_openai_client(provider), url, bodies) as llm:
        stream = llm.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        for _ in stream:
            break
        stream.close()
        with llm.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True
        ) as second:
            next(iter(second))
    assert [r["status"] for r in rows(db)] == ["incomplete", "incomplete"]


def test_many_threads_keep_their_own_tags(where: tuple[str, str, Path]) -> None:
    url, bodies, db = where
    errors: list[BaseException] = []
    with ml.LoggingLLM(fake_sync_openai_client(), url, bodies) as llm:

        def worker(n: int) -> None:
            try:
                with ml.tags(user_id=f"user-{n}", feature="threads"):
                    for _ in range(25):
                        reply = llm.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
                        assert ml.call_info(reply).request_id
            except BaseException as exc:  # reported below: a thread's assert is silent
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stats = llm.flush()
    assert not errors
    assert stats.written == 16 * 25 and stats.dropped == 0
    got = rows(db)
    assert len(got) == 16 * 25 and len({r["request_id"] for r in got}) == 16 * 25
    by_user: dict[str, int] = {}
    for row in got:
        by_user[row["user_id"]] = by_user.get(row["user_id"], 0) + 1
    assert by_user == {f"user-{n}": 25 for n in range(16)}


def test_wrappers_given_the_same_url_share_one_writer(where: tuple[str, str, Path]) -> None:
    """Stores opened from a URL belong to the process: the last wrapper's close() flushes
    them, and a later wrapper finds the same store and writer, open."""
    url, bodies, db = where
    first = ml.LoggingLLM(fake_sync_openai_client(), url, bodies)
    second = ml.LoggingLLM(fake_sync_openai_client(), url, bodies)
    assert first._writer is second._writer
    first.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    second.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    first.close()
    assert len(rows(db)) == 2
    second.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    second.close()
    assert len(rows(db)) == 3
    store = second._writer.db
    with ml.LoggingLLM(fake_sync_openai_client(), url, bodies) as third:
        assert third._writer.db is store and not store.closed
        third.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert len(rows(db)) == 4


def test_an_async_client_wrapped_outside_a_loop(where: tuple[str, str, Path]) -> None:
    """Built at import time, used under asyncio.run(): the writer is the library's own
    thread, and flush()/close() stay coroutines (the client is async)."""
    url, bodies, db = where
    llm = ml.LoggingLLM(fake_openai_client(), url, bodies)

    async def main() -> None:
        await llm.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        stats = await llm.flush()
        assert stats.written == 1
        await llm.close()

    asyncio.run(main())
    assert len(rows(db)) == 1


def run_script(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "program.py"
    script.write_text(textwrap.dedent(body))
    env = {**os.environ, "PYTHONPATH": str(REPO), "MAJORDOMO_LOG_SPOOL_DIR": str(tmp_path / "sp")}
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env
    )


def test_a_script_that_never_closes_still_writes_every_row(tmp_path: Path) -> None:
    done = run_script(
        tmp_path,
        f"""
        import majordomo_log as ml
        from majordomo_log.testing import fake_sync_openai_client
        llm = ml.LoggingLLM(
            fake_sync_openai_client(), "sqlite:///{tmp_path}/x.db", "{tmp_path}/b"
        )
        for _ in range(300):
            llm.chat.completions.create(
                model="gpt-4o-mini", messages=[{{"role": "user", "content": "x"}}]
            )
        print("done")
        """,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "done"
    got = rows(tmp_path / "x.db")
    assert len(got) == 300 and all(r["status"] == "ok" for r in got)
    assert not list(tmp_path.rglob("*.jsonl"))  # written, not left in a spool


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_logs_its_own_calls(tmp_path: Path) -> None:
    done = run_script(
        tmp_path,
        f"""
        import os
        import majordomo_log as ml
        from majordomo_log.testing import fake_sync_openai_client
        llm = ml.LoggingLLM(fake_sync_openai_client(), "sqlite:///{tmp_path}/x.db")
        ask = lambda who: llm.chat.completions.create(
            model="gpt-4o-mini", messages=[{{"role": "user", "content": who}}]
        )
        with ml.tags(feature="parent"):
            ask("before")
        pid = os.fork()
        if pid == 0:
            with ml.tags(feature="child"):
                for _ in range(5):
                    ask("child")
            llm.close()
            os._exit(0)
        with ml.tags(feature="parent"):
            ask("after")
        _, status = os.waitpid(pid, 0)
        llm.close()
        print(status)
        """,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"
    features = sorted(r["feature"] for r in rows(tmp_path / "x.db"))
    assert features == ["child"] * 5 + ["parent"] * 2


@pytest.mark.servers
def test_a_sync_program_spools_while_the_database_is_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL unreachable mid-run: the calls go on, their records wait in the spool,
    and once it is back they are written, each exactly once."""
    import uuid
    from urllib.parse import urlsplit

    import asyncpg
    from faultlib import fast_backoff, via_proxy
    from faultproxy import FaultProxy
    from servers import require

    fast_backoff(monkeypatch)
    url = require("postgresql")
    schema = f"mdl_test_sync_{uuid.uuid4().hex[:10]}"
    target = urlsplit(url)
    ids: list[str] = []
    with FaultProxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        proxied = f"{via_proxy(url, proxy.port)}?schema={schema}"
        llm = ml.LoggingLLM(fake_sync_openai_client(), proxied, spool=tmp_path / "spool")

        def call() -> None:
            reply = llm.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            ids.append(ml.call_info(reply).request_id)

        for _ in range(5):
            call()
        assert llm.flush().written == 5
        proxy.down()
        for _ in range(20):
            call()  # never raises: the caller does not see the database
        down = llm.flush(timeout=20)
        assert down.store_down and down.written == 5
        assert down.spilled + down.pending >= 1  # held for the spool, not dropped
        assert down.dropped == 0
        proxy.restore()
        llm.replay_spool()
        stats = llm.close()
        assert stats.dropped == 0

    async def logged() -> list[str]:
        conn = await asyncpg.connect(url)
        try:
            found = await conn.fetch(f"SELECT request_id::text AS id FROM {schema}.llm_requests")
            return sorted(r["id"] for r in found)
        finally:
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")
            await conn.close()

    assert asyncio.run(logged()) == sorted(ids)


def test_sigterm_keeps_every_record_of_a_sync_program(tmp_path: Path) -> None:
    """Killed by SIGTERM (no handler of its own) with records still on their way: each
    one is written or spooled, none lost, and the process dies of SIGTERM."""
    from faultlib import spooled_ids

    done = run_script(
        tmp_path,
        f"""
        import os, signal, sys
        import majordomo_log as ml
        from majordomo_log.testing import FakeProvider, fake_sync_openai_client
        llm = ml.LoggingLLM(
            fake_sync_openai_client(FakeProvider()), "sqlite:///{tmp_path}/x.db",
            spool="{tmp_path}/spool", queue=ml.QueueOptions(flush_interval=30, batch_size=10_000),
        )
        for _ in range(200):
            reply = llm.chat.completions.create(
                model="gpt-4o-mini", messages=[{{"role": "user", "content": "x"}}]
            )
            print(ml.call_info(reply).request_id)
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGTERM)
        """,
    )
    assert done.returncode == -15, done.stderr
    ids = done.stdout.split()
    assert len(ids) == 200
    written = [r["request_id"] for r in rows(tmp_path / "x.db")]
    spooled = spooled_ids(tmp_path / "spool")
    assert sorted(set(written) | set(spooled)) == sorted(ids)
