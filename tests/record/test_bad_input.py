"""Bad input gets a clear outcome and never crashes the caller or the writer.

Real SDK clients on the fake provider and real SQLite + file stores. Where the SDK cannot
carry the input at all (NaN usage, nested responses), a plain client stands in.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import math
import os
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

import majordomo_log as ml
from majordomo_log.testing import FakeProvider, fake_openai_client

MSG = [{"role": "user", "content": "hi"}]


async def _pair(tmp_path: Path) -> tuple[ml.SqliteAdapter, ml.FileStorageAdapter]:
    db = await ml.SqliteAdapter.create(tmp_path / "log.db")
    storage = await ml.FileStorageAdapter.create(tmp_path / "bodies", mode="object")
    return db, storage


def _rows(tmp_path: Path) -> list[dict[str, Any]]:
    import sqlite3

    conn = sqlite3.connect(tmp_path / "log.db")
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM llm_requests ORDER BY request_id")]
    finally:
        conn.close()


def _gen() -> Any:
    return (i for i in range(3))


def _recursive() -> Any:
    loop: list[Any] = []
    loop.append(loop)
    return loop


# -- values JSON cannot hold ---------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [object(), {1, 2}, b"\xff\x00", "gen", "recursive"],
    ids=["object", "set", "bytes", "generator", "recursive"],
)
async def test_unserializable_request_value_raises_the_sdks_own_error_and_is_logged(
    tmp_path: Path, provider: FakeProvider, value: Any
) -> None:
    value = _gen() if value == "gen" else _recursive() if value == "recursive" else value
    plain = fake_openai_client(provider)
    with pytest.raises(Exception) as unwrapped:
        await plain.chat.completions.create(model="gpt-4o", messages=MSG, metadata={"v": value})
    db, storage = await _pair(tmp_path)
    llm = ml.LoggingLLM(fake_openai_client(provider), db, storage)
    with pytest.raises(type(unwrapped.value)):
        await llm.chat.completions.create(model="gpt-4o", messages=MSG, metadata={"v": value})
    await llm.flush()
    [row] = _rows(tmp_path)
    assert row["status"] == "error"
    assert row["error_type"] == type(unwrapped.value).__name__
    body = await storage.get(row["body_ref"])
    assert body["request"]  # stored readably (or as an $unserializable marker), never lost
    await llm.close()


async def test_bytes_and_sets_in_a_plain_client_request_are_stored_readably(
    tmp_path: Path,
) -> None:
    db, storage = await _pair(tmp_path)
    llm = ml.LoggingLLM(PlainClient(), db, storage)
    await llm.ask({"b": b"\x00\xff", "s": {3}, "o": object()})
    await llm.flush()
    [row] = _rows(tmp_path)
    request = (await storage.get(row["body_ref"]))["request"]["args"][0]
    assert request["b"] == {"$bytes_base64": "AP8="}
    assert request["s"] == [3]
    assert request["o"].startswith("<object object")
    await llm.close()


# -- usage ---------------------------------------------------------------------------


async def test_response_without_usage_is_missing_usage_not_free(
    tmp_path: Path, provider: FakeProvider
) -> None:
    provider.omit_usage = True
    db, storage = await _pair(tmp_path)
    llm = ml.LoggingLLM(fake_openai_client(provider), db, storage)
    await llm.chat.completions.create(model="gpt-4o", messages=MSG)
    await llm.flush()
    [row] = _rows(tmp_path)
    assert row["cost_status"] == "missing_usage"
    assert row["total_cost"] is None and row["input_tokens"] is None
    await llm.close()


@pytest.mark.parametrize(
    ("usage", "flag"),
    [
        ({"prompt_tokens": -5, "completion_tokens": 10}, "negative_count"),
        ({"prompt_tokens": 10, "completion_tokens": 10**12}, "absurd_count"),
    ],
)
async def test_broken_proxy_counts_are_clamped_flagged_and_not_priced(
    tmp_path: Path, provider: FakeProvider, usage: Any, flag: str
) -> None:
    provider.openai_usage = usage
    db, storage = await _pair(tmp_path)
    llm = ml.LoggingLLM(fake_openai_client(provider), db, storage)
    await llm.chat.completions.create(model="gpt-4o", messages=MSG)
    await llm.flush()
    [row] = _rows(tmp_path)
    assert row["cost_status"] == "invalid_usage"
    assert flag in row["usage_flags"].split(",")
    assert row["total_cost"] is None
    assert min(row[c] for c in ("input_tokens", "output_tokens", "total_tokens")) >= 0
    assert row["total_tokens"] == 10  # the bad count became 0, the good one stands
    await llm.close()


@dataclasses.dataclass
class Reply:  # a dataclass: its fields are stored, as an SDK model's would be
    usage: Any
    payload: Any
    model: str = "gpt-4o"


class PlainClient:
    """A client the SDK's JSON encoding does not stand between (NaN, deep nesting)."""

    def __init__(self, usage: Any = None, payload: Any = None) -> None:
        self.usage = usage or {"prompt_tokens": 1, "completion_tokens": 1}
        self.payload = payload

    async def ask(self, request: Any) -> Reply:
        return Reply(self.usage, self.payload)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
