"""One writer per pair of stores: wrappers given the same stores share it.

The writer is made with the options of the first wrapper; a later wrapper asking for
other queue, retry or spool options gets the same writer and a logged warning naming
what it asked for and what the writer runs with (once per writer and request: a loop
making wrappers is not a flood).
"""

from __future__ import annotations

import dataclasses
import weakref

from .._log import logger
from ..stores.base import BodyStore, MetadataStore
from .options import ProcessOptions, QueueOptions, RetryOptions, WriterMode
from .process import ProcessWriter
from .spool import Spool
from .writer import BatchWriter

Writer = BatchWriter | ProcessWriter  # the same surface: where the work runs differs

# Weak values: the writer lives as long as some LoggingLLM uses it, and a forgotten one
# is collectable.
_writers: weakref.WeakValueDictionary[tuple[int, int], Writer] = weakref.WeakValueDictionary()
# What each writer has warned about already: the same ignored request is told once.
_warned: weakref.WeakKeyDictionary[Writer, set[str]] = weakref.WeakKeyDictionary()


def shared_writer(
    db: MetadataStore,
    storage: BodyStore | None,
    *,
    queue: QueueOptions,
    retries: RetryOptions,
    spool: Spool | None,
    handle_sigterm: bool,
    mode: WriterMode = "thread",
    process: ProcessOptions | None = None,
) -> Writer:
    key = (id(db), id(storage))
    writer = _writers.get(key)
    if writer is not None and writer.closed:
        writer.rescue("closed")  # calls made since its close(): spooled, for the new one
    if writer is None or writer.db is not db or writer.storage is not storage or writer.closing:
        if mode == "process":
            writer = ProcessWriter(
                db,
                storage,
                queue=queue,
                retries=retries,
                spool=spool,
                handle_sigterm=handle_sigterm,
                process=process or ProcessOptions(),
            )
        else:
            writer = BatchWriter(
                db,
                storage,
                queue=queue,
                retries=retries,
                spool=spool,
                handle_sigterm=handle_sigterm,
            )
        _writers[key] = writer
    else:
        _warn_if_ignored(writer, queue, retries, spool, handle_sigterm, mode)
    return writer


def _warn_if_ignored(
    writer: Writer,
    queue: QueueOptions,
    retries: RetryOptions,
    spool: Spool | None,
    handle_sigterm: bool,
    mode: WriterMode,
) -> None:
    running = _settings(writer.queue_options, writer.retry_options, writer.spool)
    running["handle_sigterm"] = writer.handles_sigterm
    running["writer"] = "process" if isinstance(writer, ProcessWriter) else "thread"
    asked = _settings(queue, retries, spool)
    asked["handle_sigterm"] = handle_sigterm
    asked["writer"] = mode
    differ = [name for name in running if name in asked and running[name] != asked[name]]
    if not differ:
        return
    ignored = ", ".join(f"{name}={asked[name]!r}" for name in differ)
    told = _warned.setdefault(writer, set())
    if ignored in told:
        return
    told.add(ignored)
    logger.warning(
        "the writer for %s already runs with %s; this wrapper's %s %s ignored: "
        "wrappers sharing stores share one writer",
        writer.db.url,
        ", ".join(f"{name}={running[name]!r}" for name in differ),
        ignored,
        "is" if len(differ) == 1 else "are",
    )


def _settings(queue: QueueOptions, retries: RetryOptions, spool: Spool | None) -> dict[str, object]:
    settings: dict[str, object] = {**dataclasses.asdict(queue), **dataclasses.asdict(retries)}
    settings["spool"] = None if spool is None else str(spool.directory)
    if spool is not None:  # compared only when both have a spool: else "spool" differs
        settings["spool_max_bytes"] = spool.max_bytes
        settings["spool_fsync"] = spool.fsync
    return settings
