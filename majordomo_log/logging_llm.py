"""``LoggingLLM``: wrap a client so that every call is logged.

This module only assembles one: it checks the stores, turns the options (objects or
the older keyword arguments) into a ``CallContext`` (``record/call.py``) and a shared
writer (``delivery/shared.py``), and hands both to the wrapper itself
(``capture/wrapper.py``), which is all the caller's calls go through.
"""

from __future__ import annotations

import asyncio
import enum
import threading
from collections.abc import Callable, Iterable, Mapping
from os import PathLike
from typing import Any, TypeVar

from ._exceptions import ConfigError, StoreError
from .alerts.anomaly_options import Anomalies
from .alerts.sinks import AlertSink
from .budgets.budget import Budget
from .budgets.setup import spend_guard
from .capture.keys import resolve_key_secret
from .capture.methods import client_surface, detect_provider
from .capture.wrapper import ClientWrapper, SyncClientWrapper
from .delivery.hosted import front_of, hosted_writer
from .delivery.options import OnFull, ProcessOptions, QueueOptions, RetryOptions, check_writer_mode
from .delivery.process import ProcessWriter
from .delivery.shared import shared_writer
from .delivery.spool import DEFAULT_MAX_BYTES as DEFAULT_SPOOL_BYTES
from .delivery.spool import Spool, default_spool_dir
from .delivery.writer_thread import writer_thread
from .record.call import CallContext, UsageExtractor
from .record.options import BodyOptions
from .record.pricing import Prices, price_table
from .record.redact import RedactHook
from .record.values import storable_mapping
from .stores.base import BodyStore, MetadataStore
from .stores.by_url import StoreName, db_url, shared_db, shared_storage, storage_url
from .stores.defaults import default_db, default_storage
from .telemetry.protocols import CallObserver
from .telemetry.setup import OpenTelemetryOptions, telemetry

ClientT = TypeVar("ClientT")
_building = threading.Lock()
OptionsT = TypeVar("OptionsT", QueueOptions, RetryOptions, BodyOptions)


class _Omitted(enum.Enum):
    """``storage`` not passed at all, which is not ``storage=None`` (no bodies)."""

    OMITTED = "omitted"


OMITTED = _Omitted.OMITTED


