"""The local-folder body store: layout, round trip, atomic writes, no path traversal."""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import json
import os
import shutil
import stat
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import majordomo_log as ml
from majordomo_log.record.ids import uuid7
from majordomo_log.stores.bodies import layout

WHEN = dt.datetime(2026, 3, 4, 23, 59, 59, tzinfo=dt.timezone.utc)


async def test_layout_and_round_trip(tmp_path: Path) -> None:
    storage = await ml.FileStorageAdapter.create(tmp_path / "bodies", mode="object")
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


@pytest.mark.parametrize("options", [{"compresslevel": 10}, {"compresslevel": -1}, {"mode": "x"}])
async def test_a_bad_option_is_a_config_error(tmp_path: Path, options: dict[str, Any]) -> None:
    with pytest.raises(ml.ConfigError) as info:
        await ml.FileStorageAdapter.create(tmp_path, **options)
    assert isinstance(info.value, ValueError)  # callers catching ValueError still catch it


async def test_a_failed_body_is_none_not_an_exception(tmp_path: Path) -> None:
    storage = await ml.FileStorageAdapter.create(tmp_path, mode="object")  # a file per body
    # A file where the day folder should be: that body cannot be written, the next one can.
    (tmp_path / "2026").write_text("in the way")
    other_day = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    refs = await storage.put_many([(uuid7(), WHEN, b"{}"), (uuid7(), other_day, b"{}")])
    assert refs[0] is None
    assert refs[1] is not None and refs[1].startswith("2025/01/01/")


# -- permissions: bodies hold prompts, so they are the owner's whatever the umask ------------


def _modes(top: Path) -> dict[str, int]:
    return {
        str(p.relative_to(top.parent)): stat.S_IMODE(p.stat().st_mode)
        for p in [top, *top.rglob("*")]
    }


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize("mode", ["object", "segment"])
@pytest.mark.parametrize("mask", [0o022, 0o000], ids=["umask-022", "umask-000"])
async def test_bodies_and_folders_are_owner_only_whatever_the_umask(
    tmp_path: Path, mask: int, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp_modes: list[int] = []
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:  # the temporary file, just before its rename
        temp_modes.append(stat.S_IMODE(os.stat(src).st_mode))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    other_day = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    with _umask(mask):
        storage = await ml.FileStorageAdapter.create(tmp_path / "made" / "bodies", mode=mode)
        await storage.put_many([(uuid7(), WHEN, b"{}"), (uuid7(), WHEN, b"{}")])
        await storage.put_many([(uuid7(), other_day, b"{}")])
        await storage.reopen()
    modes = _modes(tmp_path / "made")
    files = sum(name.endswith(".gz") for name in modes)
    assert (len(modes) - files, files) == ((8, 3) if mode == "object" else (10, 2))
    for name, perms in modes.items():
        expected = 0o600 if name.endswith(".gz") else 0o700
        assert perms == expected, f"{name}: {perms:o} under umask {mask:03o}"
    assert temp_modes and set(temp_modes) == {0o600}


async def test_an_existing_root_keeps_its_mode(tmp_path: Path) -> None:
    root = tmp_path / "bodies"
    root.mkdir()
    root.chmod(0o755)  # the operator's choice: not changed
    with _umask(0o022):
        storage = await ml.FileStorageAdapter.create(root)
        (ref,) = await storage.put_many([(uuid7(), WHEN, b"{}")])
    assert stat.S_IMODE(root.stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "2026").stat().st_mode) == 0o700
    assert stat.S_IMODE((root / str(ref).split("#")[0]).stat().st_mode) == 0o600


@pytest.mark.parametrize("mode", ["object", "segment"])
async def test_group_read_shares_bodies_with_the_root_folders_group(
    tmp_path: Path, mode: str
) -> None:
    root = tmp_path / "shared"
    root.mkdir()
    root.chmod(0o2750)  # install -d -m 2750 -g <readers> shared
    with _umask(0o077):
        storage = await ml.open_storage(f"file://{root}?group_read=1&mode={mode}")
        refs = await storage.put_many([(uuid7(), WHEN, b"{}"), (uuid7(), WHEN, b"{}")])
    assert all(refs)
    group = root.stat().st_gid
    for path in root.rglob("*"):
        perms = stat.S_IMODE(path.stat().st_mode)
        # folders inherit the setgid bit, and with it the group, from the root
        assert perms == (0o2750 if path.is_dir() else 0o640), f"{path}: {perms:o}"
        assert path.stat().st_gid == group


