"""One bad record costs only itself: hostile tag values, unreadable usage, odd text in
the body's head, and the tags stored as an HMAC (``hash_tags``)."""

from __future__ import annotations

import asyncio
import enum
import gzip
import json
import logging
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from duck_client import Acme, Reply
from servers import DIALECTS, isolated_db

import majordomo_log as ml
from majordomo_log.delivery import prepare as _delivery
from majordomo_log.record.values import storable
from majordomo_log.schema import COLUMNS


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


class Feature(str, enum.Enum):
    CHAT = "chat"


class Label(str):
    def __str__(self) -> str:
        return "overridden"


def _cycle() -> list[Any]:
    values: list[Any] = ["x"]
    values.append(values)
    return values


def _nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = [value]
    return value


HOSTILE_TAGS: dict[str, Any] = {
    "unprintable": Unprintable(),
    "huge_int": 2**70,
    "enormous_int": 2**5000,
    "cycle": _cycle(),
    "non_text_keys": {1: "one", (1, 2): "pair", None: "none"},
    "nested_surrogate": {"a": ["x\ud800y"]},
    "nested_nul": {"a": "b\x00c"},
    "nan": float("nan"),
    "deep": _nested(40),
    "bytes": b"\xffraw",
}


@pytest.mark.parametrize("name", sorted(HOSTILE_TAGS))
async def test_a_hostile_tag_costs_nothing_and_its_batch_is_written(name: str, stores: Any) -> None:
    llm = ml.LoggingLLM(Acme(), stores.db, stores.storage)
    for k in range(20):
        if k == 7:
            with ml.tags(**{name: HOSTILE_TAGS[name]}):
                await llm.complete(f"call {k}")
        else:
            await llm.complete(f"call {k}")
    stats = await llm.flush()
    await llm.close()
    assert (stats.written, stats.failed, stats.internal_errors) == (20, 0, 0)
    rows = stores.rows()
    assert len(rows) == 20
    assert all(r["body_ref"] for r in rows)  # no body orphaned, none lost
    tagged = [json.loads(r["tags"]) for r in rows if r["tags"] != "{}"]
    assert tagged == [{name: storable(HOSTILE_TAGS[name])}]


async def test_a_hostile_constructor_tag_costs_no_call(stores: Any) -> None:
    llm = ml.LoggingLLM(Acme(), stores.db, stores.storage, tags={"team": Unprintable(), "n": 2**64})
    for k in range(5):
        await llm.complete(f"call {k}")
    stats = await llm.close()
    assert (stats.written, stats.failed) == (5, 0)
    tags = {r["tags"] for r in stores.rows()}
    assert tags == {'{"team":"<unprintable Unprintable>","n":"18446744073709551616"}'}


def test_how_values_that_cannot_be_shown_are_stored() -> None:
    """The documented table of record/values.py, checked."""
    assert storable(Unprintable()) == "<unprintable Unprintable>"
    assert storable(2**63 - 1) == 2**63 - 1
    assert storable(2**63) == "9223372036854775808"
    assert storable(-(2**5000)) == "<int of 5001 bits>"
    assert storable(_cycle()) == ["x", "<cycle>"]
    assert storable({1: 2, None: 3}) == {"1": 2, "null": 3}
    assert storable(Feature.CHAT) == "chat"
    assert type(storable(Label("x"))) is str and storable(Label("x")) == "x"
    assert storable("a\x00b\udc80") == "a\ufffdb\ufffd"
    assert storable(float("inf")) == "inf"
    flat = storable(_nested(40))
    for _ in range(15):
        flat = flat[0]
    assert flat == ["<too deep>"]
    # A structure that shares one list along every path is walked within a node budget.
    shared: Any = ["leaf"]
    for _ in range(60):
        shared = [shared, shared]
    assert "<truncated>" in json.dumps(storable(shared))


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_text_tags_read_back_the_same_from_every_store(dialect: str, tmp_path: Path) -> None:
    async with isolated_db(dialect, tmp_path) as db:
        llm = ml.LoggingLLM(Acme(), db, None, close_stores=False)
        with ml.tags(feature=Feature.CHAT, workflow=Label("flow"), extra={"k": "a\x00b"}):
            await llm.complete("hi")
        stats = await llm.close()
        assert (stats.written, stats.failed) == (1, 0)
        (row,) = await db.fetch("SELECT feature, workflow, tags FROM llm_requests")
    assert (row["feature"], row["workflow"]) == ("chat", "flow")
    tags = row["tags"] if isinstance(row["tags"], dict) else json.loads(row["tags"])
    assert tags == {"feature": "chat", "workflow": "flow", "extra": {"k": "a\ufffdb"}}


# -- a row that cannot be built at all: kept in rejected/, the rest written ---------------