async def test_nan_and_infinite_usage_is_flagged_and_not_priced(tmp_path: Path, bad: float) -> None:
    db, storage = await _pair(tmp_path)
    client = PlainClient(usage={"prompt_tokens": bad, "completion_tokens": 4})
    llm = ml.LoggingLLM(client, db, storage, methods=["ask"])
    await llm.ask({"nan": bad})
    await llm.flush()
    [row] = _rows(tmp_path)
    assert row["cost_status"] == "invalid_usage"
    assert row["usage_flags"]
    assert row["input_tokens"] == 0 and row["output_tokens"] == 4
    body = await storage.get(row["body_ref"])  # NaN is not JSON: stored as null
    assert body["request"]["args"][0] == {"nan": None}
    await llm.close()


# -- text that is not valid Unicode --------------------------------------------------


async def test_lone_surrogates_and_invalid_utf8_in_tags_and_messages(
    tmp_path: Path, provider: FakeProvider
) -> None:
    db, storage = await _pair(tmp_path)
    llm = ml.LoggingLLM(fake_openai_client(provider), db, storage, tags={"feature": "a\ud800b"})
    with ml.tags(workflow=b"\xff\xfe".decode("utf-8", "surrogateescape"), user_id="ok"):
        await llm.chat.completions.create(model="gpt-4o", messages=MSG)
        with pytest.raises(UnicodeEncodeError):  # the SDK cannot send it; we log the attempt
            await llm.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "x\udfffy"}]
            )
    await llm.flush()
    rows = _rows(tmp_path)
    assert [r["status"] for r in rows] == ["ok", "error"]
    for row in rows:
        assert row["feature"] == "a\ufffdb"
        assert row["workflow"] == "\ufffd\ufffd"
        assert orjson.loads(row["tags"])["feature"] == "a\ufffdb"
        body = await storage.get(row["body_ref"])
        orjson.dumps(body)  # valid UTF-8 all the way through
    await llm.close()


# -- SQL metacharacters, path-like and huge values -------------------------------------

SQL_TAGS = {
    "feature": "'; DROP TABLE llm_requests; --",
    "workflow": "quote \" and ' and `back`",
    "user_id": "back\\slash\\",
    "session_id": "100% _wild_ %",
    "custom": "'); DELETE FROM llm_requests WHERE ('1'='1",
}


async def test_sql_metacharacters_in_tags_read_back_exactly(
    tmp_path: Path, provider: FakeProvider
) -> None:
    db, storage = await _pair(tmp_path)
    llm = ml.LoggingLLM(fake_openai_client(provider), db, storage, tags=SQL_TAGS)
    for _ in range(2):
        await llm.chat.completions.create(model="gpt-4o", messages=MSG)
    await llm.flush()
    rows = _rows(tmp_path)
    assert len(rows) == 2
    for row in rows:
        for name in ("feature", "workflow", "user_id", "session_id"):
            assert row[name] == SQL_TAGS[name]
        assert orjson.loads(row["tags"]) == SQL_TAGS
    await llm.close()


PATHS = ["../../etc/passwd", "/abs/path", "a/../../b", "..\\..\\win", "x" * 10_000, "nul\x00byte"]


@pytest.mark.parametrize("value", PATHS, ids=["dotdot", "abs", "mid", "backslash", "10k", "nul"])
async def test_path_like_ids_and_tags_never_leave_the_body_root(
    tmp_path: Path, provider: FakeProvider, value: str
) -> None:
    db, storage = await _pair(tmp_path)
    client = fake_openai_client(provider, default_headers={"X-Trace": "t"})
    llm = ml.LoggingLLM(client, db, storage, tags={"feature": value, "trace_id": value})
    with ml.tags(session_id=value, custom=value):
        resp = await llm.chat.completions.create(model="gpt-4o", messages=MSG)
    info = ml.call_info(resp)
    await llm.flush()
    await llm.close()
    [row] = _rows(tmp_path)
    clean = value.replace("\x00", "\ufffd")
    expected = clean if len(clean) <= 255 else clean[:254] + "…"
    assert row["feature"] == expected and row["session_id"] == expected  # clipped at 255
    assert orjson.loads(row["tags"])["custom"] == clean  # the JSON keeps it whole
    # Body files are named by our request id only, inside the body root.
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    outside = [p for p in files if p.parent != tmp_path and "bodies" not in p.parts]
    assert not outside, outside
    bodies = sorted((tmp_path / "bodies").rglob("*.json.gz"))
    assert [p.name for p in bodies] == [f"{info.request_id}.json.gz"]
    assert not (tmp_path.parent / "etc").exists() and not Path("/abs/path").exists()


