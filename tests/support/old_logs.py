"""A SQLite log as an earlier release left it: the migrations before one, applied and
recorded as that release would have, for the upgrade tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from majordomo_log.stores.sql.migrate import migrations_for, split_statements


def sqlite_log_before(path: Path, migration: str) -> None:
    """Create ``path`` with every SQLite migration named before ``migration``."""
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE majordomo_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        for earlier in migrations_for("sqlite"):
            if earlier.name >= migration:
                break
            for statement in split_statements(earlier.sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO majordomo_migrations VALUES (?, '2026-01-01')", (earlier.name,)
            )
