"""Named, append-only SQL migrations, one folder per dialect.

``migrations/<dialect>/NNNN_name.sql`` files are applied in name order and
recorded by name in ``majordomo_migrations``; a file, once released, is never
edited (a change is a new file). Each store applies them in one transaction per
file, in its own way (SQLite in its worker thread, servers over their driver).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

MIGRATIONS_TABLE = "majordomo_migrations"


@dataclass(frozen=True, slots=True)
class Migration:
    name: str  # file name without .sql, e.g. "0001_create_llm_requests"
    sql: str


def migrations_for(dialect: str) -> list[Migration]:
    folder = resources.files("majordomo_log.stores.sql").joinpath("migrations", dialect)
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [Migration(f.name[: -len(".sql")], f.read_text(encoding="utf-8")) for f in files]


def split_statements(sql: str) -> list[str]:
    """Split a migration into statements (our files keep ';' out of strings and comments)."""
    lines = [line.split("--", 1)[0] for line in sql.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
