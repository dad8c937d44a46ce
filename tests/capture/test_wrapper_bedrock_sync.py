"""LoggingLLM around a real boto3 ``bedrock-runtime`` client (sync, no event loop anywhere in
the test), sending to FakeCloud; stores given as a URL and a path, rows read back with
sqlite3. Prices as in test_wrapper_bedrock.py (Claude Haiku 4.5 under a ``us.`` profile:
1.10 in / 5.50 out / 0.11 cache read / 1.375 5-minute write / 2.20 1-hour write per 1M)."""

from __future__ import annotations

import asyncio
import gc
import gzip
import json
import sqlite3
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import EventStreamError
from botocore.response import StreamingBody

import majordomo_log as ml
from majordomo_log.capture.keys import hash_api_key, resolve_key_secret
from majordomo_log.testing.cloud import FakeCloud
from majordomo_log.testing.cloud_clients import TEST_AWS_ACCESS_KEY_ID, bedrock_client

US_HAIKU = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
MESSAGES: Any = [{"role": "user", "content": [{"text": "hi"}]}]
CLAUDE_BODY = json.dumps(
    {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
    }
)
CONVERSE_USAGE: Any = {
    "inputTokens": 1000,
    "outputTokens": 500,
    "cacheReadInputTokens": 2000,
    "cacheWriteInputTokens": 300,
}
# 1000 * 1.10 + 2000 * 0.11 + 300 * 1.375 + 500 * 5.50 = 1100 + 220 + 412.5 + 2750
US_CONVERSE_COST = Decimal("4482.5") / 1_000_000
# + 200 one-hour writes in Claude's own usage: + 200 * 2.20 = 4922.5
US_CLAUDE_COST = Decimal("4922.5") / 1_000_000


@pytest.fixture
def cloud() -> Any:
    from conftest import ANTHROPIC_USAGE

    with FakeCloud(converse_usage=CONVERSE_USAGE, anthropic_usage=ANTHROPIC_USAGE) as server:
        yield server


@pytest.fixture
def where(tmp_path: Path) -> tuple[str, str, Path]:
    db = tmp_path / "x.db"
    return f"sqlite:///{db}", str(tmp_path / "bodies"), db


def rows(db: Path) -> list[dict[str, Any]]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM llm_requests ORDER BY started_at")]
    finally:
        con.close()


def test_converse_and_its_stream(cloud: FakeCloud, where: tuple[str, str, Path]) -> None:
    url, bodies, db = where
    cloud.first_chunk_delay = 0.05
    client = bedrock_client(cloud)
    with ml.LoggingLLM(client, url, bodies) as llm:
        with pytest.raises(RuntimeError):
            asyncio.get_running_loop()  # the point: no loop in this program
        result = llm.converse(modelId=US_HAIKU, messages=MESSAGES)
        assert result["output"]["message"]["content"] == [{"text": cloud.reply_text}]
        assert ml.call_info(result).total_cost == US_CONVERSE_COST
        streamed = llm.converse_stream(modelId=US_HAIKU, messages=MESSAGES)
        events = list(streamed["stream"])
        text = "".join(
            e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e
        )
        assert text == cloud.reply_text
        assert "metadata" in events[-1]
        stats = llm.flush()
        assert stats.pending == 0
    plain, stream = rows(db)
    for row in (plain, stream):
        assert (row["provider"], row["model"], row["status"]) == ("bedrock", US_HAIKU, "ok")
        assert (row["input_tokens"], row["cache_read_tokens"]) == (1000, 2000)
        assert (row["cache_write_5m_tokens"], row["output_tokens"], row["total_tokens"]) == (
            300,
            500,
            3800,
        )
        assert Decimal(str(row["total_cost"])) == US_CONVERSE_COST
        assert row["price_version"] == "anthropic.claude-haiku-4-5@2025-10-01"
        assert row["api_key_hash"] == hash_api_key(TEST_AWS_ACCESS_KEY_ID, resolve_key_secret())
    assert (plain["operation"], plain["stream"]) == ("converse", 0)
    assert (stream["operation"], stream["stream"]) == ("converse_stream", 1)
    assert plain["provider_request_id"] == result["ResponseMetadata"]["RequestId"]
    assert 50 <= stream["time_to_first_token_ms"] < stream["latency_ms"]


