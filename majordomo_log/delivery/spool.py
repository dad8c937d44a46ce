"""The local spool: where records wait on disk when a store cannot take them.

A spool is a directory of append-only batch files. Each file is written under a
temporary name, fsynced and renamed, so a crash leaves either the whole batch or
nothing: a reader never sees a torn file. Names start with the creation time in
nanoseconds, so sorting them is replay order.

    <dir>/<time_ns>-<pid>-<seq>.jsonl            waiting to be replayed
    <dir>/rejected/<time_ns>-<pid>-<seq>.jsonl   rows a store refused, with its error

A file is JSON lines: a header, then one line per record (its finished row, plus
its body envelope if the body is not stored yet, or the reference if it is) or per
outcome update. Rows are stored finished (priced, redacted) so a replay needs
neither the price table nor the client that made the call.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import itertools
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from .._exceptions import SpoolCorrupt, SpoolFull
from ..schema import COLUMNS, OutcomeUpdate, Row

SPOOL_FORMAT = "majordomo-log/spool@1"
DEFAULT_MAX_BYTES = 1 << 30
SPOOL_DIR_ENV = "MAJORDOMO_LOG_SPOOL_DIR"
_SUFFIX = ".jsonl"
_RESCAN_SECONDS = 5.0  # other processes may share the directory: recount this often
# A row spooled by a version before the columns that have defaults (migration 0003 on).
_FEWEST_VALUES = len(COLUMNS) - len(Row._field_defaults)

try:  # advisory locks keep two processes from replaying one file at once
    import fcntl
except ImportError:  # pragma: no cover - Windows: replay is idempotent, so it only costs work
    fcntl = None  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    """One record in the spool: its row, and its body if that is not stored yet."""

    row: Row
    body: bytes | None = None  # the JSON envelope, still to be stored
    body_ref: str | None = None  # where the body already is (the row still needs it)
    error: str | None = None  # why a store refused it (rejected files only)

    @property
    def request_id(self) -> str:
        return str(self.row.request_id)


@dataclass(frozen=True, slots=True)
class SpoolBatch:
    path: Path
    reason: str
    created: str
    db: str | None
    storage: str | None
    error: str | None
    entries: list[SpoolEntry] = field(default_factory=list)
    outcomes: list[OutcomeUpdate] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SpoolStatus:
    directory: Path
    files: int
    records: int
    bytes: int
    oldest: dt.datetime | None
    rejected_files: int
    rejected_records: int


def default_spool_dir(db_url: str, storage_url: str | None) -> Path:
    """One directory per pair of stores, so a replay never writes into the wrong database:
    ``$MAJORDOMO_LOG_SPOOL_DIR`` (or the user cache directory) / spool / a hash of the URLs."""
    key = hashlib.sha256(f"{db_url}\0{storage_url or ''}".encode()).hexdigest()[:16]
    return spool_root() / key


def spool_root() -> Path:
    """``$MAJORDOMO_LOG_SPOOL_DIR``, or the user's cache directory / spool."""
    base = os.environ.get(SPOOL_DIR_ENV)
    if base:
        return Path(base).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("majordomo-log")) / "spool"


