"""LoggingLLM around the real google-genai client's sync surface (``client.models.*``),
with no event loop in the test: stores given as a URL and a path, the writer on the
library's thread, rows read back with sqlite3."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from google.genai import errors, types

import majordomo_log as ml
from majordomo_log.testing.gemini import GeminiServer, fake_gemini_client

# Gemini counts: cached ⊂ prompt, thoughts and tool-use prompt next to the rest.
USAGE: Any = {
    "prompt_token_count": 2000,
    "cached_content_token_count": 1500,
    "candidates_token_count": 300,
    "thoughts_token_count": 700,
}
# gemini-2.5-flash, USD per 1M tokens (ai.google.dev/gemini-api/docs/pricing): input 0.30,
# cache read 0.03, output 2.50 (thinking is output). Buckets: input 500, cache read 1500,
# output 300, reasoning 700.
COST = (500 * Decimal("0.30") + 1500 * Decimal("0.03") + 1000 * Decimal("2.50")) / 1_000_000


def rows(db: Path) -> list[dict[str, Any]]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM llm_requests ORDER BY started_at")]
    finally:
        con.close()


@pytest.fixture
def server() -> Iterator[GeminiServer]:
    with GeminiServer(usage=USAGE, embedding_tokens=11) as server:
        yield server


@pytest.fixture
def where(tmp_path: Path) -> tuple[str, str, Path]:
    db = tmp_path / "llm_logs.db"
    return f"sqlite:///{db}", str(tmp_path / "request_logs"), db


def test_sync_calls_are_logged_and_priced(
    server: GeminiServer, where: tuple[str, str, Path]
) -> None:
    url, bodies, db = where
    client = fake_gemini_client(server)
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()  # the point: nothing here runs a loop
    with ml.LoggingLLM(client, url, bodies) as llm:
        reply = llm.models.generate_content(model="models/gemini-2.5-flash", contents="hi")
        assert isinstance(reply, types.GenerateContentResponse)
        assert reply.text == server.reply_text
        info = ml.call_info(reply)
        texts = [
            chunk.text
            for chunk in llm.models.generate_content_stream(model="gemini-2.5-flash", contents="x")
        ]
        assert "".join(texts) == server.reply_text
        embedded = llm.models.embed_content(model="gemini-embedding-001", contents="e")
        assert len(embedded.embeddings or []) == 1
    client.close()

    plain, streamed, embed = rows(db)
    assert plain["request_id"] == info.request_id
    for row in (plain, streamed):
        assert (row["provider"], row["operation"], row["model"]) == (
            "google",
            "generate_content",
            "gemini-2.5-flash",
        )
        buckets = (row["input_tokens"], row["cache_read_tokens"], row["output_tokens"])
        assert buckets == (500, 1500, 300) and row["reasoning_tokens"] == 700
        assert (row["status"], row["cost_status"]) == ("ok", "computed")
        assert Decimal(str(row["total_cost"])) == COST == Decimal("0.002695")
    assert (plain["stream"], streamed["stream"]) == (0, 1)
    assert streamed["time_to_first_token_ms"] is not None
    assert (embed["operation"], embed["input_tokens"], embed["output_tokens"]) == (
        "embed_content",
        11,
        0,
    )
    # gemini-embedding-001: input 0.15 per 1M tokens
    assert Decimal(str(embed["total_cost"])) == 11 * Decimal("0.15") / 1_000_000
    assert all(r["body_ref"] for r in (plain, streamed, embed))


def test_sync_stream_left_early_and_errors(
    server: GeminiServer, where: tuple[str, str, Path]
) -> None:
    url, bodies, db = where
    client = fake_gemini_client(server)
    with ml.LoggingLLM(client, url, bodies) as llm:
        stream = llm.models.generate_content_stream(model="gemini-2.5-flash", contents="x")
        first = next(iter(stream))
        assert first.text
        stream.close()  # the caller stops reading
        server.fail_next(429)
        with pytest.raises(errors.ClientError):
            llm.models.generate_content(model="gemini-2.5-flash", contents="hi")
        server.fail_next(500)
        with pytest.raises(errors.ServerError):
            for _chunk in llm.models.generate_content_stream(
                model="gemini-2.5-flash", contents="x"
            ):
                pass
        counted = llm.models.count_tokens(model="gemini-2.5-flash", contents="hi")
        assert counted.total_tokens == 2000  # not an LLM call: not logged
    client.close()

    left, failed, failed_stream = rows(db)
    assert (left["status"], left["cost_status"], left["stream"]) == ("incomplete", "incomplete", 1)
    # The first chunk's running usage: a quarter of the candidates (75).
    assert (left["input_tokens"], left["output_tokens"]) == (500, 75)
    assert (failed["status"], failed["error_type"], failed["total_cost"]) == (
        "error",
        "ClientError",
        None,
    )
    assert (failed_stream["status"], failed_stream["error_type"], failed_stream["stream"]) == (
        "error",
        "ServerError",
        1,
    )
