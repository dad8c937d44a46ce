"""Text compared and grouped exactly, the same in every dialect.

MySQL's and MariaDB's collations pad (``utf8mb4_bin`` is PAD SPACE): there 'u-1 ' equals
'u-1', so a ``GROUP BY`` merges the two and returns either spelling, and ``=`` matches
both, where SQLite and PostgreSQL keep them apart. Grouping and comparing on the bytes
(``CAST(col AS BINARY)``) keeps them apart on MySQL too; the values come back as bytes,
which :func:`as_text` turns back into text. The CLI's reports and the dashboard read
through these.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def text_sql(dialect: str, column: str) -> str:
    """A text column as compared and grouped exactly: as bytes on MySQL, as it is
    elsewhere."""
    return f"CAST({column} AS BINARY)" if dialect == "mysql" else column


def as_text(value: Any) -> Any:
    """A value read through :func:`text_sql`: MySQL's bytes back to text."""
    return value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else value


def one_of(dialect: str, column: str, values: Sequence[str]) -> str:
    """A condition true where ``column`` is exactly one of ``values`` (``?`` each;
    parameters from :func:`one_of_params`)."""
    marks = ", ".join("?" * len(values))
    if dialect != "mysql":
        return f"{column} IN ({marks})"
    # The plain comparison can use the column's index; the bytes make it exact.
    exact = ", ".join(["CAST(? AS BINARY)"] * len(values))
    return f"({column} IN ({marks}) AND CAST({column} AS BINARY) IN ({exact}))"


def one_of_params(dialect: str, values: Sequence[str]) -> list[str]:
    """The parameters of :func:`one_of`'s condition."""
    return [*values, *values] if dialect == "mysql" else list(values)
