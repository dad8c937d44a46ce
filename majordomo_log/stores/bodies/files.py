"""Bodies as gzipped JSON files in a local folder (layout and modes: ``layout.py``).

Every file is written to a temporary name and renamed, so a reader never sees half
a body, and a whole batch is written in one worker-thread hop: a thread hop per
file would cap throughput near 3k bodies/s. (So no aiofiles: each of its opens, writes
and closes is a thread hop of its own.)

Bodies hold prompts and answers: files are created 0600 and folders 0700 whatever
the umask, as the spool is (``group_read=True``: 0640 and 0750, for a group that
reads them; see FileStorageAdapter).
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..._exceptions import BodyNotFound, ConfigError, StoreError, StoreUnavailable
from ..._log import warn_once
from ...schema import Body
from . import layout

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
    """``await FileStorageAdapter.create("./request_logs", mode="segment" | "object")``.

    ``segment`` (the default) writes each batch's bodies into one multi-member gzip
    file (``zcat`` prints them, one envelope per line), and each row's ``body_ref``
    names its member; ``object`` writes one ``.json.gz`` file per call. Measured with
    4-5 KB bodies in 1000-body batches, segments stored 6-9x more bodies/s here
    (bench/throughput.py, "bodies alone"): a file per call costs a create, a write and
    a rename each.

    Files are created 0600 and folders 0700 whatever the umask. ``group_read=True``
    makes them 0640 and 0750: give the root folder to the reading group with the
    setgid bit (``install -d -m 2750 -g llm-readers /var/log/llm``) and every folder
    made under it inherits the group. A root folder that already exists keeps its mode.
    ``read_only=True`` (readers such as ``majordomo-log show``) creates nothing: the
    folder must exist."""

    def __init__(
        self,
        root: Path,
        *,
        compresslevel: int = 1,
        mode: str = "segment",
        group_read: bool = False,
        read_only: bool = False,
    ) -> None:
        if not 0 <= compresslevel <= 9:
            raise ConfigError("compresslevel must be between 0 and 9")
        self.root = root
        self.url = f"file://{root}"
        self.compresslevel = compresslevel
        self.mode = layout.check_mode(mode)
        self.file_mode = 0o640 if group_read else 0o600
        self.folder_mode = 0o750 if group_read else 0o700
        self.read_only = read_only
        self.closed = False

    @classmethod
    async def create(
        cls, root: str | os.PathLike[str] = "request_logs", **options: Any
    ) -> FileStorageAdapter:
        path = Path(root).expanduser().resolve()
        if options.get("read_only"):
            if not path.is_dir():
                raise StoreError(f"no body folder at {path}")
            return cls(path, **options)
        folder_mode = 0o750 if options.get("group_read") else 0o700
        try:
            make_folders(path, folder_mode)
        except OSError as exc:
            raise StoreError(f"cannot create body folder {path}: {exc.strerror}") from exc
        if not os.access(path, os.W_OK):
            raise StoreError(f"body folder {path} is not writable")
        return cls(path, **options)

    def __repr__(self) -> str:
        return f"<FileStorageAdapter {str(self.root)!r} {self.mode}>"

    async def put_many(self, bodies: Sequence[Body]) -> list[str | None]:
        """See ``base.BodyStore.put_many``. A body whose request id or time cannot make
        a key (a tampered spool) is refused alone: None in its place."""
        if not bodies:
            return []
        if self.read_only:
            raise StoreError(f"{self.url}: the store was opened read-only")
        write = self._write_segment if self.mode == "segment" else self._write_objects

        async def put(batch: list[Body]) -> list[str | None]:
            return await asyncio.to_thread(write, batch)

        def refused(problem: str) -> None:
            warn_once(
                "body-refused",
                f"{self.root}:{problem}",
                "body store %s refused a body: %s (such bodies are not stored)",
                self.root,
                problem,
            )

        return await layout.put_checked(bodies, put, refused)

    def _write_file(self, key: str, data: bytes) -> None:
        path = self.root / key
        make_folders(path.parent, self.folder_mode)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            # Created with its final mode, never readable by others for a moment: the
            # umask can only take bits away, and fchmod gives back any it took.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, self.file_mode)
            with open(fd, "wb") as handle:
                if os.fstat(fd).st_mode & 0o777 != self.file_mode:
                    os.fchmod(fd, self.file_mode)
                handle.write(data)
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
            key = layout.body_key(request_id, started_at)
            try:
                self._write_file(key, layout.compress(payload, self.compresslevel))
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
        key, data, suffixes = layout.build_segment(bodies, self.compresslevel)
        what = f"a segment of {len(bodies)} bodies"
        try:
            self._write_file(key, data)
        except OSError as exc:
            if exc.errno in _TRANSIENT_ERRNOS:
                raise self._unavailable(exc, what) from exc
            self._refused(exc, what)
            return [None] * len(bodies)
        return [key + suffix for suffix in suffixes]

    def _path_for(self, ref: str) -> tuple[Path, tuple[int, int] | None]:
        """The file and byte range a reference names, or ``BodyNotFound``: a reference
        never leads outside the root, whatever a row holds."""
        if layout.is_request_id(ref):
            # A bare request id: its object-mode file, which a UUIDv7's time names. In
            # segment mode that finds only bodies written in object mode (before the
            # default changed, or by another writer); a segment's member is found by
            # the row's body_ref.
            ref = layout.key_for_request_id(ref)
        relative = ref.removeprefix("file://")
        if relative.startswith("/"):  # a file:// reference with this root's absolute path
            if not relative.startswith(f"{self.root}/"):
                raise BodyNotFound(
                    f"body reference {layout.shown_ref(ref)} points outside {self.root}"
                )
            relative = relative[len(f"{self.root}/") :]
        key, span = layout.parse_ref(relative)
        path = (self.root / key).resolve()  # a symlink may still point elsewhere
        if not path.is_relative_to(self.root):
            raise BodyNotFound(f"body reference {layout.shown_ref(ref)} points outside {self.root}")
        return path, span

    async def get(self, ref: str) -> dict[str, Any]:
        """The envelope for a reference (or a bare request id of a body written in
        object mode).
        ``BodyNotFound`` for any reference that names no body here: empty, a folder,
        outside the root, a range past the end of its file, not a gzipped envelope."""
        path, span = self._path_for(ref)
        try:
            data = await asyncio.to_thread(_read, path, span)
        except OSError as exc:
            if exc.errno in _NOT_A_BODY_ERRNOS:
                hint = ""
                if self.mode == "segment" and layout.is_request_id(ref):
                    hint = (
                        " (in segment mode a body is found by the reference stored on its"
                        " row, body_ref)"
                    )
                raise BodyNotFound(
                    f"no body at {layout.shown_ref(ref)} in {self.root}{hint}"
                ) from None
            raise StoreError(
                f"cannot read body {layout.shown_ref(ref)} in {self.root}: "
                f"{exc.strerror or type(exc).__name__}"
            ) from None
        if data is None:
            raise BodyNotFound(f"{layout.shown_ref(ref)} reaches past the end of its file")
        return layout.read_envelope(data, ref)

    async def reopen(self) -> None:
        """Nothing is held open between batches, so nothing is inherited across a fork:
        reopening makes sure the folder is still there and marks the store open."""
        if self.read_only:
            self.closed = False
            return
        try:
            await asyncio.to_thread(make_folders, self.root, self.folder_mode)
        except OSError as exc:
            raise StoreError(f"cannot create body folder {self.root}: {exc.strerror}") from exc
        self.closed = False

    async def close(self) -> None:
        self.closed = True  # nothing to release; recorded so a closed store is not reused


# Reading one of these found no body: nothing there, a folder, a path through a file,
# a name too long or a symlink loop.
_NOT_A_BODY_ERRNOS = frozenset(
    {errno.ENOENT, errno.EISDIR, errno.ENOTDIR, errno.ENAMETOOLONG, errno.ELOOP}
)


def make_folders(path: Path, mode: int) -> None:
    """``mkdir -p`` in which every folder made gets ``mode`` whatever the umask (a
    folder that exists is left as it is). ``os.makedirs`` gives the parents it makes
    the umask's mode."""
    missing = []
    while not path.is_dir():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode)
        except FileExistsError:  # another writer made it first, or a file is in the way
            if not folder.is_dir():
                raise
            continue
        # Not chmod(mode): that would clear a setgid bit inherited from the parent.
        if folder.stat().st_mode & 0o777 != mode:
            folder.chmod(mode | (folder.stat().st_mode & 0o7000))


def _read(path: Path, span: tuple[int, int] | None) -> bytes | None:
    """The file's bytes, or the span's; None if the span reaches past the end."""
    if span is None:
        return path.read_bytes()
    offset, length = span
    with path.open("rb") as f:
        if offset + length > os.fstat(f.fileno()).st_size:
            return None
        f.seek(offset)
        return f.read(length)
