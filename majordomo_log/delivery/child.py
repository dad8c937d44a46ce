"""The writer process's main (``writer="process"``): an ordinary ``BatchWriter`` fed from
the pipe.

Messages in (``delivery/process.py`` sends them): ``kind`` (one byte), ``seq`` (8 bytes),
body. ``B``: a batch (``delivery/wire.py``), acknowledged once the writer has written,
spooled or refused all of it; ``F``: flush (also replays what the spool holds);
``R``: replay the spool; ``C``: close within the timeout in the body, then exit.
Messages out: ``("ack", seq, stats, value)``, ``("log", level, text)`` (the child's log
lines go to the application's ``majordomo_log`` logger), ``("bad", seq)`` (a batch that
could not be decoded: the parent spools it), ``("ready", pid)``.

The child ignores SIGINT (Ctrl-C is the application's: it closes the child) and on
SIGTERM closes its writer (what it holds is written or spooled) and exits; so it does
when the application's end of the pipe closes, or the application is gone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import os
import pickle
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from .._log import logger
from ..stores.base import BodyStore, MetadataStore
from ..stores.bodies.files import FileStorageAdapter
from ..stores.sql.sqlite import SqliteAdapter
from .spool import Spool
from .stats import WriterStats
from .wire import Decoder
from .writer import BatchWriter

STAT_FIELDS = tuple(f.name for f in dataclasses.fields(WriterStats))
_EXIT_CLOSE_SECONDS = 10.0  # how long the child writes on when the application is gone


class _Out:
    """The child's end of the pipe, for every thread that talks to the parent."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.lock = threading.Lock()

    def send(self, message: tuple[Any, ...]) -> None:
        with self.lock:
            try:
                self.conn.send(message)
            except (OSError, ValueError):
                pass  # the parent is gone: nothing to tell


class _Forward(logging.Handler):
    def __init__(self, out: _Out) -> None:
        super().__init__(logging.DEBUG)
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.out.send(("log", record.levelno, record.getMessage()))
        except Exception:
            pass


def stats_of(writer: BatchWriter) -> dict[str, Any]:
    stats = writer.stats()
    return {name: getattr(stats, name) for name in STAT_FIELDS}


def run_forked(conn: Any, close: list[Any], db: Any, storage: Any, setup: Any) -> None:
    """Target of the forked child: the stores are the application's, reopened first."""
    for other in close:  # the application's ends of pipes: EOF must reach their children
        try:
            other.close()
        except OSError:
            pass
    gc.freeze()  # inherited objects: never scanned, so their pages stay shared
    _serve(conn, db, storage, setup, reopen=True)


def main() -> None:
    """Entry point of a spawned child: ``python -c ... <fd>``."""
    from multiprocessing.connection import Connection

    conn = Connection(int(sys.argv[1]))
    out = _Out(conn)
    try:
        recipes, setup = pickle.loads(conn.recv_bytes())
        db, storage = asyncio.run(_open(recipes))
    except Exception as exc:
        out.send(("failed", f"{type(exc).__name__}: {exc}"))
        raise SystemExit(1) from None
    _serve(conn, db, storage, setup, reopen=False)


async def _open(recipes: tuple[Any, Any]) -> tuple[MetadataStore, BodyStore | None]:
    db = await _open_one(recipes[0])
    storage = await _open_one(recipes[1]) if recipes[1] is not None else None
    return db, storage


async def _open_one(recipe: tuple[Any, ...]) -> Any:
    kind = recipe[0]
    if kind == "sqlite":
        return await SqliteAdapter.create(recipe[1])
    if kind == "file":
        _, root, level, mode, file_mode = recipe
        return FileStorageAdapter(
            Path(root), compresslevel=level, mode=mode, group_read=file_mode == 0o640
        )
    store = pickle.loads(recipe[1])
    reopen = getattr(store, "reopen", None)
    if reopen is not None:
        await reopen()
    return store


