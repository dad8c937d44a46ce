"""Where the log is when nobody says: the one rule the library and the CLI share.

The database is ``$MAJORDOMO_LOG_DB``, else ``llm_logs.db`` in the working directory.
Bodies are ``$MAJORDOMO_LOG_STORAGE``, else the folder ``request_logs`` beside the
SQLite file (``demo-output/llm_logs.db`` -> ``demo-output/request_logs``), else, for a
server database, ``request_logs`` in the working directory. So a command given only
``--db demo-output/llm_logs.db`` finds the bodies the demo wrote beside it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from .urls import sqlite_path

DB_ENV_VAR = "MAJORDOMO_LOG_DB"
STORAGE_ENV_VAR = "MAJORDOMO_LOG_STORAGE"
DEFAULT_DB = "llm_logs.db"
BODIES_FOLDER = "request_logs"


def default_db(environ: Mapping[str, str] = os.environ) -> str:
    """The database to use when none is given: a URL or a SQLite file path."""
    return environ.get(DB_ENV_VAR) or DEFAULT_DB


def default_storage(db: str, environ: Mapping[str, str] = os.environ) -> str:
    """The body store to use with ``db`` when none is given: a URL or a folder path."""
    named = environ.get(STORAGE_ENV_VAR)
    if named:
        return named
    if "://" not in db:
        return str(Path(db).parent / BODIES_FOLDER)
    if urlsplit(db).scheme == "sqlite":
        path = sqlite_path(db)
        if path != ":memory:":
            return str(Path(path).parent / BODIES_FOLDER)
    return BODIES_FOLDER