class Spool:
    """An append-only directory of record batches waiting for a store (see module doc)."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        fsync: bool = True,
    ) -> None:
        if max_bytes < 1:
            raise ValueError("spool max_bytes must be positive")
        self.directory = Path(directory).expanduser()
        self.max_bytes = max_bytes
        self.fsync = fsync
        self._seq = itertools.count()
        self._bytes: int | None = None  # of the whole directory; None: count on next use
        self._counted_at = 0.0

    def __repr__(self) -> str:
        return f"<Spool {str(self.directory)!r}>"

    # -- writing ------------------------------------------------------------------

    def append(
        self,
        entries: Sequence[SpoolEntry],
        outcomes: Sequence[OutcomeUpdate] = (),
        *,
        reason: str,
        db: str | None,
        storage: str | None,
        error: str | None = None,
        rejected: bool = False,
    ) -> Path:
        """Write one batch durably; raises ``SpoolFull`` when it cannot."""
        header = {
            "format": SPOOL_FORMAT,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(),
            "reason": reason,
            "db": db,
            "storage": storage,
            "error": error,
        }
        lines = [orjson.dumps(header)]
        for entry in entries:
            line: dict[str, Any] = {"row": list(entry.row)}
            if entry.body is not None:
                line["body"] = entry.body.decode("utf-8", "replace")
            if entry.body_ref is not None:
                line["body_ref"] = entry.body_ref
            if entry.error is not None:
                line["error"] = entry.error
            lines.append(orjson.dumps(line, default=_encode, option=_PASSTHROUGH))
        for request_id, outcome, when in outcomes:
            lines.append(orjson.dumps({"outcome": [request_id, outcome, when.isoformat()]}))
        data = b"\n".join(lines) + b"\n"
        folder = self.directory / "rejected" if rejected else self.directory
        used = self.used_bytes()
        if not rejected and used + len(data) > self.max_bytes:
            raise SpoolFull(
                f"spool {self.directory} is full ({used} of {self.max_bytes} bytes)", "spool_full"
            )
        name = f"{time.time_ns():020d}-{os.getpid()}-{next(self._seq)}{_SUFFIX}"
        path = folder / name
        tmp = folder / f".{name}.tmp"
        try:
            # Owner-only: the spool holds bodies (redacted, but still the users' prompts).
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
                handle.write(data)
                if self.fsync:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(tmp, path)
            if self.fsync:
                _fsync_dir(folder)
        except OSError as exc:
            try:
                tmp.unlink()
            except OSError:
                pass
            full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
            raise SpoolFull(
                f"cannot write to spool {folder}: {exc.strerror or exc}",
                "spool_full" if full else "spool_error",
            ) from exc
        if self._bytes is not None:
            self._bytes += len(data)
        return path

    # -- reading ------------------------------------------------------------------

    def pending(self) -> list[Path]:
        """Batch files waiting for replay, oldest first."""
        return _batch_files(self.directory)

    def rejected(self) -> list[Path]:
        return _batch_files(self.directory / "rejected")

    def records_in(self, path: Path) -> int:
        """The rows a batch file holds, counted without parsing them (0 once it is gone)."""
        return _count_records(path)

    def read(self, path: Path) -> SpoolBatch:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise SpoolCorrupt(f"cannot read {path}: {exc.strerror or exc}") from exc
        lines = raw.splitlines()
        try:
            header = orjson.loads(lines[0]) if lines else None
            if not isinstance(header, dict) or header.get("format") != SPOOL_FORMAT:
                raise ValueError("no spool header")
            entries: list[SpoolEntry] = []
            outcomes: list[OutcomeUpdate] = []
            for line in lines[1:]:
                item = orjson.loads(line)
                if "outcome" in item:
                    rid, outcome, when = item["outcome"]
                    outcomes.append((rid, outcome, dt.datetime.fromisoformat(when)))
                    continue
                body = item.get("body")
                values = item["row"]
                if not isinstance(values, list):
                    raise ValueError("a row that is not a list")
                if not _FEWEST_VALUES <= len(values) <= len(COLUMNS):
                    # Not partly written: a row that does not fit the table means a
                    # file edited by hand or written by another version of the schema.
                    # (A row of an older schema lacks the columns added since, which
                    # have defaults: it is read, and they are NULL.)
                    raise ValueError(
                        f"a row of {len(values)} values where llm_requests has "
                        f"{len(COLUMNS)} columns"
                    )
                entries.append(
                    SpoolEntry(
                        Row(*(_decode(v) for v in values)),
                        None if body is None else body.encode("utf-8"),
                        item.get("body_ref"),
                        item.get("error"),
                    )
                )
        except (ValueError, KeyError, TypeError) as exc:
            raise SpoolCorrupt(f"{path} is not a readable spool file: {exc}") from exc
        return SpoolBatch(
            path,
            str(header.get("reason")),
            str(header.get("created")),
            header.get("db"),
            header.get("storage"),
            header.get("error"),
            entries,
            outcomes,
        )

    def remove(self, path: Path) -> None:
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return  # another process replayed it first
        if self._bytes is not None and path.parent == self.directory:
            self._bytes = max(0, self._bytes - size)

    def quarantine(self, path: Path) -> Path:
        """Move an unreadable file aside (to rejected/, renamed ``.corrupt``) for a person."""
        target = self.directory / "rejected" / (path.name + ".corrupt")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        self._bytes = None
        return target

    @contextmanager
    def claim(self, path: Path) -> Iterator[bool]:
        """Hold an exclusive lock on a batch file while replaying it; yields False if another
        process holds it (or it is gone)."""
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed by the with below
        except FileNotFoundError:
            yield False
            return
        with handle:
            if fcntl is not None:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    yield False
                    return
            yield path.exists()  # replayed and removed between listing and locking

    # -- accounting ---------------------------------------------------------------

    def used_bytes(self) -> int:
        now = time.monotonic()
        if self._bytes is None or now - self._counted_at > _RESCAN_SECONDS:
            self._bytes = sum(_size(p) for p in self.pending())
            self._counted_at = now
        return self._bytes

    def status(self) -> SpoolStatus:
        pending, rejected = self.pending(), self.rejected()
        oldest = None
        if pending:
            oldest = dt.datetime.fromtimestamp(
                int(pending[0].name.split("-", 1)[0]) / 1e9, dt.timezone.utc
            )
        return SpoolStatus(
            self.directory,
            len(pending),
            sum(_count_records(p) for p in pending),
            sum(_size(p) for p in pending),
            oldest,
            len(rejected),
            sum(_count_records(p) for p in rejected),
        )


def _batch_files(folder: Path) -> list[Path]:
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):  # never created, or cannot be
        return []
    return [folder / n for n in sorted(names) if n.endswith(_SUFFIX) and not n.startswith(".")]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _count_records(path: Path) -> int:
    try:
        with open(path, "rb") as handle:
            return sum(1 for line in handle if line.startswith(b'{"row"'))
    except FileNotFoundError:
        return 0


def _fsync_dir(folder: Path) -> None:
    """The rename itself must survive a crash, not only the file's bytes."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms that cannot open a directory
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


_PASSTHROUGH = orjson.OPT_PASSTHROUGH_DATETIME  # datetimes come to _encode, to be tagged


def _encode(value: Any) -> Any:
    # Tagged, so that a string that looks like a number or a date stays a string.
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, dt.datetime):
        return {"$datetime": value.isoformat()}
    raise TypeError(f"cannot spool a {type(value).__name__}")


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "$decimal" in value:
            return Decimal(value["$decimal"])
        if "$datetime" in value:
            return dt.datetime.fromisoformat(value["$datetime"])
    return value
