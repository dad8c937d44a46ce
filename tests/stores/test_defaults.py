"""stores/defaults.py: where the log is when nobody says, for the library and the CLI."""

from __future__ import annotations

import pytest

from majordomo_log.stores.defaults import default_db, default_storage


def test_db_comes_from_the_environment_else_llm_logs_db() -> None:
    assert default_db({}) == "llm_logs.db"
    assert default_db({"MAJORDOMO_LOG_DB": ""}) == "llm_logs.db"
    assert default_db({"MAJORDOMO_LOG_DB": "postgresql://h/db"}) == "postgresql://h/db"


@pytest.mark.parametrize(
    ("db", "storage"),
    [
        ("llm_logs.db", "request_logs"),
        ("demo-output/llm_logs.db", "demo-output/request_logs"),
        ("/var/log/llm/calls.db", "/var/log/llm/request_logs"),
        ("sqlite:///demo-output/llm_logs.db", "demo-output/request_logs"),
        ("sqlite:////var/log/llm/calls.db?mode=ro", "/var/log/llm/request_logs"),
        ("sqlite:///:memory:", "request_logs"),
        ("postgresql://u@h/db", "request_logs"),
        ("mysql://u@h/db", "request_logs"),
    ],
)
def test_bodies_go_beside_a_sqlite_file(db: str, storage: str) -> None:
    assert default_storage(db, {}) == storage


def test_storage_from_the_environment_wins() -> None:
    env = {"MAJORDOMO_LOG_STORAGE": "s3://bucket/logs"}
    assert default_storage("demo-output/llm_logs.db", env) == "s3://bucket/logs"
