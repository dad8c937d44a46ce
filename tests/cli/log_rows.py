"""Logs made to measure for the CLI's budget and outlier tests: rows with chosen times,
costs, tags, outcomes and counts (the rest of a real row), written to a fresh SQLite
file, PostgreSQL schema or MySQL database that the command is then pointed at."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import majordomo_log as ml
from majordomo_log.record.call import CallContext, CallRecord
from majordomo_log.record.pricing import PriceTable
from majordomo_log.record.rows import build_row
from majordomo_log.schema import COST_COLUMNS, PROMOTED_TAGS, TOKEN_COLUMNS, Row

UTC = dt.timezone.utc


def _template() -> Row:
    ctx = CallContext(prices=PriceTable.load(), api_key_alias="key-1", tags={}, secrets=())
    rec = CallRecord(None, 0.0, 0.0, "openai", "chat.completions", "gpt-4o", False, {}, None, ctx)
    rec.t_end = 0.5
    return build_row(rec, None)


TEMPLATE = _template()


def row(
    n: int,
    started: dt.datetime,
    *,
    cost: str | None = "0.01",
    tokens: int | None = 100,
    model: str = "gpt-4o",
    outcome: str | None = None,
    retries: int | None = None,
    tools: int | None = None,
    **tags: Any,
) -> Row:
    """Call number ``n``: ``cost`` dollars (None: unknown), ``tokens`` tokens, the tags
    given (the promoted ones in their columns too)."""
    return TEMPLATE._replace(
        request_id=f"01a30000-0000-7000-8000-{n:012d}",
        started_at=started,
        ended_at=started + dt.timedelta(seconds=1),
        model=model,
        served_model=model,
        status="ok",
        cost_status="computed" if cost is not None else "unknown_model",
        total_cost=Decimal(cost) if cost is not None else None,
        total_tokens=tokens,
        tags=json.dumps(tags),
        outcome=outcome,
        outcome_at=started if outcome else None,
        retry_count=retries,
        tool_call_count=tools,
        **dict.fromkeys(COST_COLUMNS[:-1]),
        **{name: tags.get(name) for name in PROMOTED_TAGS},
    )


def blocked(n: int, started: dt.datetime, **tags: Any) -> Row:
    """An attempt a hard budget refused: no tokens, no cost."""
    return row(n, started, cost=None, tokens=None, **tags)._replace(
        status="blocked",
        cost_status="blocked",
        error_type="BudgetExceeded",
        error_message="budget spent",
        **dict.fromkeys(TOKEN_COLUMNS),
    )


@contextmanager
def log_at(
    dialect: str,
    tmp_path: Path,
    rows: Sequence[Row],
    budgets: Sequence[dict[str, Any]] = (),
) -> Iterator[str]:
    """The URL of a new log holding ``rows`` and ``budgets``, in a namespace of its own
    (dropped afterwards on a server). Call from a plain test: the CLI runs its own loop."""
    from servers import mysql_admin, require

    name = f"mdl_cli_budget_{uuid.uuid4().hex[:10]}"
    if dialect == "sqlite":
        url = f"sqlite:///{tmp_path / f'{name}.db'}"
    elif dialect == "postgresql":
        url = f"{require(dialect)}?schema={name}"
    else:
        server = require(dialect)
        asyncio.run(mysql_admin(server, f"CREATE DATABASE {name}"))
        url = urlsplit(server)._replace(path=f"/{name}").geturl()

    async def fill() -> None:
        db = await ml.open_db(url)
        try:
            await db.write_batch(rows, [])
            if budgets:
                await db.save_budgets(budgets)  # type: ignore[attr-defined]
        finally:
            await db.close()

    try:
        asyncio.run(fill())
        yield url
    finally:
        if dialect != "sqlite":
            asyncio.run(_drop(dialect, name))


async def _drop(dialect: str, name: str) -> None:
    from servers import mysql_admin, require

    url = require(dialect)
    if dialect == "mysql":
        await mysql_admin(url, f"DROP DATABASE IF EXISTS {name}")
        return
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()