class LoggingLLM(ClientWrapper[ClientT]):
    """Wrap ``client`` so that every call is logged to ``db`` (rows) and ``storage`` (bodies).

    ``db`` and ``storage`` are stores (``await ml.SqliteAdapter.create(...)``), or URLs
    and paths the library opens itself: ``"sqlite:///llm_logs.db"`` (or just a file
    name), ``"postgresql://..."``, ``"mysql://..."``; ``"request_logs"`` (a folder),
    ``"file:///..."``, ``"s3://bucket/prefix"``.

    Both may be left out, by the rule the command line follows (``stores/defaults.py``):
    ``LoggingLLM(client)`` logs to ``$MAJORDOMO_LOG_DB``, else ``llm_logs.db`` in the
    working directory, and keeps bodies in ``$MAJORDOMO_LOG_STORAGE``, else the folder
    ``request_logs`` beside the SQLite file. ``db=None`` is the same as leaving it out.
    ``storage`` left out while ``db`` is given means no bodies, as it always has, whatever
    the environment says (an environment variable never starts keeping bodies a program
    did not ask for); ``storage=None`` means no bodies in every case.

    Sync clients (``openai.OpenAI``, ``anthropic.Anthropic``, boto3) get a wrapper whose
    ``flush()``, ``close()``, ``replay_spool()`` and ``record_outcome()`` are plain
    methods (``with LoggingLLM(...) as llm:``); every other wrapper's are coroutines
    (``async with``). The writer runs on the caller's event loop when the wrapper is
    built inside one with store objects, and otherwise (a sync client, stores given by
    URL, no loop running) on the library's own writer thread.

    Options come as small objects (``queue=ml.QueueOptions(...)``,
    ``retries=ml.RetryOptions(...)``, ``bodies=ml.BodyOptions(...)``, ``spool=ml.Spool(...)``)
    or as the keyword arguments they replace (``batch_size=``, ``max_retries=``,
    ``redact=``, ...), not both for the same object.

    Stores: wrappers given the same ``db`` and ``storage`` objects share one background
    writer, made with the first one's queue, retry and spool options (a later wrapper
    asking for others gets a logged warning). ``close()`` flushes; when the last wrapper
    sharing the stores closes, the writer stops and the stores are closed too
    (``close_stores=False`` keeps them open).

    ``writer="process"`` moves pricing, redaction, compression and writing out of the
    application's process into a child process the library starts, supervises and
    stops (``process=ml.ProcessOptions(...)``); ``writer="thread"`` (the default) does
    that work in this process, in a background task and its worker threads.

    Telemetry: each call gets an OpenTelemetry GenAI client span, and its figures go to
    the GenAI metrics, when the application has configured OpenTelemetry before building
    the wrapper (``opentelemetry=True``: always; ``False``: never;
    ``ml.OpenTelemetryOptions(...)``: the application's own providers); ``metrics=[...]``
    takes observers of each call's row, such as ``ml.PrometheusMetrics(...)``, fed by
    the writer off the call's path (docs/telemetry.md).
    """

    def __new__(cls, client: Any, *args: Any, **kwargs: Any) -> Any:
        if cls is LoggingLLM and client_surface(client) == "sync":
            cls = SyncLoggingLLM
        return super().__new__(cls)

    def __init__(
        self,
        client: ClientT,
        db: MetadataStore | StoreName | None = None,
        storage: BodyStore | StoreName | _Omitted | None = OMITTED,
        *,
        api_key_alias: str | None = None,
        tags: Mapping[str, Any] | None = None,
        provider: str | None = None,
        prices: Prices = None,
        key_hash_secret: str | bytes | None = None,
        usage_extractor: UsageExtractor | None = None,
        methods: Iterable[str] = (),
        hash_tags: Iterable[str] = (),
        close_stores: bool = True,
        handle_sigterm: bool = True,
        queue: QueueOptions | None = None,
        retries: RetryOptions | None = None,
        bodies: BodyOptions | None = None,
        spool: Spool | str | PathLike[str] | bool | None = None,
        writer: str = "thread",
        process: ProcessOptions | None = None,
        # The same options as keyword arguments, each a field of the objects above.
        batch_size: int | None = None,
        flush_interval: float | None = None,
        max_queue_bytes: int | None = None,
        max_queue_records: int | None = None,
        on_full: OnFull | None = None,
        max_retries: int | None = None,
        capture_bodies: bool | None = None,
        redact: Iterable[RedactHook] | RedactHook | None = None,
        max_body_bytes: int | None = None,
        spool_max_bytes: int = DEFAULT_SPOOL_BYTES,
        spool_fsync: bool = True,
        # Budgets and alerts (docs/budgets.md)
        budgets: Iterable[Budget] = (),
        alerts: Iterable[AlertSink] | None = None,
        anomalies: Anomalies | None = None,
        budget_store: str | None = None,
        # Telemetry (docs/telemetry.md)
        opentelemetry: bool | OpenTelemetryOptions | None = None,
        metrics: Iterable[CallObserver] | CallObserver = (),
    ) -> None:
        if storage is OMITTED:
            storage = default_storage(default_db()) if db is None else None
        if db is None:
            db = default_db()
        named = isinstance(db, (str, PathLike)), isinstance(storage, (str, PathLike))
        if not named[0] and not isinstance(db, MetadataStore):
            raise TypeError(
                "db must be a metadata store (e.g. SqliteAdapter), a URL or a path, "
                f"got {type(db).__name__}"
            )
        if not named[1] and storage is not None and not isinstance(storage, BodyStore):
            raise TypeError(
                "storage must be a body store (e.g. FileStorageAdapter), a URL or a path, "
                f"got {type(storage).__name__}"
            )
        body_options = _options(
            BodyOptions,
            bodies,
            "bodies",
            capture=("capture_bodies", capture_bodies),
            redact=("redact", redact),
            max_bytes=("max_body_bytes", max_body_bytes),
        )
        queue_options = _options(
            QueueOptions,
            queue,
            "queue",
            batch_size=("batch_size", batch_size),
            flush_interval=("flush_interval", flush_interval),
            max_bytes=("max_queue_bytes", max_queue_bytes),
            max_records=("max_queue_records", max_queue_records),
            on_full=("on_full", on_full),
        )
        retry_options = _options(
            RetryOptions, retries, "retries", max_retries=("max_retries", max_retries)
        )
        mode = check_writer_mode(writer)
        if process is not None and not isinstance(process, ProcessOptions):
            raise ConfigError(f"process must be a ProcessOptions, got {type(process).__name__}")
        secret = resolve_key_secret(key_hash_secret)
        spans, observers = telemetry(opentelemetry, metrics)
        ctx = CallContext(
            prices=price_table(prices),
            api_key_alias=api_key_alias,
            tags=storable_mapping(tags or {}),
            secrets=(),
            extractor=usage_extractor,
            capture_bodies=body_options.capture,
            redact_hooks=tuple(body_options.redact),
            max_body_bytes=body_options.max_bytes,
            hash_tags=_tag_names(hash_tags),
            tag_secret=secret,
            spans=spans,
            observers=observers,
        )
        # Threads building wrappers on the same URLs at once (a wrapper per request) must
        # find one store and one writer, not open one each.
        with _building:
            thread = None
            if client_surface(client) == "sync" or any(named) or not _loop_running():
                thread = writer_thread()
                # A bad URL or an unreachable server fails here, in the constructor.
                if isinstance(db, (str, PathLike)):
                    db = thread.run(shared_db(db_url(db)))
                if isinstance(storage, (str, PathLike)):
                    storage = thread.run(shared_storage(storage_url(storage)))
            assert isinstance(db, MetadataStore)
            assert storage is None or isinstance(storage, BodyStore)
            for store in (db, storage):
                if getattr(store, "closed", False):
                    # e.g. closed by the last wrapper of an earlier `async with` block
                    raise StoreError(f"{store!r} is closed: open a new one for this wrapper")
            shared = shared_writer(
                db,
                storage,
                queue=queue_options,
                retries=retry_options,
                spool=_spool_for(spool, db, storage, spool_max_bytes, spool_fsync),
                handle_sigterm=handle_sigterm,
                mode=mode,
                process=process,
            )
            if isinstance(shared, ProcessWriter):
                shared.register_context(ctx)
            # ProcessWriter has BatchWriter's surface; capture/wrapper.py annotates the latter.
            hands_to: Any = front_of(shared)
            if hands_to is None:
                if thread is None:
                    hands_to = shared
                elif shared.users:  # its worker runs on an application's event loop
                    raise ConfigError(
                        f"the stores {db.url} are already used by a wrapper whose writer runs "
                        "on an event loop; give this wrapper its own stores, or URLs"
                    )
                else:
                    owned = named[0] and (storage is None or named[1])
                    hands_to = hosted_writer(shared, thread, close_stores or owned, owned)
            guard = spend_guard(
                db, budgets, alerts, anomalies, budget_store, thread, self._internal_error
            )
            super().__init__(
                client,
                hands_to,
                ctx,
                provider=provider or detect_provider(client),
                key_secret=secret,
                methods=methods,
                close_stores=close_stores,
                guard=guard,
            )


