"""What the ``majordomo-log`` commands share: the database and storage options, the
argument types (times, counts) and how a read command opens the log.

Errors a user can fix print one line and exit 2: a bad argument through argparse, the
rest as ``UsageError`` (or a library error) raised from a command.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import quote, urlsplit

from .._exceptions import ConfigError
from ..stores.base import MetadataStore
from ..stores.defaults import (
    BODIES_FOLDER,
    DB_ENV_VAR,
    DEFAULT_DB,
    STORAGE_ENV_VAR,
    default_db,
    default_storage,
)
from ..stores.open import open_db
from ..stores.urls import sqlite_path
from .reports import group_columns

# Where ``majordomo-log demo`` writes unless given --out: its log is DEMO_OUT/llm_logs.db.
DEMO_OUT = "demo-output"
DEMO_DB = f"{DEMO_OUT}/{DEFAULT_DB}"
DB_HELP = f"the log: a database URL or a SQLite file (default: ${DB_ENV_VAR}, else {DEFAULT_DB})"
STORAGE_HELP = (
    f"the bodies: a store URL or a folder (default: ${STORAGE_ENV_VAR}, else "
    f"{BODIES_FOLDER} beside the SQLite file)"
)


class UsageError(Exception):
    """A mistake in how the command was called: one line, exit 2."""


def db_url(value: str) -> str:
    """Accept a URL or a bare SQLite file path (any file name: '?', '#' and '%' are
    quoted, so the URL names that file)."""
    return value if "://" in value else f"sqlite:///{quote(value, safe='/~')}"


def storage_url(value: str) -> str:
    """Accept a URL or a bare folder path."""
    return value if "://" in value else f"file://{quote(value, safe='/~')}"


def resolve_stores(args: argparse.Namespace) -> None:
    """Fill in the --db and --storage not given, by the rule of ``stores/defaults.py``:
    ``$MAJORDOMO_LOG_DB`` else ``llm_logs.db``; ``$MAJORDOMO_LOG_STORAGE`` else
    ``request_logs`` beside the SQLite file."""
    if "db" in args:
        args.db = args.db or db_url(default_db())
    if "storage" in args and args.storage is None:
        args.storage = storage_url(default_storage(args.db if "db" in args else default_db()))


def check_window(args: argparse.Namespace) -> None:
    """``--until`` before ``--since`` is a mistake to say, not an empty report."""
    since, until = getattr(args, "since", None), getattr(args, "until", None)
    if since is not None and until is not None and until <= since:
        raise UsageError(
            f"--until ({until:%Y-%m-%d %H:%M} UTC) is not after --since "
            f"({since:%Y-%m-%d %H:%M} UTC): no call falls between them"
        )


def whole_number(maximum: int, minimum: int = 1) -> Callable[[str], int]:
    """An argparse type: a whole number from ``minimum`` to ``maximum``."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = minimum - 1
        if not minimum <= number <= maximum:
            raise argparse.ArgumentTypeError(
                f"{value!r:.40} is not a whole number from {minimum} to {maximum:,}"
            )
        return number

    return parse


def grouping(value: str) -> list[str]:
    """An argparse type for ``report --by``: one column or several, comma-separated,
    each one of ``reports.GROUPINGS`` (they go into the SQL text)."""
    try:
        return list(group_columns(value))
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# A LIMIT every dialect binds (SQLite's integers are 64-bit); far beyond any real tail.
MAX_ROWS = 2**63 - 1
# The demo holds its plan and every record in memory.
MAX_DEMO_CALLS = 100_000


_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes"}


def parse_when(value: str) -> dt.datetime:
    """``1w``, ``7d``, ``24h``, ``30m`` ago, or an ISO date/datetime (UTC if no zone),
    in UTC."""
    problem = f"{value!r:.40} is not a time: use 1w, 7d, 24h, 30m or 2026-11-01[T12:00]"
    match = re.fullmatch(r"(\d+)([wdhm])", value.strip())
    try:
        if match:
            delta = dt.timedelta(**{_UNITS[match[2]]: int(match[1])})
            return dt.datetime.now(dt.timezone.utc) - delta
        when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        if when.tzinfo is None:
            return when.replace(tzinfo=dt.timezone.utc)
        return when.astimezone(dt.timezone.utc)
    except ValueError:
        raise argparse.ArgumentTypeError(problem) from None
    except OverflowError:  # 99999999d ago, or a zone that moves 0001-01-01 before year 1
        raise argparse.ArgumentTypeError(
            f"{value!r:.40} is out of range: a time between the years 1 and 9999"
        ) from None


@contextlib.asynccontextmanager
async def existing_db(url: str) -> AsyncIterator[MetadataStore]:
    """The store a read command queries, closed afterwards."""
    db = await open_existing_db(url)
    try:
        yield db
    finally:
        await db.close()


async def open_existing_db(url: str) -> MetadataStore:
    """Read-only: a read command creates no file, no schema and no table."""
    check_db_exists(url)
    return await open_db(url, read_only=True)


def check_db_exists(url: str) -> None:
    """A SQLite file that is not there is a ``UsageError`` saying what to pass: the
    demo's log when there is one here, else how to name a log or make one."""
    if urlsplit(url).scheme.lower() != "sqlite":
        return
    path = sqlite_path(url)
    if Path(path).exists():
        return
    if Path(DEMO_DB).is_file() and not Path(path).resolve() == Path(DEMO_DB).resolve():
        raise UsageError(
            f"no database at {path}; the demo's log is here: pass --db {DEMO_DB} "
            f"(or set {DB_ENV_VAR}={DEMO_DB})"
        )
    raise UsageError(
        f"no database at {path} (a read command never creates one): name a log with --db "
        f"or {DB_ENV_VAR}, or run `majordomo-log demo` to write a sample log to {DEMO_DB}"
    )
