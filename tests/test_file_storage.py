"""The local-folder body store: layout, round trip, atomic writes, no path traversal."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import pytest

import majordomo_log as ml
from majordomo_log._ids import uuid7

WHEN = dt.datetime(2026, 3, 4, 23, 59, 59, tzinfo=dt.timezone.utc)


async def test_layout_and_round_trip(tmp_path: Path) -> None:
    storage = await ml.FileStorageAdapter.create(tmp_path / "bodies")
    rid = uuid7(int(WHEN.timestamp() * 1000))
    payload = json.dumps({"request": {"messages": ["héllo 😀"]}, "response": None}).encode()
    (ref,) = await storage.put_many([(rid, WHEN, payload)])
    assert ref == f"2026/03/04/{rid}.json.gz"
    path = tmp_path / "bodies" / ref
    assert json.loads(gzip.decompress(path.read_bytes())) == json.loads(payload)
    assert await storage.get(ref) == json.loads(payload)
    assert await storage.get(rid) == json.loads(payload)  # a bare UUIDv7 knows its date
    leftovers = [p for p in (tmp_path / "bodies").rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
    await storage.close()
    await storage.close()


async def test_empty_and_large_bodies(tmp_path: Path) -> None:
    storage = await ml.FileStorageAdapter.create(tmp_path)
    big = json.dumps({"text": "x" * 5_000_000}).encode()
    ids = [uuid7(), uuid7()]
    refs = await storage.put_many([(ids[0], WHEN, b"{}"), (ids[1], WHEN, big)])
    assert await storage.get(refs[0] or "") == {}
    assert (await storage.get(refs[1] or ""))["text"] == "x" * 5_000_000


@pytest.mark.parametrize("ref", ["../../etc/passwd", "/etc/passwd", "2026/../../../x.json.gz"])
async def test_references_cannot_escape_the_folder(tmp_path: Path, ref: str) -> None:
    storage = await ml.FileStorageAdapter.create(tmp_path / "bodies")
    with pytest.raises(ml.BodyNotFound):
        await storage.get(ref)


async def test_missing_body_is_body_not_found(tmp_path: Path) -> None:
    storage = await ml.FileStorageAdapter.create(tmp_path)
    with pytest.raises(ml.BodyNotFound):
        await storage.get(uuid7())


async def test_uncreatable_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(ml.StoreError, match="cannot create body folder"):
        await ml.FileStorageAdapter.create(tmp_path / "a-file" / "bodies")


async def test_a_failed_body_is_none_not_an_exception(tmp_path: Path) -> None:
    storage = await ml.FileStorageAdapter.create(tmp_path)
    # A file where the day folder should be: that body cannot be written, the next one can.
    (tmp_path / "2026").write_text("in the way")
    other_day = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    refs = await storage.put_many([(uuid7(), WHEN, b"{}"), (uuid7(), other_day, b"{}")])
    assert refs[0] is None
    assert refs[1] is not None and refs[1].startswith("2025/01/01/")
