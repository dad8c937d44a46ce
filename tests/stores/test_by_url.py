"""Stores named by URL are shared per URL; a relative SQLite URL names a file by its
absolute path, so the same text from another working directory is another store."""

from __future__ import annotations

from pathlib import Path

import pytest

from majordomo_log.stores.by_url import db_url


def test_a_relative_sqlite_url_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    in_a = db_url("sqlite:///llm_logs.db")
    monkeypatch.chdir(tmp_path / "b")
    in_b = db_url("sqlite:///llm_logs.db")
    assert in_a == f"sqlite:///{tmp_path / 'a' / 'llm_logs.db'}" and in_a != in_b
    assert (
        db_url("sqlite:///logs.db?mode=rwc") == f"sqlite:///{tmp_path / 'b' / 'logs.db'}?mode=rwc"
    )
    assert db_url("sqlite:////abs/x.db") == "sqlite:////abs/x.db"
    assert db_url("llm_logs.db") == in_b
    assert db_url("postgresql://u@h/db") == "postgresql://u@h/db"
