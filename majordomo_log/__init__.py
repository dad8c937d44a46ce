"""majordomo-log: an LLM cost and request log.

Wrap a client, and every call is logged (tokens, exact cost, latency, attribution)
to a SQL database, with full bodies in files or S3::

    import majordomo_log as ml

    db = await ml.SqliteAdapter.create("llm_logs.db")
    storage = await ml.FileStorageAdapter.create("./request_logs")
    async with ml.LoggingLLM(openai.AsyncOpenAI(), db, storage) as llm:
        resp = await llm.chat.completions.create(model="gpt-4o", messages=[...])
        print(ml.call_info(resp).total_cost)
"""

from __future__ import annotations

from typing import Any

from ._exceptions import (
    BodyNotFound,
    BudgetExceeded,
    ConfigError,
    MajordomoLogError,
    MigrationError,
    SpoolCorrupt,
    SpoolFull,
    StoreError,
    StoreUnavailable,
)
from ._version import __version__ as __version__
from .alerts.anomaly_options import Anomalies
from .alerts.events import AlertEvent
from .alerts.sinks import LogAlert, PagerDutyAlert, SlackAlert, WebhookAlert
from .budgets.budget import Budget
from .capture.tags import hash_tag, tags
from .delivery.options import ProcessOptions, QueueOptions, RetryOptions
from .delivery.replay import ReplayResult, replay_spool
from .delivery.spool import Spool
from .delivery.stats import WriterStats
from .logging_llm import LoggingLLM
from .record.callinfo import CallInfo, call_info
from .record.options import BodyOptions
from .record.pricing import Cost, PriceTable
from .record.reprice import RepriceResult, reprice
from .record.usage import Usage
from .stores.base import BodyStore, MetadataStore
from .stores.bodies.files import FileStorageAdapter
from .stores.open import open_db, open_storage
from .stores.sql.sqlite import SqliteAdapter
from .telemetry.protocols import CallObserver
from .telemetry.setup import OpenTelemetryOptions

# PostgresAdapter, MySQLAdapter, S3Adapter and PrometheusMetrics are importable too, but
# stay out of __all__: their libraries are optional, and `import *` must not need them.
__all__ = [
    "AlertEvent",
    "Anomalies",
    "BodyNotFound",
    "BodyOptions",
    "BodyStore",
    "Budget",
    "BudgetExceeded",
    "CallInfo",
    "CallObserver",
    "ConfigError",
    "Cost",
    "FileStorageAdapter",
    "LogAlert",
    "LoggingLLM",
    "MajordomoLogError",
    "MetadataStore",
    "MigrationError",
    "OpenTelemetryOptions",
    "PagerDutyAlert",
    "PriceTable",
    "ProcessOptions",
    "QueueOptions",
    "ReplayResult",
    "RepriceResult",
    "RetryOptions",
    "SlackAlert",
    "Spool",
    "SpoolCorrupt",
    "SpoolFull",
    "SqliteAdapter",
    "StoreError",
    "StoreUnavailable",
    "Usage",
    "WebhookAlert",
    "WriterStats",
    "call_info",
    "hash_tag",
    "open_db",
    "open_storage",
    "replay_spool",
    "reprice",
    "tags",
]


def __getattr__(name: str) -> Any:
    # PostgresAdapter, MySQLAdapter, S3Adapter, PrometheusMetrics: optional extras.
    from .stores.optional import OPTIONAL_ADAPTERS, load

    if name in OPTIONAL_ADAPTERS:
        return load(name)
    raise AttributeError(f"module 'majordomo_log' has no attribute {name!r}")
