"""The public surface: a small __all__, lazy optional drivers, URL openers."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import majordomo_log as ml

PUBLIC = {
    "AlertEvent",
    "Anomalies",
    "LogAlert",
    "PagerDutyAlert",
    "SlackAlert",
    "WebhookAlert",
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
    "LoggingLLM",
    "MajordomoLogError",
    "MetadataStore",
    "MigrationError",
    "OpenTelemetryOptions",
    "PriceTable",
    "ProcessOptions",
    "QueueOptions",
    "ReplayResult",
    "RepriceResult",
    "RetryOptions",
    "Spool",
    "SpoolCorrupt",
    "SpoolFull",
    "SqliteAdapter",
    "StoreError",
    "StoreUnavailable",
    "Usage",
    "WriterStats",
    "call_info",
    "hash_tag",
    "open_db",
    "open_storage",
    "replay_spool",
    "reprice",
    "tags",
}


def test_all_is_exactly_the_public_api() -> None:
    assert set(ml.__all__) == PUBLIC
    for name in ml.__all__:
        assert getattr(ml, name) is not None


def test_version_is_the_installed_distributions() -> None:
    from importlib import metadata

    assert ml.__version__ == metadata.version("majordomo-log")
    # Written once, in majordomo_log/_version.py: the build reads it from there.
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert re.search(r'^dynamic = \[.*"version"', pyproject, re.M)
    assert "\nversion = " not in pyproject
    assert 'path = "majordomo_log/_version.py"' in pyproject


def test_import_pulls_in_no_optional_driver_or_sdk() -> None:
    code = (
        "import sys, majordomo_log\n"
        "names = ('asyncpg', 'aiomysql', 'aioboto3', 'openai', 'anthropic',\n"
        "         'opentelemetry', 'prometheus_client')\n"
        "bad = [m for m in names if m in sys.modules]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize(
    ("name", "driver", "extra"),
    [
        ("PostgresAdapter", "asyncpg", "postgres"),
        ("MySQLAdapter", "aiomysql", "mysql"),
        ("S3Adapter", "aioboto3", "s3"),
        ("PrometheusMetrics", "prometheus_client", "prometheus"),
    ],
)
def test_missing_driver_names_the_extra(
    name: str, driver: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, driver, None)  # as if not installed
    with pytest.raises(ImportError, match=rf'pip install "majordomo-log\[{extra}\]"'):
        getattr(ml, name)


def test_unknown_attribute_is_attribute_error() -> None:
    with pytest.raises(AttributeError):
        ml.NoSuchThing  # noqa: B018


async def test_open_from_urls(tmp_path: Path) -> None:
    db = await ml.open_db(f"sqlite:///{tmp_path / 'x.db'}")
    storage = await ml.open_storage(f"file://{tmp_path / 'bodies'}")
    assert isinstance(db, ml.SqliteAdapter) and isinstance(db, ml.MetadataStore)
    assert isinstance(storage, ml.FileStorageAdapter) and isinstance(storage, ml.BodyStore)
    assert Path(db.path) == tmp_path / "x.db"
    assert storage.root == (tmp_path / "bodies").resolve()
    await db.close()


@pytest.mark.parametrize("url", ["ftp://x", "sqlite://", "redis://localhost"])
async def test_bad_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ml.ConfigError):
        await ml.open_db(url)


async def test_password_never_in_url_errors() -> None:
    with pytest.raises(ml.ConfigError) as info:
        await ml.open_db("oracle://scott:hunter2@db.example/x")
    assert "hunter2" not in str(info.value)


def test_wrapper_rejects_non_stores() -> None:
    with pytest.raises(TypeError, match=r"db must be a metadata store .*, a URL or a path"):
        ml.LoggingLLM(object(), 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"storage must be a body store .*, a URL or a path"):
        ml.LoggingLLM(object(), "sqlite:///unused.db", 3.5)  # type: ignore[arg-type]