async def test_provider_request_id_path_like_and_long_is_clipped_and_harmless(
    tmp_path: Path, provider: FakeProvider
) -> None:
    """The provider's request id comes back on an error: a hostile one is only text."""
    db, storage = await _pair(tmp_path)
    llm = ml.LoggingLLM(fake_openai_client(provider), db, storage)
    hostile = "../../" + "r" * 10_000

    class Failing(Exception):
        request_id = hostile

    class Client:
        async def ask(self) -> None:
            raise Failing("boom")

    llm2 = ml.LoggingLLM(Client(), db, storage, methods=["ask"])
    with pytest.raises(Failing):
        await llm2.ask()
    await llm2.flush()
    [row] = _rows(tmp_path)
    assert row["provider_request_id"] == hostile[:254] + "…"
    assert [p.name for p in (tmp_path / "bodies").rglob("*.json.gz")] == [
        f"{row['request_id']}.json.gz"
    ]
    await llm2.close()
    await llm.close()


# -- deep nesting --------------------------------------------------------------------


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"k": [value]}
    return value


async def test_ten_thousand_levels_of_nesting_in_request_and_response(tmp_path: Path) -> None:
    db, storage = await _pair(tmp_path)
    deep = _nested(10_000)
    client = PlainClient(payload=deep)
    llm = ml.LoggingLLM(client, db, storage, methods=["ask"])
    reply = await llm.ask(deep)
    assert reply.payload is deep  # the caller's result, untouched
    await llm.flush()
    [row] = _rows(tmp_path)
    assert row["status"] == "ok"
    body = await storage.get(row["body_ref"])
    assert "$unserializable" in body["request"]  # replaced by a marker, not lost
    assert "$unserializable" in body["response"]
    assert llm.stats().written == 1
    await llm.close()


# -- size cap ------------------------------------------------------------------------


async def test_body_over_the_cap_is_truncated_with_size_hash_and_head(
    tmp_path: Path, provider: FakeProvider
) -> None:
    db, storage = await _pair(tmp_path)
    llm = ml.LoggingLLM(fake_openai_client(provider), db, storage, max_body_bytes=256 * 1024)
    content = "0123456789abcdef" * 64 * 1024  # 1 MiB of text
    messages = [{"role": "user", "content": content}]
    await llm.chat.completions.create(model="gpt-4o", messages=messages)
    await llm.flush()
    [row] = _rows(tmp_path)
    assert "body_truncated" in row["usage_flags"].split(",")
    assert row["cost_status"] == "computed"  # the row is whole: only the body is cut
    body = await storage.get(row["body_ref"])
    request = body["request"]
    sent = orjson.dumps({"model": "gpt-4o", "messages": messages})
    assert request["$truncated"] is True
    assert request["original_bytes"] == len(sent)
    assert request["sha256"] == hashlib.sha256(sent).hexdigest()
    assert sent.decode().startswith(request["head"]) and len(request["head"]) == 64 * 1024
    assert body["response"]["choices"]  # the small response is kept whole
    assert body["request_id"] == row["request_id"] and body["model"] == "gpt-4o"
    assert os.path.getsize(next((tmp_path / "bodies").rglob("*.json.gz"))) < 256 * 1024
    await llm.close()


async def test_max_body_bytes_and_redact_hooks_are_checked(tmp_path: Path) -> None:
    db, storage = await _pair(tmp_path)
    with pytest.raises(ValueError, match="max_body_bytes"):
        ml.LoggingLLM(PlainClient(), db, storage, max_body_bytes=10)
    with pytest.raises(TypeError, match="redact hooks"):
        ml.LoggingLLM(PlainClient(), db, storage, redact=["not callable"])  # type: ignore[list-item]
    await db.close()
    await storage.close()


def _peak_rss() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM"))


def _reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # resets VmHWM to the current resident size (Linux)


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
async def test_fifty_megabyte_request_logs_truncated_without_doubling_memory(
    tmp_path: Path, provider: FakeProvider
) -> None:
    """50 MB through the real SDK: the row exists, the body is the truncated marker, and
    what logging adds to the peak resident memory (the request snapshot, once) stays
    under 3x the body. The same call on the unwrapped client is the baseline: the SDK and
    the fake provider make their own copies of the request, which are not ours.

    Resident memory, not tracemalloc: orjson reserves several times a huge string's size
    while it serializes it and touches only what it writes, and tracemalloc counts the
    reservation."""
    size = 50 * 2**20
    messages = [{"role": "user", "content": "x" * size}]
    plain = fake_openai_client(provider)

    async def peak(call: Any) -> tuple[int, float]:
        gc.collect()
        _reset_peak_rss()
        start, t0 = _peak_rss(), time.perf_counter()
        await call()
        elapsed = time.perf_counter() - t0
        provider.reset()  # the fake provider keeps every request it was sent
        return _peak_rss() - start, elapsed

    baseline, _ = await peak(
        lambda: plain.chat.completions.create(model="gpt-4o", messages=messages)
    )
    db, storage = await _pair(tmp_path)
    llm = ml.LoggingLLM(fake_openai_client(provider), db, storage)

    async def logged() -> None:
        await llm.chat.completions.create(model="gpt-4o", messages=messages)
        await llm.flush()

    logged_peak, _ = await peak(logged)
    [row] = _rows(tmp_path)
    assert "body_truncated" in row["usage_flags"].split(",")
    body = await storage.get(row["body_ref"])
    assert body["request"]["original_bytes"] > size
    added = logged_peak - baseline
    assert added < 3 * size, (added / size, baseline / size)
    await llm.close()