async def test_segments_are_the_default_and_zcat_reads_them(tmp_path: Path) -> None:
    storage = await ml.FileStorageAdapter.create(tmp_path / "bodies")
    assert storage.mode == "segment"
    ids = [uuid7(int(WHEN.timestamp() * 1000)) for _ in range(3)]
    payloads = [json.dumps({"request_id": rid, "text": "héllo\n😀"}).encode() for rid in ids]
    refs = await storage.put_many(list(zip(ids, [WHEN] * 3, payloads, strict=True)))
    files = list((tmp_path / "bodies").rglob("*.gz"))
    assert [f.relative_to(tmp_path / "bodies").as_posix() for f in files] == [
        f"2026/03/04/segments/{ids[0]}.seg.gz"
    ]
    assert all(ref and ref.startswith(f"2026/03/04/segments/{ids[0]}.seg.gz#") for ref in refs)
    for ref, payload in zip(refs, payloads, strict=True):
        assert await storage.get(ref or "") == json.loads(payload)
    zcat = shutil.which("zcat")
    if zcat is None:
        pytest.skip("no zcat on this machine")
    out = subprocess.run([zcat, str(files[0])], capture_output=True, check=True).stdout
    assert [json.loads(line) for line in out.splitlines()] == [json.loads(p) for p in payloads]
    # a bare request id names no member of a segment: the row's body_ref does
    with pytest.raises(ml.BodyNotFound, match="body_ref"):
        await storage.get(ids[0])


async def test_the_default_store_reads_bodies_written_one_file_each(tmp_path: Path) -> None:
    """A folder written in object mode (the default before) stays readable: by the
    reference on the row, and by a bare request id."""
    old = await ml.FileStorageAdapter.create(tmp_path / "bodies", mode="object")
    rid = uuid7(int(WHEN.timestamp() * 1000))
    (ref,) = await old.put_many([(rid, WHEN, json.dumps({"request_id": rid}).encode())])
    reader = await ml.open_storage(f"file://{tmp_path / 'bodies'}", read_only=True)
    assert isinstance(reader, ml.FileStorageAdapter) and reader.mode == "segment"
    assert await reader.get(ref or "") == {"request_id": rid}
    assert await reader.get(rid) == {"request_id": rid}


@pytest.mark.parametrize("writer", ["zlib", "isal"])
@pytest.mark.parametrize("mode", ["object", "segment"])
async def test_bodies_deflated_by_either_library_are_standard_gzip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: str, mode: str
) -> None:
    if writer == "isal" and layout.isal_zlib is None:
        pytest.skip("python-isal is not installed (the fast extra)")
    used: list[str] = []
    for name, module in (("zlib", zlib), ("isal", layout.isal_zlib)):
        if module is not None:
            real = module.compressobj
            monkeypatch.setattr(
                module, "compressobj", lambda *a, _n=name, _r=real: used.append(_n) or _r(*a)
            )
    monkeypatch.setattr(layout, "DEFLATE", writer)
    storage = await ml.FileStorageAdapter.create(tmp_path / "bodies", mode=mode)
    ids = [uuid7() for _ in range(3)]
    big = "x" * 600_000  # deflated in several pieces
    payloads = [json.dumps({"request_id": rid, "text": big[: 10**i]}).encode() for i, rid in
                enumerate(ids)]  # fmt: skip
    refs = await storage.put_many([(rid, WHEN, p) for rid, p in zip(ids, payloads, strict=True)])
    assert set(used) == {writer}
    monkeypatch.setattr(layout, "DEFLATE", "zlib")  # read back by the stdlib only
    for ref, payload in zip(refs, payloads, strict=True):
        assert await storage.get(ref or "") == json.loads(payload)
    files = list((tmp_path / "bodies").rglob("*.gz"))
    # whole files, as gzip and zcat read them: one segment of three, or three objects
    texts = [gzip.decompress(path.read_bytes()) for path in files]
    envelopes = [json.loads(line) for text in texts for line in text.splitlines()]
    assert sorted(e["request_id"] for e in envelopes) == sorted(ids)
    assert len(files) == (1 if mode == "segment" else 3)


def test_level_zero_is_stored_uncompressed_whichever_library() -> None:
    for deflate in ("zlib", "isal"):
        layout.DEFLATE = deflate
        try:
            member = layout.compress(b"abc" * 100, 0)
        finally:
            layout.DEFLATE = "zlib" if layout.isal_zlib is None else "isal"
        assert gzip.decompress(member) == b"abc" * 100 and len(member) > 300