async def test_a_row_that_cannot_be_built_is_kept_in_rejected_and_the_rest_written(
    stores: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing a caller passes can make a row unbuildable any more (values are made
    # storable): a fault injected into the row builder stands for a bug of ours.
    doomed: set[str] = set()

    def build_row(record: Any, body_ref: Any) -> Any:
        if record.request_id in doomed:
            raise RuntimeError("a bug in the row builder")
        return real_build_row(record, body_ref)

    real_build_row = _delivery.build_row
    monkeypatch.setattr(_delivery, "build_row", build_row)
    llm = ml.LoggingLLM(Acme(), stores.db, stores.storage, spool=tmp_path / "spool")
    replies = [await llm.complete(f"call {k}") for k in range(10)]
    doomed.add(ml.call_info(replies[3]).request_id)
    stats = await llm.close()
    assert (stats.written, stats.failed, stats.internal_errors) == (9, 1, 0)
    assert len(stores.rows()) == 9
    spool = ml.Spool(tmp_path / "spool")
    (rejected,) = spool.rejected()
    (entry,) = spool.read(rejected).entries
    assert entry.request_id in doomed
    assert entry.error == "cannot build the row: RuntimeError: a bug in the row builder"
    assert entry.row[COLUMNS.index("body_ref")]  # its body was stored: the row points at it


async def test_a_malformed_usage_from_an_extractor_is_flagged_not_fatal(stores: Any) -> None:
    def extract(reply: Any) -> ml.Usage:
        return ml.Usage(input="many", output=-5, flags=[1])  # type: ignore[arg-type]

    llm = ml.LoggingLLM(Acme(), stores.db, stores.storage, usage_extractor=extract)
    reply = await llm.complete("hi")
    assert ml.call_info(reply).total_cost is None
    stats = await llm.close()
    assert (stats.written, stats.failed) == (1, 0)
    row = stores.one_row()
    assert (row["cost_status"], row["total_cost"]) == ("invalid_usage", None)
    assert row["usage_flags"] == "unreadable_flags,non_numeric_count,negative_count"


# -- usage that cannot be read is never $0 ---------------------------------------------


class RaisingUsage:
    @property
    def prompt_tokens(self) -> int:
        raise ValueError("usage is gone")


class WithUsage:
    model = "gpt-4o-mini"

    def __init__(self, usage: Any) -> None:
        self.usage = usage


class UsageRaises:
    model = "gpt-4o-mini"

    @property
    def usage(self) -> Any:
        raise ValueError("no usage")


class Unreadable:
    provider = "openai"

    async def complete(self, how: str) -> Any:
        return WithUsage(RaisingUsage()) if how == "property" else UsageRaises()


@pytest.mark.parametrize("how", ["property", "attribute"])
async def test_unreadable_usage_is_null_never_zero(how: str, stores: Any) -> None:
    llm = ml.LoggingLLM(Unreadable(), stores.db, stores.storage, methods=["complete"])
    result = await llm.complete(how)
    assert isinstance(result, (WithUsage, UsageRaises))
    await llm.close()
    row = stores.one_row()
    assert row["cost_status"] == "invalid_usage"
    assert row["total_cost"] is None and row["input_tokens"] is None
    assert "unreadable_usage" in row["usage_flags"]


# -- the body's head: odd text in the model name or the error message -------------------


class Failing:
    provider = "acme"

    async def complete(self, prompt: str, *, model: str) -> Reply:
        raise RuntimeError("bad \ud800 thing \x00 here")


async def test_a_lone_surrogate_in_the_model_or_error_keeps_the_body(stores: Any) -> None:
    llm = ml.LoggingLLM(Acme(), stores.db, stores.storage)
    await llm.complete("hi", model="gpt-\ud800-mini")
    failing = ml.LoggingLLM(Failing(), stores.db, stores.storage, methods=["complete"])
    with pytest.raises(RuntimeError):
        await failing.complete("hi", model="gpt-4o")
    await failing.close()
    await llm.close()
    rows = stores.rows()
    assert len(rows) == 2 and all(r["body_ref"] for r in rows)
    bodies = [json.loads(gzip.decompress(p.read_bytes())) for p in stores.body_files()]
    assert sorted(b["model"] for b in bodies) == ["gpt-4o", "gpt-\ufffd-mini"]
    (error,) = [b["error"] for b in bodies if b["error"]]
    assert error["message"] == "bad \ufffd thing \ufffd here"


# -- hash_tags: attribution stored pseudonymously ---------------------------------------


async def test_hashed_tags_are_stored_as_an_hmac_and_never_in_clear(
    stores: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="majordomo_log")
    secret = "tag-secret-for-this-test"
    llm = ml.LoggingLLM(
        Acme(),
        stores.db,
        stores.storage,
        hash_tags=("user_id", "customer"),
        key_hash_secret=secret,
        tags={"customer": "ACME Corp"},
        spool=tmp_path / "spool",
    )
    for user in ("alice@example.com", "bob@example.com", "alice@example.com"):
        with ml.tags(user_id=user, feature="chat"):
            await llm.complete("hi")
    await llm.close()
    rows = stores.rows()
    alice = ml.hash_tag("alice@example.com", secret)
    assert [r["user_id"] for r in rows].count(alice) == 2  # spend still groups per user
    assert {r["feature"] for r in rows} == {"chat"}  # other tags stay readable
    assert all(json.loads(r["tags"])["customer"] == ml.hash_tag("ACME Corp", secret) for r in rows)
    assert alice != ml.hash_tag("alice@example.com", "another secret")
    everything = json.dumps(rows) + caplog.text
    everything += "".join(gz.decode("utf-8", "replace") for _, gz in stores.raw_body_bytes())
    everything += "".join(p.read_text() for p in (tmp_path / "spool").rglob("*.jsonl"))
    for clear in ("alice@example.com", "bob@example.com", "ACME Corp"):
        assert clear not in everything


# -- objects that are not what they claim ----------------------------------------------


class AttrDict(dict[str, Any]):
    """The attribute-style dict idiom: a missing attribute raises KeyError."""

    __getattr__ = dict.__getitem__


class AttrDictClient:
    provider = "openai"

    async def complete(self, prompt: str) -> AttrDict:
        usage = {"prompt_tokens": 10, "completion_tokens": 5}
        return AttrDict(model="gpt-4o-mini", usage=usage)


async def test_a_response_whose_getattr_raises_is_logged_and_flush_returns(
    stores: Any, tmp_path: Path
) -> None:
    llm = ml.LoggingLLM(
        AttrDictClient(), stores.db, stores.storage, methods=["complete"], spool=tmp_path / "s"
    )
    for _ in range(5):
        await llm.complete("hi")
    stats = await asyncio.wait_for(llm.flush(), 60)  # the net of a hang, not a timing
    assert (stats.written, stats.failed, stats.pending, stats.internal_errors) == (5, 0, 0, 0)
    await llm.close()
    assert {r["cost_status"] for r in stores.rows()} == {"computed"}


async def test_objects_that_only_claim_to_be_text_cost_nothing(stores: Any) -> None:
    """A mock with spec=str (or a lazy proxy) passes isinstance(x, str) but is no str."""
    fake = mock.Mock(spec=str)
    llm = ml.LoggingLLM(Acme(), stores.db, stores.storage, tags={"team": fake})
    for k in range(5):
        with ml.tags(user_id=mock.Mock(spec=int), score=mock.Mock(spec=float)):
            await llm.complete(f"call {k}", model=fake if k == 3 else "gpt-4o-mini")
    stats = await llm.close()
    assert (stats.written, stats.failed, stats.internal_errors) == (5, 0, 0)
    rows = stores.rows()
    assert sum(r["model"].startswith("<Mock spec='str'") for r in rows) == 1
    tags = json.loads(rows[0]["tags"])
    assert tags["team"].startswith("<Mock spec='str'")
    assert tags["user_id"].startswith("<Mock spec='int'")
    assert isinstance(ml.hash_tag(fake), str)


async def test_each_tag_has_its_own_budget(stores: Any) -> None:
    llm = ml.LoggingLLM(Acme(), stores.db, stores.storage, hash_tags=("user_id",))
    with ml.tags(items=list(range(20_000)), blob="x" * 100_000, user_id="u-42", feature="chat"):
        await llm.complete("hi")
    await llm.close()
    row = stores.one_row()
    assert (row["feature"], row["user_id"]) == ("chat", ml.hash_tag("u-42"))
    tags = json.loads(row["tags"])
    assert tags["items"][-1] == "<truncated>" and len(tags["items"]) < 10_002
    assert len(tags["blob"]) <= 65_536 and tags["blob"].endswith("…")


async def test_tags_pass_the_secret_rules(stores: Any) -> None:
    key = "sk-proj-" + "TagSecretTest0123456789abcdef"
    llm = ml.LoggingLLM(Acme(), stores.db, stores.storage)
    with ml.tags(db_password="pw-tag-secret-0123", feature=key, detail={"api_key": "abc123xyz"}):
        await llm.complete("hi")
    await llm.close()
    row = stores.one_row()
    tags = json.loads(row["tags"])
    assert tags == {
        "db_password": "[REDACTED]",
        "feature": "sk-[REDACTED]",
        "detail": {"api_key": "[REDACTED]"},
    }
    assert row["feature"] == "sk-[REDACTED]"
