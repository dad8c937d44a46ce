"""Public names whose libraries are optional extras, imported only when used: the
adapters whose drivers are, and the Prometheus metrics."""

from __future__ import annotations

import importlib
from typing import Any

# public name -> (module, driver package, extra)
OPTIONAL_ADAPTERS: dict[str, tuple[str, str, str]] = {
    "PostgresAdapter": ("majordomo_log.stores.sql.postgres", "asyncpg", "postgres"),
    "MySQLAdapter": ("majordomo_log.stores.sql.mysql", "aiomysql", "mysql"),
    "S3Adapter": ("majordomo_log.stores.bodies.s3", "aioboto3", "s3"),
    "PrometheusMetrics": ("majordomo_log.telemetry.prometheus", "prometheus_client", "prometheus"),
}


def load(name: str) -> Any:
    module_name, driver, extra = OPTIONAL_ADAPTERS[name]
    try:
        importlib.import_module(driver)
    except ImportError as exc:
        raise ImportError(
            f'{name} needs the {driver!r} package: pip install "majordomo-log[{extra}]"'
        ) from exc
    return getattr(importlib.import_module(module_name), name)