def test_invoke_model_body_stays_readable(cloud: FakeCloud, where: tuple[str, str, Path]) -> None:
    url, bodies, db = where
    with ml.LoggingLLM(bedrock_client(cloud), url, bodies) as llm:
        result = llm.invoke_model(modelId=US_HAIKU, body=CLAUDE_BODY)
        body = result["body"]
        assert isinstance(body, StreamingBody)  # botocore's own class, over the bytes read
        raw = body.read()
        assert json.loads(raw)["content"][0]["text"] == cloud.reply_text
        assert body.read() == b""  # read once, as the original
        again = llm.invoke_model(modelId=US_HAIKU, body=CLAUDE_BODY.encode())
        chunks = list(again["body"].iter_chunks(7))
        assert len(chunks) > 1 and all(len(c) <= 7 for c in chunks)
        assert json.loads(b"".join(chunks))["content"][0]["text"] == cloud.reply_text
    logged = rows(db)
    assert [r["operation"] for r in logged] == ["invoke_model", "invoke_model"]
    stored = b"".join(gzip.decompress(p.read_bytes()) for p in Path(bodies).rglob("*.gz"))
    # the request body given as bytes is stored as its text, not base64
    assert stored.count(b'\\"anthropic_version\\"') == 2
    for row in logged:
        assert row["served_model"] == "claude-haiku-4-5-20251001"
        assert (row["input_tokens"], row["cache_write_1h_tokens"], row["total_tokens"]) == (
            1000,
            200,
            4000,
        )
        assert Decimal(str(row["total_cost"])) == US_CLAUDE_COST


def test_invoke_model_with_response_stream(cloud: FakeCloud, where: tuple[str, str, Path]) -> None:
    url, bodies, db = where
    with ml.LoggingLLM(bedrock_client(cloud), url, bodies) as llm:
        result = llm.invoke_model_with_response_stream(modelId=US_HAIKU, body=CLAUDE_BODY)
        kinds = [json.loads(e["chunk"]["bytes"])["type"] for e in result["body"]]
        assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    (row,) = rows(db)
    assert (row["operation"], row["stream"], row["status"]) == (
        "invoke_model_with_response_stream",
        1,
        "ok",
    )
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (1000, 500, 4000)
    assert Decimal(str(row["total_cost"])) == US_CLAUDE_COST
    assert row["time_to_first_token_ms"] is not None


def test_failures_and_abandoned_streams(cloud: FakeCloud, where: tuple[str, str, Path]) -> None:
    url, bodies, db = where
    client = bedrock_client(cloud)
    with ml.LoggingLLM(client, url, bodies) as llm:
        cloud.fail_next(400, "ValidationException", "bad model")
        with pytest.raises(client.exceptions.ValidationException):
            llm.converse(modelId="nope", messages=MESSAGES)
        cloud.fail_stream_after(2)
        with pytest.raises(EventStreamError):
            for _ in llm.converse_stream(modelId=US_HAIKU, messages=MESSAGES)["stream"]:
                pass
        left = llm.converse_stream(modelId=US_HAIKU, messages=MESSAGES)
        for _ in left["stream"]:
            break
        left["stream"].close()
        dropped = llm.invoke_model_with_response_stream(modelId=US_HAIKU, body=CLAUDE_BODY)
        del dropped
        gc.collect()
    by_operation = sorted((r["operation"], r["status"], r["error_type"]) for r in rows(db))
    assert by_operation == [
        ("converse", "error", "ValidationException"),
        ("converse_stream", "error", "EventStreamError"),
        ("converse_stream", "incomplete", None),
        ("invoke_model_with_response_stream", "incomplete", None),
    ]
    assert all(r["total_cost"] is None for r in rows(db))


def test_other_methods_are_the_clients_own(cloud: FakeCloud, where: tuple[str, str, Path]) -> None:
    url, bodies, db = where
    client = bedrock_client(cloud)
    with ml.LoggingLLM(client, url, bodies) as llm:
        assert llm.meta is client.meta
        assert llm.can_paginate == client.can_paginate
        assert llm.can_paginate("converse") is False
        assert llm.meta.events is client.meta.events
        assert llm.exceptions.ValidationException is client.exceptions.ValidationException
    assert rows(db) == []


def test_threads_share_one_client(cloud: FakeCloud, where: tuple[str, str, Path]) -> None:
    url, bodies, db = where
    with ml.LoggingLLM(bedrock_client(cloud), url, bodies) as llm:

        def worker(n: int) -> None:
            with ml.tags(user_id=f"u{n}"):
                for _ in range(5):
                    llm.converse(modelId=US_HAIKU, messages=MESSAGES)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    logged = rows(db)
    assert len(logged) == 20
    assert sorted({r["user_id"] for r in logged}) == ["u0", "u1", "u2", "u3"]
    assert {r["api_key_hash"] for r in logged} == {
        hash_api_key(TEST_AWS_ACCESS_KEY_ID, resolve_key_secret())
    }
