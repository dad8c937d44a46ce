"""Stored bodies and error messages pass the built-in redaction rules and the user's hooks."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import logging
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import majordomo_log as ml
from majordomo_log.record import redact as _redact
from majordomo_log.record.call import CallContext, CallRecord
from majordomo_log.record.envelope import build_envelope
from majordomo_log.record.pricing import default_prices
from majordomo_log.record.redact import redact_bytes, redact_text, scrub
from majordomo_log.testing import FakeProvider, fake_openai_client

OPENAI_LIKE = "sk-proj-" + "Zq7" * 16
GITHUB_LIKE = "ghp_" + "a1B2" * 9
MSG = [{"role": "user", "content": f"my key is {OPENAI_LIKE}, token {GITHUB_LIKE}"}]


async def _llm(tmp_path: Path, provider: FakeProvider, **options: Any) -> Any:
    db = await ml.SqliteAdapter.create(tmp_path / "log.db")
    # one file per body, found by its request id (the tests read bodies back by it)
    storage = await ml.FileStorageAdapter.create(tmp_path / "bodies", mode="object")
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


# -- long text: searched in windows, the same result as one search -----------------------

LONG_KEY = "sk-" + "a1B2" * 50_000  # 200 KB: longer than a window, than any bound


class NoTurns:
    def maybe_yield(self) -> None:
        pass


def test_a_key_longer_than_a_window_is_redacted_whole() -> None:
    text = "x " * 40_000 + LONG_KEY + " y"
    assert len(text) > 3 * _redact._WINDOW
    assert redact_text(text) == "x " * 40_000 + "sk-[REDACTED] y"
    assert redact_bytes(text.encode()) == ("x " * 40_000 + "sk-[REDACTED] y").encode()


def test_a_json_value_cut_by_a_window_inside_an_escape_is_redacted_whole() -> None:
    for shift in range(6):  # one of these puts a window's end between '\' and 'n'
        value = "." * shift + "ab\\ncd" * 40_000
        envelope = b'{"note":"see","password":"' + value.encode() + b'","n":1}'
        assert redact_bytes(envelope) == b'{"note":"see","password":"[REDACTED]","n":1}'


def test_a_pem_key_is_redacted_with_or_without_its_end_line() -> None:
    body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\\nBKcwggSjAgEAAoIBAQC7"
    block = f"-----BEGIN PRIVATE KEY-----\\n{body}\\n-----END PRIVATE KEY-----"
    assert redact_text(f"key: {block}.") == (
        "key: -----BEGIN PRIVATE KEY-----[REDACTED]-----END PRIVATE KEY-----."
    )
    lines = body.replace("\\n", "\n")
    head = f"-----BEGIN RSA PRIVATE KEY-----\n{lines}"  # a truncated body's kept head
    assert redact_bytes(orjson.dumps({"head": head})) == (
        b'{"head":"-----BEGIN RSA PRIVATE KEY-----[REDACTED]"}'
    )


# What a rule starts at, then runs its secret may be made of, some far longer than a window
RULE_STARTS = [
    "sk-",
    "sk-proj-" + "Zq7" * 10,
    "eyJhbGciOi.eyJzdWIiOi.c2ln",
    " eyJhbGciOi.eyJ",
    " eyJ",
    '"password":"',
    '\\"api_key\\":\\"',
    "password=",
    "Authorization: Bearer ",
    "://u:",
    "@",
    "-----BEGIN PRIVATE KEY-----",
    "-----END PRIVATE KEY-----",
    "AKIA",
    "ghp_",
]
RUN_UNITS = ["a", "7", "ab\\n", " ", "\\", "eyJ", "=", ".", '\\"', "-"]
# a run longer than the windows' overlap (the widest reach) is cut off and continued
REACH = max(rules.reach for rules in _redact._TEXT_PASSES)
counts = st.one_of(st.integers(1, 100), st.integers(REACH // 2, 3 * REACH))
long_runs = st.tuples(st.sampled_from(RUN_UNITS), counts).map(
    lambda unit_count: unit_count[0] * unit_count[1]
)
PIECES = st.one_of(
    st.sampled_from([*RULE_STARTS, "\\n", '\\"', '"', " ", ","]),
    long_runs,
    st.tuples(st.sampled_from(RULE_STARTS), long_runs).map("".join),
)


def assert_windows_find_what_one_search_finds(text: str, window: int) -> None:
    original = _redact._WINDOW
    _redact._WINDOW = window
    try:
        for passes, data in ((_redact._TEXT_PASSES, text), (_redact._BYTES_PASSES, text.encode())):
            for rules in passes:
                expected = rules.pattern.sub(rules._replace, data)  # type: ignore[arg-type]
                assert rules._in_windows(data, NoTurns()) == expected  # type: ignore[arg-type]
                data = expected
    finally:
        _redact._WINDOW = original


@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(PIECES, min_size=1, max_size=40), st.integers(min_value=64, max_value=5000))
def test_windows_find_what_one_search_finds(pieces: list[str], window: int) -> None:
    """Every pass over text split in windows (small ones here, so that runs and matches
    cross their ends) gives what one ``sub`` over the whole text gives."""
    assert_windows_find_what_one_search_finds("".join(pieces), window)


@pytest.mark.parametrize("start", RULE_STARTS)
def test_a_secret_cut_off_by_the_windows_overlap_is_continued(start: str) -> None:
    window = 1000
    for unit in RUN_UNITS:
        run = unit * ((REACH + 2 * window) // len(unit))  # past where any search stops
        assert_windows_find_what_one_search_finds(f"{start}{run} {start}{run}.", window)


# -- the envelope: the bytes it always had, however it is built --------------------------


def _joined(record: CallRecord, response: bytes, hook_fails: bool, cap: int) -> tuple[bytes, bool]:
    """The envelope before the built-in rules, as a reference: the head, the parts and
    the frame joined, the cap counted with 26 bytes for the frame; and whether it was
    truncated."""
    from majordomo_log.record.redact import TRUNCATED_HEAD_BYTES, truncated_marker
    from majordomo_log.record.values import safe_text

    def text(value: Any) -> Any:
        return None if value is None else safe_text(value)

    error = (
        None
        if record.error_type is None
        else {"type": text(record.error_type), "message": text(record.error_message)}
    )
    started = dt.datetime.fromtimestamp(record.started_at, dt.timezone.utc).isoformat()
    head = orjson.dumps(
        {
            "format": "majordomo-log/body@1",
            "request_id": record.request_id,
            "started_at": started,
            "provider": text(record.provider),
            "operation": text(record.operation),
            "model": text(record.model),
            "served_model": text(record.served_model),
            "stream": bool(record.stream),
            "status": text(record.status),
            "error": error,
        }
    )[:-1]
    request = record.request_json if record.request_json is not None else b"null"
    truncated = len(head) + len(request) + len(response) + 26 > cap
    if truncated:
        keep = min(TRUNCATED_HEAD_BYTES, cap // 4)
        request = truncated_marker(request, keep) if len(request) > keep else request
        response = truncated_marker(response, keep) if len(response) > keep else response
    if hook_fails:
        request = response = b'{"$redaction_failed":"ValueError"}'
    joined = b"".join((head, b',"request":', request, b',"response":', response, b"}"))
    return joined, truncated


def _failing_hook(envelope: dict[str, Any]) -> None:
    raise ValueError("no")


@settings(deadline=None, max_examples=150)
@given(
    request=st.one_of(st.none(), st.text(max_size=300)),
    response=st.one_of(st.none(), st.text(max_size=300)),
    error=st.one_of(st.none(), st.text(max_size=40)),
    served=st.one_of(st.none(), st.text(max_size=20)),
    slack=st.one_of(st.integers(-3, 3), st.integers(-60, 60)),
    hook_fails=st.booleans(),
)
def test_the_envelope_is_the_head_the_parts_and_the_frame_joined(
    request: str | None,
    response: str | None,
    error: str | None,
    served: str | None,
    slack: int,
    hook_fails: bool,
) -> None:
    """Byte for byte what joining the pieces gave, truncated on the same side of the
    cap (``slack`` puts the cap a few bytes either side of the envelope's size)."""
    hooks = (_failing_hook,) if hook_fails else ()
    ctx = CallContext(default_prices(), None, {}, secrets=(b"sk-own",), redact_hooks=hooks)
    record = CallRecord("r1", 1.7e9, 0.0, "openai", "chat", "m", False, None, None, ctx)
    record.request_json = None if request is None else orjson.dumps({"content": request})
    record.response = None if response is None else {"text": response}
    record.served_model = served
    if error is not None:
        record.status, record.error_type, record.error_message = "error", "E", error
    response_json = orjson.dumps(record.response)
    cap = max(1, len(_joined(record, response_json, False, 1 << 30)[0]) + slack)
    record.ctx = dataclasses.replace(ctx, max_body_bytes=cap)
    expected, truncated = _joined(record, response_json, hook_fails, cap)
    assert build_envelope(record) == scrub(expected, ctx.secrets)
    assert ("body_truncated" in record.body_flags) == truncated
