"""Stored bodies and error messages pass the built-in redaction rules and the user's hooks."""

from __future__ import annotations

import gzip
import logging
import time
from pathlib import Path
from typing import Any

import pytest

import majordomo_log as ml
from majordomo_log._record import CallContext, CallRecord, build_envelope
from majordomo_log._wrapper import default_prices
from majordomo_log.testing import FakeProvider, fake_openai_client

OPENAI_LIKE = "sk-proj-" + "Zq7" * 16
GITHUB_LIKE = "ghp_" + "a1B2" * 9
MSG = [{"role": "user", "content": f"my key is {OPENAI_LIKE}, token {GITHUB_LIKE}"}]


async def _llm(tmp_path: Path, provider: FakeProvider, **options: Any) -> Any:
    db = await ml.SqliteAdapter.create(tmp_path / "log.db")
    storage = await ml.FileStorageAdapter.create(tmp_path / "bodies")
    return ml.LoggingLLM(fake_openai_client(provider), db, storage, **options), storage


def _raw_bodies(tmp_path: Path) -> bytes:
    return b"".join(gzip.decompress(p.read_bytes()) for p in (tmp_path / "bodies").rglob("*.gz"))


async def test_builtin_rules_scrub_bodies_and_error_messages(
    tmp_path: Path, provider: FakeProvider
) -> None:
    llm, storage = await _llm(tmp_path, provider)
    resp = await llm.chat.completions.create(
        model="gpt-4o", messages=MSG, extra_headers={"X-Upstream-Auth": f"Bearer {OPENAI_LIKE}"}
    )
    provider.fail_next(400, message=f"bad header Authorization: Bearer {GITHUB_LIKE}")
    with pytest.raises(Exception, match="Bearer"):
        await llm.chat.completions.create(model="gpt-4o", messages=[])
    await llm.flush()
    raw = _raw_bodies(tmp_path)
    assert OPENAI_LIKE.encode() not in raw and GITHUB_LIKE.encode() not in raw
    body = await storage.get(ml.call_info(resp).request_id)
    assert body["request"]["messages"][0]["content"] == (
        "my key is sk-[REDACTED], token ghp_[REDACTED]"
    )
    assert body["request"]["extra_headers"]["X-Upstream-Auth"] == "Bearer sk-[REDACTED]"
    db_bytes = (tmp_path / "log.db").read_bytes() + (tmp_path / "log.db-wal").read_bytes()
    assert GITHUB_LIKE.encode() not in db_bytes
    await llm.close()


async def test_user_hooks_run_in_order_before_the_builtin_rules(
    tmp_path: Path, provider: FakeProvider
) -> None:
    seen: list[str] = []

    def drop_emails(envelope: dict[str, Any]) -> None:  # mutates in place
        seen.append(envelope["request"]["messages"][0]["content"])
        envelope["request"]["messages"][0]["content"] = "[EMAIL]"

    def add_note(envelope: dict[str, Any]) -> dict[str, Any]:  # returns a new dict
        return {**envelope, "note": f"checked {OPENAI_LIKE}"}

    llm, storage = await _llm(tmp_path, provider, redact=[drop_emails, add_note])
    resp = await llm.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "mail me: ann@example.com"}]
    )
    await llm.flush()
    body = await storage.get(ml.call_info(resp).request_id)
    assert seen == ["mail me: ann@example.com"]
    assert body["request"]["messages"][0]["content"] == "[EMAIL]"
    assert body["note"] == "checked sk-[REDACTED]"  # the rules ran after the hooks
    await llm.close()


async def test_a_raising_hook_costs_the_body_not_the_row(
    tmp_path: Path, provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(envelope: dict[str, Any]) -> None:
        raise RuntimeError(f"could not parse {envelope['request']['messages'][0]['content']}")

    llm, storage = await _llm(tmp_path, provider, redact=[broken])
    caplog.set_level(logging.WARNING, logger="majordomo_log")
    resp = await llm.chat.completions.create(model="gpt-4o", messages=MSG)
    assert resp.choices[0].message.content  # the caller is unaffected
    await llm.flush()
    info = ml.call_info(resp)
    body = await storage.get(info.request_id)
    assert body["request"] == {"$redaction_failed": "RuntimeError"}
    assert body["response"] == {"$redaction_failed": "RuntimeError"}
    assert body["request_id"] == info.request_id and body["model"] == "gpt-4o"
    rows = llm.stats().written
    assert rows == 1
    assert "RuntimeError" in caplog.text and OPENAI_LIKE not in caplog.text
    assert b"my key is" not in _raw_bodies(tmp_path)
    await llm.close()
    import sqlite3

    conn = sqlite3.connect(tmp_path / "log.db")
    [(flags,)] = conn.execute("SELECT usage_flags FROM llm_requests").fetchall()
    conn.close()
    assert "redaction_failed" in flags.split(",")


def test_an_envelope_is_built_once_so_hooks_run_once() -> None:
    """A batch prepared again (after a cancelled write) stores the same body."""
    calls: list[int] = []

    def hook(envelope: dict[str, Any]) -> None:
        calls.append(1)

    ctx = CallContext(default_prices(), None, {}, secrets=(), redact_hooks=(hook,))
    record = CallRecord(
        "r1", time.time(), time.perf_counter(), "openai", "x", "m", False, None, None, ctx
    )
    record.request_json = b'{"password":"hunter2"}'
    first = build_envelope(record)
    assert build_envelope(record) is first and calls == [1]
    assert b"hunter2" not in first and record.request_json is None
