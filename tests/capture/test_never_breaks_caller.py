"""Whatever goes wrong inside majordomo-log, the caller's LLM call goes through."""

from __future__ import annotations

from pathlib import Path

import pytest
from openai.types.chat import ChatCompletion

import majordomo_log as ml
from majordomo_log.capture import wrapper as _wrapper
from majordomo_log.testing import FakeProvider, fake_openai_client


async def _llm(tmp_path: Path) -> ml.LoggingLLM:  # type: ignore[type-arg]
    db = await ml.SqliteAdapter.create(tmp_path / "log.db")
    storage = await ml.FileStorageAdapter.create(tmp_path / "bodies", mode="object")
    return ml.LoggingLLM(fake_openai_client(FakeProvider()), db, storage)


async def test_a_failure_building_the_record_still_returns_the_response(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    llm = await _llm(tmp_path)

    def broken_tags(*_: object) -> None:
        raise RuntimeError("tag lookup exploded")

    monkeypatch.setattr(_wrapper, "current_tags", broken_tags)
    resp = await llm.chat.completions.create(model="gpt-4o", messages=[])
    assert isinstance(resp, ChatCompletion)
    assert llm.stats().internal_errors == 1
    assert "could not log a call (RuntimeError" in caplog.text
    await llm.close()


async def test_a_failure_after_the_response_still_returns_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    llm = await _llm(tmp_path)

    def broken_remember(*_: object) -> None:
        raise TypeError("cannot remember")

    monkeypatch.setattr(_wrapper, "remember", broken_remember)
    resp = await llm.chat.completions.create(model="gpt-4o", messages=[])
    assert isinstance(resp, ChatCompletion)
    assert llm.stats().internal_errors == 1
    await llm.close()


class Reply:
    def __init__(self) -> None:
        self.input_tokens, self.output_tokens, self.model = 3, 4, "gpt-4o"


class OddClient:
    async def ask(self, payload: object) -> Reply:
        return Reply()


class NoRepr:
    def __repr__(self) -> str:
        raise ValueError("no repr for you")


@pytest.mark.parametrize(
    ("payload", "readable"),
    [
        ({"blob": b"\x00\xff"}, {"blob": {"$bytes_base64": "AP8="}}),
        ({"n": 2**70}, "$unserializable"),
        ({1: "int key"}, {"1": "int key"}),
        ({"odd": NoRepr()}, "$unserializable"),
    ],
)
async def test_requests_json_cannot_hold_are_stored_readably(
    tmp_path: Path, payload: object, readable: object
) -> None:
    db = await ml.SqliteAdapter.create(tmp_path / "log.db")
    storage = await ml.FileStorageAdapter.create(tmp_path / "bodies", mode="object")
    llm = ml.LoggingLLM(OddClient(), db, storage)
    reply = await llm.ask(payload)
    info = ml.call_info(reply)
    await llm.flush()
    body = await storage.get(info.request_id)
    request = body["request"]
    if isinstance(readable, str):
        assert readable in request
    else:
        assert request["args"][0] == readable
    await llm.close()


async def test_circular_request_is_logged_not_fatal(tmp_path: Path) -> None:
    db = await ml.SqliteAdapter.create(tmp_path / "log.db")
    storage = await ml.FileStorageAdapter.create(tmp_path / "bodies", mode="object")
    llm = ml.LoggingLLM(OddClient(), db, storage)
    circle: list[object] = []
    circle.append(circle)
    reply = await llm.ask(circle)
    await llm.flush()
    body = await storage.get(ml.call_info(reply).request_id)
    assert "$unserializable" in body["request"]
    assert llm.stats().written == 1
    await llm.close()