def _serve(conn: Any, db: Any, storage: Any, setup: Any, *, reopen: bool) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        signal.set_wakeup_fd(-1)  # a forked child must not wake the application's loop
    except ValueError:
        pass
    out = _Out(conn)
    logger.handlers = [_Forward(out)]
    logger.propagate = False  # the application's handlers are the parent's to use
    code = asyncio.run(_loop(conn, out, db, storage, setup, reopen))
    # A forked child leaves as multiprocessing's children do; a spawned one returns.
    if code:
        raise SystemExit(code)


async def _loop(conn: Any, out: _Out, db: Any, storage: Any, setup: Any, reopen: bool) -> int:
    loop = asyncio.get_running_loop()
    spool = (
        None
        if setup.spool is None
        else Spool(setup.spool[0], max_bytes=setup.spool[1], fsync=setup.spool[2])
    )
    queue = dataclasses.replace(setup.queue, on_full="spill")  # never blocks the pipe
    writer = BatchWriter(
        db, storage, queue=queue, retries=setup.retries, spool=spool, handle_sigterm=False
    )
    if reopen:
        writer.reset_after_fork()  # reconnect before the first write
    inbox: asyncio.Queue[tuple[bytes, int, Any]] = asyncio.Queue()
    try:
        loop.add_signal_handler(signal.SIGTERM, inbox.put_nowait, (b"T", 0, None))
    except (ValueError, RuntimeError, NotImplementedError):
        pass
    reader = threading.Thread(
        target=_read, args=(conn, out, loop, inbox), name="majordomo-log-reader", daemon=True
    )
    reader.start()
    out.send(("ready", os.getpid()))
    tasks: set[asyncio.Task[None]] = set()

    async def answer(seq: int, work: Any) -> None:
        value = await work
        out.send(("ack", seq, stats_of(writer), value))

    def later(seq: int, work: Any) -> None:
        task = loop.create_task(answer(seq, work))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    while True:
        kind, seq, body = await inbox.get()
        if kind == b"B":
            for item in body:
                writer.submit(item)
            later(seq, writer.drained())
        elif kind == b"F":
            later(seq, _none(writer.flush(pickle.loads(body))))
        elif kind == b"R":
            later(seq, writer.replay())
        else:  # C: close; T: SIGTERM; E: the application is gone
            timeout = pickle.loads(body) if kind == b"C" else _EXIT_CLOSE_SECONDS
            await writer.close(timeout)
            if tasks:
                await asyncio.wait(set(tasks), timeout=1.0)
            for store in (db, storage):
                if store is not None:
                    try:
                        await asyncio.wait_for(store.close(), 5.0)
                    except Exception as exc:
                        logger.warning("closing %r failed: %s", store, type(exc).__name__)
            if kind == b"C":
                out.send(("ack", seq, stats_of(writer), None))
            return 0


async def _none(work: Any) -> None:
    await work


def _read(conn: Any, out: _Out, loop: asyncio.AbstractEventLoop, inbox: Any) -> None:
    """Reader thread: receive and decode, so the loop only submits."""
    decoder = Decoder()
    parent = os.getppid()
    message: tuple[bytes, int, Any]
    while True:
        try:
            if not conn.poll(0.5):
                if os.getppid() != parent:  # the application died: nobody will say so
                    message = (b"E", 0, None)
                    break
                continue
            data = conn.recv_bytes()
        except (EOFError, OSError):
            message = (b"E", 0, None)
            break
        kind, seq = data[:1], int.from_bytes(data[1:9], "big")
        if kind == b"B":
            try:
                items = decoder.decode(memoryview(data)[9:])
            except Exception as exc:  # a bug: the parent spools the batch instead
                logger.error("a batch could not be decoded: %s", type(exc).__name__)
                out.send(("bad", seq))
                continue
            try:
                loop.call_soon_threadsafe(inbox.put_nowait, (kind, seq, items))
            except RuntimeError:
                return  # the loop is closed: the child is exiting
            continue
        try:
            loop.call_soon_threadsafe(inbox.put_nowait, (kind, seq, data[9:]))
        except RuntimeError:
            return
        if kind == b"C":
            return
    try:
        loop.call_soon_threadsafe(inbox.put_nowait, message)
    except RuntimeError:
        pass
