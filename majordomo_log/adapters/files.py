"""Bodies as gzipped JSON files in a local folder.

Layout: ``{root}/YYYY/MM/DD/{request_id}.json.gz`` (UTC date of the call), one
envelope per call, readable with ``zcat``. Each file is written to a temporary
name and renamed, so a reader never sees half a body. A whole batch is written
in one worker-thread hop: a thread hop per file would cap throughput near
3k bodies/s.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from .._exceptions import BodyNotFound, StoreError
from .._log import logger
from .base import Body

_REQUEST_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$")


def body_key(request_id: str, started_at: dt.datetime) -> str:
    """The date-partitioned relative key shared by the file and S3 layouts."""
    day = started_at.astimezone(dt.timezone.utc)
    return f"{day:%Y/%m/%d}/{request_id}.json.gz"


def key_for_request_id(request_id: str) -> str:
    """A UUIDv7 carries its creation time, so its key can be derived without the row."""
    unix_ms = int(request_id.replace("-", "")[:12], 16)
    return body_key(request_id, dt.datetime.fromtimestamp(unix_ms / 1000, dt.timezone.utc))


class FileStorageAdapter:
    """``await FileStorageAdapter.create("./request_logs")``."""

    def __init__(self, root: Path, *, compresslevel: int = 1) -> None:
        if not 0 <= compresslevel <= 9:
            raise ValueError("compresslevel must be between 0 and 9")
        self.root = root
        self.url = f"file://{root}"
        self.compresslevel = compresslevel
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
        return f"<FileStorageAdapter {str(self.root)!r}>"

    async def put_many(self, bodies: Sequence[Body]) -> list[str | None]:
        return await asyncio.to_thread(self._write_all, bodies)

    def _write_all(self, bodies: Sequence[Body]) -> list[str | None]:
        refs: list[str | None] = []
        made: set[Path] = set()
        for request_id, started_at, payload in bodies:
            key = body_key(request_id, started_at)
            path = self.root / key
            try:
                if path.parent not in made:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    made.add(path.parent)
                tmp = path.with_name(f".{path.name}.tmp")
                tmp.write_bytes(gzip.compress(payload, compresslevel=self.compresslevel, mtime=0))
                os.replace(tmp, path)
                refs.append(key)
            except OSError as exc:
                logger.warning("could not store body %s: %s", request_id, exc.strerror)
                refs.append(None)
        return refs

    def _path_for(self, ref: str) -> Path:
        key = key_for_request_id(ref) if _REQUEST_ID.match(ref) else ref
        key = key.removeprefix("file://")
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise BodyNotFound(f"body reference {ref!r} points outside {self.root}")
        return path

    async def get(self, ref: str) -> dict[str, Any]:
        path = self._path_for(ref)
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError as exc:
            raise BodyNotFound(f"no body at {path}") from exc
        result: dict[str, Any] = orjson.loads(gzip.decompress(data))
        return result

    async def close(self) -> None:
        self.closed = True  # nothing to release; recorded so a closed store is not reused
