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
from .options import QueueOptions, RetryOptions
from .spool import Spool
from .writer import BatchWriter

# Weak values: the writer lives as long as some LoggingLLM uses it, and a forgotten one
# is collectable.
_writers: weakref.WeakValueDictionary[tuple[int, int], BatchWriter] = weakref.WeakValueDictionary()
# What each writer has warned about already: the same ignored request is told once.
_warned: weakref.WeakKeyDictionary[BatchWriter, set[str]] = weakref.WeakKeyDictionary()


def shared_writer(
    db: MetadataStore,
    storage: BodyStore | None,
    *,
    queue: QueueOptions,
    retries: RetryOptions,
    spool: Spool | None,
    handle_sigterm: bool,
) -> BatchWriter:
    key = (id(db), id(storage))
    writer = _writers.get(key)
    if writer is not None and writer.closed:
        writer.rescue("closed")  # calls made since its close(): spooled, for the new one
    if writer is None or writer.db is not db or writer.storage is not storage or writer.closing:
        writer = BatchWriter(
            db, storage, queue=queue, retries=retries, spool=spool, handle_sigterm=handle_sigterm
        )
        _writers[key] = writer
    else:
        _warn_if_ignored(writer, queue, retries, spool, handle_sigterm)
    return writer


def _warn_if_ignored(
    writer: BatchWriter,
    queue: QueueOptions,
    retries: RetryOptions,
    spool: Spool | None,
    handle_sigterm: bool,
) -> None:
    running = _settings(writer.queue_options, writer.retry_options, writer.spool)
    running["handle_sigterm"] = writer.handles_sigterm
    asked = _settings(queue, retries, spool)
    asked["handle_sigterm"] = handle_sigterm
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