class SyncLoggingLLM(SyncClientWrapper[ClientT], LoggingLLM[ClientT]):
    """What ``LoggingLLM(sync_client, ...)`` makes: plain flush() and close()."""


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _options(
    kind: Callable[..., OptionsT], given: OptionsT | None, name: str, **fields: tuple[str, Any]
) -> OptionsT:
    """The options object: ``given``, or one made from the keyword arguments that were
    passed (``fields`` maps each field to its keyword and value; None: not passed)."""
    passed = {field: value for field, (_, value) in fields.items() if value is not None}
    if given is not None:
        if passed:
            keywords = ", ".join(f"{fields[f][0]}=" for f in passed)
            raise ConfigError(f"give {name}= or {keywords}, not both")
        return given
    try:
        return kind(**passed)
    except ConfigError as exc:  # named as the caller passed it
        keywords = ", ".join(f"{fields[f][0]}=" for f in passed)
        raise ConfigError(f"{keywords}: {exc}") from None


def _tag_names(names: Iterable[str]) -> frozenset[str]:
    if isinstance(names, str):  # hash_tags="user_id": forgiven, it is one name
        names = (names,)
    names = frozenset(names)
    for name in names:
        if not isinstance(name, str):
            raise ConfigError(f"hash_tags must be tag names, got {type(name).__name__}")
    return names


def _spool_for(
    spool: Spool | str | PathLike[str] | bool | None,
    db: MetadataStore,
    storage: BodyStore | None,
    max_bytes: int,
    fsync: bool,
) -> Spool | None:
    if spool is False:
        return None
    if isinstance(spool, Spool):
        return spool
    if spool is None or spool is True:
        spool = default_spool_dir(db.url, None if storage is None else storage.url)
    return Spool(spool, max_bytes=max_bytes, fsync=fsync)
