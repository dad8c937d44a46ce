"""Bodies as gzipped JSON files in a local folder (layout and modes: ``_bodies``).

Every file is written to a temporary name and renamed, so a reader never sees half
a body, and a whole batch is written in one worker-thread hop: a thread hop per
file would cap throughput near 3k bodies/s.
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from .._exceptions import BodyNotFound, StoreError, StoreUnavailable
from .._log import warn_once
from ._bodies import (
    body_key,
    build_segment,
    check_mode,
    compress,
    decompress,
    is_request_id,
    key_for_request_id,
    split_ref,
)
from .base import Body

__all__ = ["FileStorageAdapter", "body_key", "key_for_request_id"]

# A write failing with one of these may succeed later unchanged: out of space or quota,
# a failing or read-only-remounted disk, out of descriptors or memory, a network file
# system timing out. Others (permission denied, name too long, not a directory) are
# the configuration's or the body's, and stay.
_TRANSIENT_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "ENOSPC", "EDQUOT", "EIO", "EROFS", "EMFILE", "ENFILE", "ENOMEM", "ENOBUFS",
        "EAGAIN", "EBUSY", "EINTR", "ETIMEDOUT", "ESTALE", "ENOTCONN", "EHOSTDOWN",
    )
    if hasattr(errno, name)
)  # fmt: skip


class FileStorageAdapter:
    """``await FileStorageAdapter.create("./request_logs", mode="object" | "segment")``."""

    def __init__(self, root: Path, *, compresslevel: int = 1, mode: str = "object") -> None:
        if not 0 <= compresslevel <= 9:
            raise ValueError("compresslevel must be between 0 and 9")
        self.root = root
        self.url = f"file://{root}"
        self.compresslevel = compresslevel
        self.mode = check_mode(mode)
        self.closed = False

    @classmethod
    async def create(
        cls, root: str | os.PathLike[str] = "request_logs", **options: Any
    ) -> FileStorageAdapter:
        path = Path(root).expanduser().resolve()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create body folder {path}: {exc.strerror}") from exc
        if not os.access(path, os.W_OK):
            raise StoreError(f"body folder {path} is not writable")
        return cls(path, **options)

    def __repr__(self) -> str:
        return f"<FileStorageAdapter {str(self.root)!r} {self.mode}>"

    async def put_many(self, bodies: Sequence[Body]) -> list[str | None]:
        if not bodies:
            return []
        if self.mode == "segment":
            return await asyncio.to_thread(self._write_segment, bodies)
        return await asyncio.to_thread(self._write_objects, bodies)

    def _write_file(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except OSError:
            # A half-written file on a full disk holds the space the retry needs.
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            raise

    def _unavailable(self, exc: OSError, what: str) -> StoreUnavailable:
        return StoreUnavailable(
            f"cannot store {what} in {self.root}: {exc.strerror or type(exc).__name__}"
        )

    def _refused(self, exc: OSError, what: str) -> None:
        warn_once(
            "body-store-refused",
            f"{self.root}:{exc.errno}",
            "could not store %s in %s: %s (bodies refused this way are not retried)",
            what,
            self.root,
            exc.strerror or type(exc).__name__,
        )

    def _write_objects(self, bodies: Sequence[Body]) -> list[str | None]:
        refs: list[str | None] = []
        for request_id, started_at, payload in bodies:
            key = body_key(request_id, started_at)
            try:
                self._write_file(key, compress(payload, self.compresslevel))
                refs.append(key)
            except OSError as exc:
                if exc.errno in _TRANSIENT_ERRNOS:
                    # The whole batch is put again later; the bodies written so far
                    # are simply written over with the same bytes.
                    raise self._unavailable(exc, f"body {request_id}") from exc
                self._refused(exc, f"body {request_id}")
                refs.append(None)
        return refs

    def _write_segment(self, bodies: Sequence[Body]) -> list[str | None]:
        key, data, suffixes = build_segment(bodies, self.compresslevel)
        what = f"a segment of {len(bodies)} bodies"
        try:
            self._write_file(key, data)
        except OSError as exc:
            if exc.errno in _TRANSIENT_ERRNOS:
                raise self._unavailable(exc, what) from exc
            self._refused(exc, what)
            return [None] * len(bodies)
        return [key + suffix for suffix in suffixes]

    def _path_for(self, key: str, ref: str) -> Path:
        if key.startswith("file://"):
            key = key[len("file://") :]
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise BodyNotFound(f"body reference {ref!r} points outside {self.root}")
        return path

    async def get(self, ref: str) -> dict[str, Any]:
        if is_request_id(ref) and self.mode == "segment":
            raise BodyNotFound(
                "in segment mode a body is found by the reference stored on its row (body_ref)"
            )
        key, span = split_ref(key_for_request_id(ref) if is_request_id(ref) else ref)
        path = self._path_for(key, ref)
        try:
            data = await asyncio.to_thread(_read, path, span)
        except FileNotFoundError as exc:
            raise BodyNotFound(f"no body at {path}") from exc
        try:
            result: dict[str, Any] = orjson.loads(decompress(data, ref))
        except orjson.JSONDecodeError as exc:  # e.g. a range spanning two members
            raise BodyNotFound(f"the body at {ref!r} is not one JSON envelope") from exc
        return result

    async def reopen(self) -> None:
        """Nothing is held open between batches, so nothing is inherited across a fork:
        reopening makes sure the folder is still there and marks the store open."""
        try:
            await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create body folder {self.root}: {exc.strerror}") from exc
        self.closed = False

    async def close(self) -> None:
        self.closed = True  # nothing to release; recorded so a closed store is not reused


def _read(path: Path, span: tuple[int, int] | None) -> bytes:
    if span is None:
        return path.read_bytes()
    offset, length = span
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(length)
