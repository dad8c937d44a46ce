"""Starting the writer process (``writer="process"``) and holding on to it.

``fork``: the child is a copy of the application, made from the sender thread; it
inherits the stores (and reopens them, as a gunicorn worker does: ``stores/fork.py``),
the spool and the pinned hooks (``delivery/wire.py``), so nothing is pickled and no
secret is passed at all. ``spawn``: a fresh interpreter (``python -c``, not
multiprocessing's spawn, which would re-run an unguarded ``__main__``); its argv holds
the number of its end of the pipe and nothing else, its environment is the
application's, and the stores' recipes travel over the pipe: SQLite and file stores
by their paths, any other store pickled (so it must pickle). Stores whose connection
arguments are private to the adapter (PostgreSQL, MySQL, S3) need ``fork``.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from .._exceptions import ConfigError
from ..stores.base import BodyStore, MetadataStore
from ..stores.bodies.files import FileStorageAdapter
from ..stores.sql.sqlite import SqliteAdapter
from . import child as child_main
from .options import QueueOptions, RetryOptions, StartMethod

Recipe = tuple[Any, ...]
_SPAWN_CODE = "from majordomo_log.delivery.child import main; main()"


class ChildFailed(Exception):
    """The writer process could not be started (or said nothing in time)."""


@dataclass(frozen=True)
class Setup:
    """What a child needs besides its stores."""

    queue: QueueOptions
    retries: RetryOptions
    spool: tuple[str, int, bool] | None  # directory, max_bytes, fsync


def default_method() -> StartMethod:
    # fork is Linux's default and the cheap one; macOS's fork is unsafe with system
    # frameworks (Python's default there is spawn), and Windows has none.
    return "fork" if sys.platform.startswith("linux") and hasattr(os, "fork") else "spawn"


def store_recipe(store: MetadataStore | BodyStore | None) -> Recipe | None:
    """How a spawned child opens ``store``: ConfigError if it cannot."""
    if store is None:
        return None
    if isinstance(store, SqliteAdapter):
        if store.path == ":memory:":
            raise ConfigError("writer='process' cannot write to an in-memory SQLite database")
        return ("sqlite", store.path)
    if isinstance(store, FileStorageAdapter):
        return ("file", str(store.root), store.compresslevel, store.mode, store.file_mode)
    try:
        return ("pickle", pickle.dumps(store, pickle.HIGHEST_PROTOCOL))
    except Exception:
        raise ConfigError(
            f"writer='process' with start_method='spawn' cannot hand {type(store).__name__} "
            "to the writer process (it does not pickle): use start_method='fork'"
        ) from None


class Child:
    """A started writer process and the parent's end of its pipe."""

    def __init__(self, conn: multiprocessing.connection.Connection, handle: Any, forked: bool):
        self.conn = conn
        self._handle = handle  # multiprocessing.Process (fork) or subprocess.Popen (spawn)
        self.forked = forked
        self.pid: int = handle.pid
        self.dead = False  # the pipe closed: set by the receiver thread
        self.acked = 0  # batches it acknowledged

    def exitcode(self) -> int | None:
        if isinstance(self._handle, subprocess.Popen):
            return self._handle.poll()
        code: int | None = self._handle.exitcode
        return code

    def join(self, timeout: float) -> bool:
        """Wait for it to exit; True if it did."""
        try:
            if isinstance(self._handle, subprocess.Popen):
                self._handle.wait(timeout)
            else:
                self._handle.join(timeout)
        except subprocess.TimeoutExpired:
            return False
        return self.exitcode() is not None

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except OSError:
            pass
        self.join(5.0)

    def close_pipe(self) -> None:
        try:
            self.conn.close()
        except OSError:
            pass


def start(
    method: StartMethod,
    db: MetadataStore,
    storage: BodyStore | None,
    recipes: tuple[Recipe | None, Recipe | None] | None,
    setup: Setup,
    inherited: list[multiprocessing.connection.Connection],
    timeout: float,
) -> Child:
    """Start a writer process and wait until it is ready (``ChildFailed`` if not).
    ``inherited``: the parent's ends of other writers' pipes, which a forked child
    closes (else those writers' children would not see the application exit)."""
    ours, theirs = multiprocessing.Pipe(duplex=True)
    handle: Any
    try:
        if method == "fork":
            context = multiprocessing.get_context("fork")
            handle = context.Process(
                target=child_main.run_forked,
                args=(theirs, [ours, *inherited], db, storage, setup),
                name="majordomo-log-writer",
                daemon=True,
            )
            handle.start()
        else:
            fd = theirs.fileno()
            handle = subprocess.Popen(
                [sys.executable, "-c", _SPAWN_CODE, str(fd)],
                pass_fds=(fd,),
                stdin=subprocess.DEVNULL,
            )
    except Exception as exc:
        ours.close()
        raise ChildFailed(f"{type(exc).__name__}: {exc}") from None
    finally:
        theirs.close()
    child = Child(ours, handle, method == "fork")
    try:
        if method == "spawn":
            ours.send_bytes(pickle.dumps((recipes, setup), pickle.HIGHEST_PROTOCOL))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not ours.poll(min(left, 0.5)):
                if left <= 0 or child.exitcode() is not None:
                    raise ChildFailed(f"no answer (exit code {child.exitcode()})")
                continue
            message = ours.recv()
            if message[0] == "ready":
                return child
            if message[0] == "failed":
                raise ChildFailed(str(message[1]))
    except (ChildFailed, EOFError, OSError) as exc:
        child.kill()
        child.close_pipe()
        raise ChildFailed(str(exc) or type(exc).__name__) from None
